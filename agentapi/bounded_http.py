"""uvicorn's httptools protocol with a bound on the request target.

httptools.parse_url keeps URL offsets in 16 bits, so a target past 64 KiB wraps around and
`/api/tunnels/victim/zzzz...` (65,535 z) reaches Django as `/api/tunnels/victim/`. Long targets
are refused while they arrive, with 414 in the agent API's error shape.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from agentapi import go_json
from agentapi.errors import error_body

MAX_TARGET_BYTES = 16 * 1024


class TargetTooLong(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_TARGET_BYTES:
            body = (
                go_json.dumps(
                    error_body(414, 100, "request target too long", f"the limit is {MAX_TARGET_BYTES} bytes")
                ).encode()
                + b"\n"
            )
            self.transport.write(
                b"HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (len(body), body)
            )
            self.transport.close()
            raise TargetTooLong  # stops the parser; uvicorn then tries to answer 400 (below)

    def send_400_response(self, msg: str) -> None:
        if not self.transport.is_closing():
            super().send_400_response(msg)
