"""daphne with flow control: `python -m mediacraft.daphne_server` takes daphne's own arguments.

daphne writes each body chunk an application sends into Twisted's transport at once, whatever
the client has read: a download streams from disk as fast as the disk goes, and a slow client's
4 GB video ends up in the web process's memory. Here a response that streams registers a push
producer with its request; Twisted pauses it while the socket's send buffer is full and resumes
it once drained, and the application's next send waits meanwhile.

Request bodies get the same care the other way. Twisted keeps a body over 100 KB in a temporary
file, but then parses a multipart or urlencoded POST itself, whole in memory, before daphne runs;
and daphne puts all of a body on the application's queue at once. Here Twisted parses nothing
(Django does, streaming uploads to disk) and the application reads the file a chunk at a time."""

import asyncio
import os
from functools import partial

from daphne.cli import CommandLineInterface
from daphne.server import Server
from twisted.web import http

BODY_CHUNK = 256 * 1024  # per http.request message: little memory, and few messages for a big body


class Drain:
    """One streamed response's push producer (twisted IPushProducer)."""

    def __init__(self):
        self.open = asyncio.Event()
        self.open.set()

    def pauseProducing(self):  # noqa: N802 (Twisted's names)
        self.open.clear()

    def resumeProducing(self):  # noqa: N802
        self.open.set()

    def stopProducing(self):  # noqa: N802
        self.open.set()


class BodyQueue(asyncio.Queue):
    """An HTTP application's input queue whose receive() reads the next chunk of the request body
    from Twisted's content file, only when the application asks for one."""

    def __init__(self, body):
        super().__init__()
        self.body, self.offset = body, 0  # body: None once all of it went, or the client did
        # From here daphne's process() reads the body onto the queue in a loop: left at the end,
        # the file gives that loop nothing.
        self.size = body.seek(0, os.SEEK_END)

    def put_nowait(self, message):
        if message["type"] == "http.request":
            return  # daphne's loop (see above): the body comes from get()
        # http.disconnect: daphne sends it before Twisted closes the file; no body after it.
        self.body = None
        super().put_nowait(message)

    async def get(self):
        if self.body is None or not self.empty():
            return await super().get()
        self.body.seek(self.offset)
        chunk = self.body.read(BODY_CHUNK)
        self.offset += len(chunk)
        more = bool(chunk) and self.offset < self.size
        if not more:
            self.body = None
        return {"type": "http.request", "body": chunk, "more_body": more}


class FlowControlledServer(Server):
    def protocol_connected(self, protocol):
        if isinstance(protocol, http.Request):
            # Request(parsePOSTFormSubmission=False), which daphne's factory cannot pass: Twisted
            # would parse a POST's body whole in memory for request.args, which nobody reads, on
            # any URL before any check, and answer a malformed one a bare 400 logged nowhere.
            protocol._parsePOSTFormSubmission = False
        super().protocol_connected(protocol)

    def create_application(self, protocol, scope):
        """daphne's, with a BodyQueue for an HTTP request (daphne's puts all of the body on an
        asyncio.Queue at once)."""
        if scope["type"] != "http":
            return super().create_application(protocol, scope)
        assert "application_instance" not in self.connections[protocol]
        queue = BodyQueue(protocol.content)
        scope.setdefault("asgi", {"version": "3.0"})
        instance = self.application(scope=scope, receive=queue.get, send=partial(self.handle_reply, protocol))
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
        return queue

    async def handle_reply(self, protocol, message):
        drain = getattr(protocol, "mediacraft_drain", None)
        if message.get("type") == "http.response.body":
            more = message.get("more_body", False)
            gone = protocol.finished or getattr(protocol, "channel", None) is None
            if more and drain is None and not gone:
                drain = protocol.mediacraft_drain = Drain()
                protocol.registerProducer(drain, True)
                if getattr(protocol.channel, "_waitingForTransport", False):
                    drain.pauseProducing()  # the buffer was full already: no pause will come
            elif not more and drain is not None:
                protocol.mediacraft_drain = None
                if not gone:
                    protocol.unregisterProducer()  # before daphne finishes the request
                drain = None
        await super().handle_reply(protocol, message)
        if drain is not None:
            await drain.open.wait()

    def protocol_disconnected(self, protocol):
        drain = getattr(protocol, "mediacraft_drain", None)
        if drain is not None:  # the client went away while its response waited: let the sender end
            drain.stopProducing()
        super().protocol_disconnected(protocol)


class FlowControlledCLI(CommandLineInterface):
    server_class = FlowControlledServer


if __name__ == "__main__":
    FlowControlledCLI.entrypoint()
