"""The local services the soak tunnels to, each built the way a real one is.

Every service answers a request with its own JSON verdict on what it received: its name, the
request's id (header X-Soak-Id), method, target, body length and SHA-256. The client recomputes
the same from what it sent, so a request that was lost, mixed up with another, cut or answered by
someone else (the agent's own error page) does not match. The answer depends only on the request,
so a replayed request gets byte-identical answers.

- `threaded`: http.server's ThreadingHTTPServer speaking HTTP/1.1 keep-alive, the response head and
  body in two writes with Nagle on (what Django's runserver does).
- `ipv6`: the same, listening on ::1 only (the tunnel says `localhost:P`).
- `longpoll`: `/poll/S/...` answers after S seconds.
- `resetting`: `/reset/...` closes the connection with SO_LINGER 0 (a TCP RST) instead of answering;
  every other path answers normally.
- `asgi`: the ASGI app in asgi_service.py, served by uvicorn in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def verdict(service: str, soak_id: str, method: str, target: str, body: bytes) -> bytes:
    """The answer every soak service gives: what it saw, as canonical JSON."""
    return verdict_of(service, soak_id, method, target, len(body), hashlib.sha256(body).hexdigest())


def verdict_of(service: str, soak_id: str, method: str, target: str, length: int, sha256: str) -> bytes:
    """The same answer from the body's length and SHA-256 (what the soak's ledger keeps)."""
    fields = {"service": service, "id": soak_id, "method": method, "target": target, "length": length}
    return json.dumps({**fields, "sha256": sha256}, sort_keys=True).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    service = ""
    resets = False

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._body()
        if self.resets and self.path.startswith("/reset/"):
            # Linger 0: close() sends RST instead of FIN, as a crashing or overloaded service does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if self.path.startswith("/poll/"):
            time.sleep(float(self.path.split("/")[2]))
        answer = verdict(self.service, self.headers.get("X-Soak-Id", ""), self.command, self.path, body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.send_header("X-Soak-Id", self.headers.get("X-Soak-Id", ""))
        self.end_headers()  # the head goes out here, in its own write
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 16  # runserver's WSGIServer has 10; socketserver's 5 would drop SYNs under load

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's name (getfqdn), which can stall: not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Server6(_Server):
    address_family = socket.AF_INET6


class Service:
    """A threaded http.server service on a loopback port, serving until close()."""

    def __init__(self, name: str, *, host: str = "127.0.0.1", resets: bool = False) -> None:
        handler = type(f"{name}_handler", (_Handler,), {"service": name, "resets": resets})
        server_class = _Server6 if ":" in host else _Server
        self.name = name
        self.server = server_class((host, 0), handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class AsgiService:
    """tests/soak/asgi_service.py under uvicorn, in its own process."""

    name = "asgi"

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.soak.asgi_service:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"uvicorn did not listen on 127.0.0.1:{self.port}")
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
