"""A real WebSocket echo service (the `websockets` package) on a loopback port, for the frame-capture
tests: every message comes back as it was sent, uncompressed so the frames on the wire are plain."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from websockets.sync.server import Server, ServerConnection, serve


def _echo(connection: ServerConnection) -> None:
    for message in connection:
        connection.send(message)


@contextmanager
def websocket_echo() -> Iterator[Server]:
    """Yields the running server (its port: `server.socket.getsockname()[1]`); stops it afterwards."""
    server = serve(_echo, "127.0.0.1", 0, compression=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(5)
