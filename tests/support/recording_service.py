"""A local service that records each request exactly as it arrived: request line bytes, header
fields in order (bytes), the body (de-chunked) and how it was framed. HTTP/1.1 keep-alive.

Its answer carries fields a proxy must pass through (two Set-Cookie fields in order, a UTF-8
value, custom X- fields), so the response direction can be compared too. A request field
`X-Answer` picks the answer's shape: absent, a body with Content-Length; `chunked`, a chunked body;
`close`, a body delimited by closing the connection; `204`, `304`: those statuses, without a body.
It answers `Expect: 100-continue` with 100 (Continue) before reading the body, as servers must.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.http_wire import Message, read_body, read_head

ANSWER_BODY = b"recorded\n"
ANSWER_HEADERS = [
    (b"Content-Type", b"text/plain; charset=utf-8"),
    (b"Set-Cookie", b"session=abc; Path=/; HttpOnly"),
    (b"Set-Cookie", b"theme=dark; Path=/"),
    (b"X-Service", b"recorder"),
    (b"X-Greeting", "Grüße, 世界".encode()),
    (b"Cache-Control", b"no-store"),
]


class RecordingService:
    def __init__(self, server: socketserver.ThreadingTCPServer) -> None:
        self.server = server
        self.received: list[Message] = []
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def take(self) -> list[Message]:
        """What was recorded since the last take."""
        with self.lock:
            taken, self.received = self.received, []
        return taken


class _Handler(socketserver.StreamRequestHandler):
    service: RecordingService

    def handle(self) -> None:
        while True:
            try:
                request = read_head(self.rfile)
                if request is None:
                    return
                if (request.header("Expect") or b"").lower() == b"100-continue":
                    self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # as RFC 9110 §10.1.1 asks of a server
                read_body(self.rfile, request, until_close=False)
            except (ConnectionError, ValueError):
                return
            with self.service.lock:
                self.service.received.append(request)
            method = request.start_line.split(b" ", 1)[0]
            shape = request.header("X-Answer") or b""
            self.wfile.write(_answer(shape, method))
            if shape == b"close":
                return
            if request.wants_close():
                return


def _answer(shape: bytes, method: bytes) -> bytes:
    status = {b"204": b"204 No Content", b"304": b"304 Not Modified"}.get(shape, b"200 OK")
    head = [b"HTTP/1.1 " + status, *(name + b": " + value for name, value in ANSWER_HEADERS)]
    body = ANSWER_BODY
    if shape == b"chunked":
        head.append(b"Transfer-Encoding: chunked")
        pieces = [ANSWER_BODY[:3], ANSWER_BODY[3:]]
        body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    elif shape == b"close":
        head.append(b"Connection: close")
    elif shape == b"304":
        head.append(b'ETag: "v1"')
    elif shape != b"204":
        head.append(b"Content-Length: %d" % len(ANSWER_BODY))
    if method == b"HEAD" or shape in (b"204", b"304"):
        body = b""
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@contextmanager
def recording_service() -> Iterator[RecordingService]:
    class Handler(_Handler):  # a class per service, for its own `service`
        pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    service = RecordingService(server)
    Handler.service = service
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
