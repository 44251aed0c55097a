"""What the runtime facade (runtime.py) raises: one place for every caller to catch.

Each caller turns these into its own shape: the API into ngrok's error body (views.py, errors.py),
the inspector into its JSON errors, the admin into messages, `serve` into a start-up failure.

- TunnelConfigError   a definition that is not valid (a bad value, an unknown key, a bad name)
- TunnelExists        a tunnel of that name runs already (here or in another agent)
- TunnelStartError    the listener could not be opened (port in use, permission, certificate)
- TunnelNotRunning    no tunnel of that name runs, here or in any agent that can be asked
- PeerUnavailable     the tunnel runs in another agent that cannot be asked (no shared channel layer,
                      no answer in time)
- ReplayRefused       the request would not cross whole (cut at the capture limit, incomplete, not
                      one HTTP request); NotAnHttpTunnel, a ReplayRefused, when the tunnel is tcp/tls

The engine's own errors are re-exported, not wrapped: their messages are already what the API shows.
"""

from __future__ import annotations

from .engine.engine import ReplayRefused, TunnelExists, TunnelStartError
from .engine.tunnel_spec import TunnelConfigError

__all__ = [
    "NotAnHttpTunnel",
    "PeerUnavailable",
    "ReplayRefused",
    "TunnelConfigError",
    "TunnelExists",
    "TunnelNotRunning",
    "TunnelStartError",
]


class TunnelNotRunning(LookupError):
    """No tunnel of this name runs, here or in an agent that was asked."""

    def __init__(self, name: str) -> None:
        super().__init__(f'tunnel "{name}" is not running')
        self.name = name


class PeerUnavailable(Exception):
    """The tunnel runs in another agent that cannot be asked (no shared channel layer, no answer)."""


class NotAnHttpTunnel(ReplayRefused):
    """Only http(s) tunnels replay requests: a tcp or tls tunnel has no requests to speak of."""

    def __init__(self, name: str, proto: str) -> None:
        super().__init__(f'tunnel "{name}" is {proto}: only http tunnels replay requests')
        self.name = name
