from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import WebsocketDenier
from django.urls import path


def build_application(http_app):
    from tasks.consumers import TaskEventsConsumer

    websocket = URLRouter([path("ws/tasks/", TaskEventsConsumer.as_asgi())])
    return ProtocolTypeRouter({"http": http_app, "websocket": SameOriginOnly(AuthMiddlewareStack(websocket))})


class SameOriginOnly:
    """A socket opens only for a page of the site's own origin (scheme, host and port), or of one
    in CSRF_TRUSTED_ORIGINS, as Django's CSRF check asks of a write. Matching the host name alone
    is not enough: a browser sends the session cookie to a socket from any port of the host."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if same_origin(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def same_origin(scope):
    from django.conf import settings
    from django.http.request import split_domain_port, validate_host
    from django.utils.http import is_same_domain

    headers = {}
    for name, value in scope.get("headers", []):
        headers.setdefault(name.decode("latin1").lower(), value.decode("latin1"))
    origin = headers.get("origin", "").lower()
    if not origin or origin == "null":
        return False
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        scheme, _sep, netloc = trusted.lower().partition("://")
        if origin == trusted.lower() or ("*" in netloc and origin.startswith(scheme + "://")
                                         and is_same_domain(origin.partition("://")[2], netloc.lstrip("*"))):
            return True
    host = headers.get("host", "")
    secure = scope.get("scheme") == "wss"
    if settings.USE_X_FORWARDED_HOST and headers.get("x-forwarded-host"):
        host = headers["x-forwarded-host"].split(",")[0].strip()
    if settings.SECURE_PROXY_SSL_HEADER:
        header, expected = settings.SECURE_PROXY_SSL_HEADER
        forwarded = headers.get(header.removeprefix("HTTP_").replace("_", "-").lower(), "")
        secure = forwarded.split(",")[0].strip() == expected
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    return origin == f"{'https' if secure else 'http'}://{host.lower()}"
