"""CEL variables for one exchange, built lazily from its facts. (STUB: the CEL helper replaces
this module; the signatures are the contract.)"""

from __future__ import annotations

from typing import Any

from .facts import ConnFacts, EndpointFacts, RequestFacts, ResponseFacts


class Scope:
    """The variables one exchange's expressions see: req, res, conn, endpoint, time, vars, actions.

    One Scope per exchange (per connection for on_tcp_connect), so `vars` set in on_http_request
    are seen in on_http_response. `request`/`response` may be replaced or changed in place by
    actions; call `changed("req")`/`changed("res")` after a change so later rules see it.
    """

    def __init__(self, *, conn: ConnFacts, endpoint: EndpointFacts) -> None:
        self.conn = conn
        self.endpoint = endpoint
        self.request: RequestFacts | None = None
        self.response: ResponseFacts | None = None
        self.vars: dict[str, Any] = {}
        # actions.ngrok.<name>.*: what an action reports for later rules (e.g. basic_auth).
        self.actions: dict[str, dict[str, Any]] = {}

    def changed(self, root: str) -> None:
        """Forget the cached CEL value of a root variable ("req", "res", "vars", "actions")."""
