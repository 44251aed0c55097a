"""What a policy can see of one connection, endpoint, request and response: plain values the
proxy fills in and CEL's variables are built from (variables.py). No sockets, no parsing.

Text is decoded as latin-1 (RFC 9110 5.5: field values are octets; latin-1 maps each byte to one
character and back), so a rewritten header goes out as the bytes it came in as. What a CEL
expression sees is `as_text` of it: the UTF-8 the bytes almost always are (a bad byte reads as
U+FFFD), so `getReqHeader('x-name')[0] == 'é'` holds for an `é` sent as UTF-8; a value rendered
back into a header goes out as UTF-8 (actions/headers.py `wire_text`), the bytes it came as.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def as_text(field_text: str) -> str:
    """Field text (latin-1, one character a byte) as the UTF-8 text it carries, for CEL."""
    if field_text.isascii():
        return field_text
    return field_text.encode("latin-1", "replace").decode("utf-8", "replace")


@dataclass(slots=True)
class ConnFacts:
    """One public connection (ngrok's `conn.*`)."""

    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    start: float  # epoch seconds the connection was accepted
    # TLS facts when the public side speaks TLS, else None: version ("TLSv1.3"), cipher, sni, alpn.
    tls: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class EndpointFacts:
    """The tunnel the traffic arrived on (ngrok's `endpoint.*`)."""

    id: str
    name: str
    url: str  # the public URL, e.g. http://127.0.0.1:41234
    host: str
    port: int
    protocol: str  # http, https, tcp or tls
    upstream_url: str  # the normalised addr, e.g. http://localhost:8080


@dataclass(slots=True)
class RequestFacts:
    """A request as the policy sees it, and changes it (headers added, the URL rewritten).

    `target` is origin-form (`/path?query`). `headers` keep their order and spelling; names are
    compared case-insensitively. `body` is the whole request body when an action needs it
    (verify-webhook), else None.
    """

    method: str
    target: str
    version: str  # "1.1"
    scheme: str  # the public side's: http or https
    host: str  # the Host field's value
    headers: list[tuple[str, str]]
    start: float  # epoch seconds the request head arrived
    body: bytes | None = None

    def header(self, name: str) -> str | None:
        """The first value of a field, by case-insensitive name."""
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        lower = name.lower()
        return [value for key, value in self.headers if key.lower() == lower]


@dataclass(slots=True)
class ResponseFacts:
    """A response head as the policy sees it, and changes it (on_http_response)."""

    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        lower = name.lower()
        return [value for key, value in self.headers if key.lower() == lower]
