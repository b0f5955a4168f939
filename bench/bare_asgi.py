"""The bench daphne's application: production's HTTP app (with bench.settings: the bare submit
view) and, on /ws/bare/, a bare consumer that joins one group and forwards each message's text,
the raw channels-redis baseline of the progress-event benchmark."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from mediacraft.heap import freeze_startup  # noqa: E402

BARE_GROUP = "bench.bare"


class BareConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.channel_layer.group_add(BARE_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(BARE_GROUP, self.channel_name)

    async def bench_event(self, event):
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter({"http": django_asgi_app,
                                  "websocket": URLRouter([path("ws/bare/", BareConsumer.as_asgi())])})
freeze_startup()  # as production's does: the baseline differs from it only by its view
