"""A response body compressed on its way to the client (Traffic Policy's compress-response).

Rules:
- The service's bytes are de-framed by a second llhttp parser (Content-Length, chunked or
  close-delimited: RFC 9112 6.3) that sees only this response, from its final head on; the body
  is compressed chunk by chunk (each flushed: policy/response_compression.py) and framed again,
  chunked for HTTP/1.1 clients, close-delimited for HTTP/1.0 ones.
- Trailer fields of a chunked response are dropped (they described the uncompressed body).
- `end()` gives the encoder's tail and, when chunked, the last chunk: the proxy writes it when the
  service's response ends, so the client sees a whole compressed body or, when the service broke
  off, a body without its end (and the capture says so).
"""

from __future__ import annotations

import httptools

from .http1 import LAST_CHUNK, chunk
from .policy.response_compression import encoder


class CompressedBody:
    def __init__(self, coding: str, *, chunked: bool) -> None:
        self._encoder = encoder(coding)
        self._chunked = chunked
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self.close_delimited = not chunked  # the client learns the end from the close

    def on_body(self, data: bytes) -> None:
        self._body.append(data)

    def feed(self, data: bytes) -> bytes:
        """The service's bytes (the first call starts with the final response head) in; what the
        client gets out (possibly nothing yet)."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            pass  # the framing parser upstream (upstream.py) judges malformed responses
        if not self._body:
            return b""
        body = b"".join(self._body)
        self._body.clear()
        return self._framed(self._encoder.compress(body))

    def end(self) -> bytes:
        tail = self._framed(self._encoder.flush())
        return tail + LAST_CHUNK if self._chunked else tail

    def _framed(self, data: bytes) -> bytes:
        if not data:
            return b""
        return chunk(data) if self._chunked else data
