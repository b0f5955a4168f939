"""daphne with flow control: `python -m mediacraft.daphne_server` takes daphne's own arguments.

daphne writes each body chunk an application sends into Twisted's transport at once, whatever
the client has read: a download streams from disk as fast as the disk goes, and a slow client's
4 GB video ends up in the web process's memory. Here a response that streams registers a push
producer with its request; Twisted pauses it while the socket's send buffer is full and resumes
it once drained, and the application's next send waits meanwhile."""

import asyncio

from daphne.cli import CommandLineInterface
from daphne.server import Server


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


class FlowControlledServer(Server):
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
