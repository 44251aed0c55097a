"""forward-internal: send the request (or the TCP connection) to an internal endpoint of this agent.

Rules (ngrok's `traffic-policy/actions/forward-internal.mdx`):
- Phases on_http_request and on_tcp_connect. Config: `url` (required, `${...}` allowed), the
  internal endpoint such as `https://api.internal`; `on_error`: `halt` (default) or `continue`.
- Forwarding ends the phase: the internal endpoint's own policy runs, then its service answers; no
  more actions of this policy run and this endpoint's service gets nothing.
- An internal endpoint that is not running here is an error: with `halt` the client gets the
  agent's 404 with `ngrok-error-code: ERR_NGROK_3200` (endpoint offline); with `continue` the
  next actions run as if this one had not been there.
- The target must be an internal endpoint (a `.internal` host) of the same protocol; the proxy
  checks the protocol when it forwards.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from ..outcomes import CloseConnection, ForwardInternal, Outcome, Respond
from .base import REQUEST, TCP, Action, Config, PhaseRun

ENDPOINT_OFFLINE = "ERR_NGROK_3200"


class ForwardInternalAction(Action):
    type: ClassVar[str] = "forward-internal"
    phases: ClassVar[frozenset[str]] = frozenset({REQUEST, TCP})
    terminating: ClassVar[bool] = True

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        self.url = config.template("url")
        if self.url.constant:
            _check_internal(self.url.source, config)
        self.on_error = config.string("on_error", "halt")
        if self.on_error not in ("halt", "continue"):
            raise config.error("on_error", "must be halt or continue")

    def run(self, run: PhaseRun) -> Outcome | None:
        url = run.render(self.url)
        if run.internal_exists(url):
            run.note(self.type, f"-> {url}", terminal=True)
            return ForwardInternal(url, self.on_error)
        if self.on_error == "continue":
            run.note(self.type, f"{url} is offline: continue")
            return None
        run.note(self.type, f"404: {url} is offline", terminal=True)
        if run.phase == TCP:
            return CloseConnection()
        body = f"The internal endpoint {url} is offline.\n".encode("utf-8", "replace")
        return Respond(404, [("ngrok-error-code", ENDPOINT_OFFLINE), ("Content-Type", "text/plain")], body)


def _check_internal(url: str, config: Config) -> None:
    text = url if "://" in url else f"https://{url}"
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:
        host = ""
    if not host.endswith(".internal"):
        raise config.error("url", f"{url[:100]!r} is not an internal endpoint URL (its host must end in .internal)")


ACTIONS = (ForwardInternalAction,)
