"""What the Traffic Policy action tests share: one connection, one endpoint, and a Scope that
remembers which roots an action said it changed."""

from __future__ import annotations

from agentapi.engine.policy.facts import ConnFacts, EndpointFacts
from agentapi.engine.policy.variables import Scope


def sample_conn(client_ip: str = "203.0.113.7") -> ConnFacts:
    return ConnFacts(client_ip=client_ip, client_port=50123, server_ip="127.0.0.1", server_port=8080, start=0.0)


def sample_endpoint() -> EndpointFacts:
    return EndpointFacts(
        id="ep_1",
        name="web",
        url="https://example.ngrok.app",
        host="example.ngrok.app",
        port=443,
        protocol="https",
        upstream_url="http://localhost:8080",
    )


class RecordingScope(Scope):
    """A Scope that remembers which roots were said to have changed."""

    def __init__(self, *, conn: ConnFacts, endpoint: EndpointFacts) -> None:
        super().__init__(conn=conn, endpoint=endpoint)
        self.changes: list[str] = []

    def changed(self, root: str) -> None:
        self.changes.append(root)
        super().changed(root)
