"""/ws/tasks/: the viewer's own task events, translated into the viewer's language."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import translation
from django.utils.translation.trans_real import get_supported_language_variant, parse_accept_lang_header

from tasks.events import public_task, session_group, user_group


def scope_language(scope):
    headers = dict(scope.get("headers") or [])
    cookies = scope.get("cookies") or {}
    candidates = [cookies.get(settings.LANGUAGE_COOKIE_NAME)]
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    candidates += [lang for lang, _q in parse_accept_lang_header(accept)]
    for code in candidates:
        if not code or code == "*":
            continue
        try:
            return get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


class TaskEventsConsumer(AsyncJsonWebsocketConsumer):
    groups_joined = ()

    async def connect(self):
        user = self.scope.get("user")
        session = self.scope.get("session")
        self.language = scope_language(self.scope)
        authenticated = user is not None and user.is_authenticated
        # The user group is chosen once, here; the session group lets a logout (or a login) in
        # another tab close this socket, and the page then reconnects as whoever it now is.
        self.groups_joined = [user_group(user.pk)] if authenticated else []
        if authenticated and session is not None and session.session_key:
            self.groups_joined.append(session_group(session.session_key))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "authenticated": authenticated, "language": self.language})

    async def disconnect(self, code):
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def task_event(self, event):
        with translation.override(self.language):
            task = public_task(event["task"])
        await self.send_json({"type": "task", "task": task})

    async def task_deleted(self, event):
        await self.send_json({"type": "task_deleted", "task_id": event["task_id"]})

    async def session_ended(self, event):
        await self.close()
