from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path


def build_application(http_app):
    from tasks.consumers import TaskEventsConsumer

    websocket = URLRouter([path("ws/tasks/", TaskEventsConsumer.as_asgi())])
    return ProtocolTypeRouter(
        {"http": http_app, "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(websocket))}
    )
