"""How a terminating action ends a phase. The proxy turns each into bytes on the wire."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Respond:
    """The agent answers (custom-response, deny, redirect, a refused basic-auth...).

    `headers` are sent as given, plus Content-Length (and Content-Type when the body has one to
    infer and none is given). In on_http_response it replaces the service's response.
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """close-connection, or deny on on_tcp_connect: the connection closes without an answer."""


@dataclass(frozen=True, slots=True)
class ForwardInternal:
    """forward-internal: the request (or connection) goes to the internal endpoint at `url`."""

    url: str
    on_error: str = "halt"  # "halt": the agent's 502 when that endpoint is missing; "continue": go on


Outcome = Respond | CloseConnection | ForwardInternal
