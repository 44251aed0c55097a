"""A local service for the tunnels to forward to: records every request it gets, byte for byte.

Routes: `/status/NNN` answers that status; `/bytes/N` answers N bytes (0..255 repeating);
`/chunked` answers with chunked framing; `/slow/S` answers after S seconds; `/close` answers with
no length and closes; anything else echoes the request body. `/ws` answers an Upgrade with 101 and
then echoes raw bytes.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Upstream:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body go out in separate writes; with Nagle the body would wait ~40 ms for an ACK.
    disable_nagle_algorithm = True
    upstream: Upstream

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        if self.path == "/ws" and self.headers.get("Upgrade"):
            self._websocket()
            return
        body = self._body()
        self.upstream.received.append(Received(self.command, self.path, list(self.headers.items()), body))
        parts = self.path.strip("/").split("/")
        if parts[0] == "status":
            self._answer(int(parts[1]), b"status " + parts[1].encode())
        elif parts[0] == "bytes":
            size = int(parts[1])
            self._answer(200, bytes(i % 256 for i in range(size)), "application/octet-stream")
        elif parts[0] == "chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"first,", b"second,", b"third"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif parts[0] == "slow":
            time.sleep(float(parts[1]))
            self._answer(200, b"slow")
        elif parts[0] == "close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the end")
            self.close_connection = True
        else:
            content_type = self.headers.get("Content-Type") or "application/octet-stream"
            self._answer(200, body, content_type)

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def _websocket(self) -> None:
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.end_headers()
        self.wfile.flush()
        connection = self.connection
        while data := connection.recv(65536):
            connection.sendall(data)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


def start_upstream() -> Upstream:
    class Handler(_Handler):  # a class per service, for its own `upstream`
        pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    upstream = Upstream(server)
    Handler.upstream = upstream
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return upstream


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
