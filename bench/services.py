"""Local services the real-traffic benchmark puts behind the agent (run as subprocesses).

Rules of this module:
- Each service is what people really run behind a tunnel, reduced to what matters for the proxy:
  - `app`: an ASGI application for uvicorn (the FastAPI/Starlette kind): GET answers a small
    HTML page, POST reads the whole body (a webhook) and answers a small JSON document;
  - `ipv6` mode: a service listening on `::1` only, as Node's dev servers do when `localhost`
    resolves to `::1` first (Node >= 17 keeps the resolver's order); the agent is given
    `localhost:PORT` and must find it. Head and body go out in one write, as Node's `res.end(body)`.
- Nothing here is measured: the services only answer. Bodies are fixed bytes, so the proxy's
  work per request does not depend on the service.
- Command line: `python bench/services.py ipv6 PORT` (the ASGI app is started with
  `python -m uvicorn services:app --app-dir bench`).
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAGE = (b"<!doctype html><title>bench</title><p>" + b"real traffic payload " * 11)[:255] + b"\n"  # 256 bytes
ACCEPTED = json.dumps({"received": True}).encode()

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """ASGI 3 application: GET -> 200 text/html (PAGE, 256 bytes); any other method reads the
    whole request body and answers 200 application/json {"received": true}."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        body, content_type = PAGE, b"text/html; charset=utf-8"
    else:
        more = True
        while more:  # a webhook receiver reads the whole body before answering
            message = await receive()
            more = message.get("more_body", False)
        body, content_type = ACCEPTED, b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def ipv6_server(port: int) -> None:
    """Serve GET (PAGE) and POST (ACCEPTED) on [::1]:port only, HTTP/1.1 keep-alive, head and body
    in one write (buffered wfile, flushed once). Runs until killed."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 65536  # one write per response, as Node's res.end(body)

        def _answer(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def do_GET(self) -> None:
            self._answer(PAGE, "text/html; charset=utf-8")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer(ACCEPTED, "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6
        request_queue_size = 128
        daemon_threads = True

    with Server(("::1", port), Handler) as server:
        server.serve_forever()


def ipv6_available() -> bool:
    """Whether this machine lets a service listen on ::1 (containers without IPv6 do not)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


if __name__ == "__main__":
    if sys.argv[1:2] == ["ipv6"]:
        ipv6_server(int(sys.argv[2]))
    else:
        sys.exit("usage: services.py ipv6 PORT")
