"""A loopback service whose connections a test answers by hand (bytes in, bytes out): for the
upstreams that misbehave on purpose (garbage, early closes, resets, odd headers)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Handler = Callable[[socket.socket], None]


@contextmanager
def raw_services() -> Iterator[Callable[[Handler], int]]:
    """Yields `start(handler)`, which runs `handler(connection)` for each connection of a new
    listener on 127.0.0.1 and returns its port; every listener closes afterwards."""
    listeners: list[socket.socket] = []

    def start(handler: Handler) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def accept() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=handler, args=(connection,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return int(listener.getsockname()[1])

    try:
        yield start
    finally:
        for listener in listeners:
            listener.close()
