"""Traffic Policy, run on this machine: ngrok's rules of CEL expressions and actions in three
phases (on_tcp_connect, on_http_request, on_http_response).

- document.py: the policy text parsed, checked and compiled once (`load_policy`).
- cel.py, variables.py: CEL expressions and `${...}` templates; the variables an exchange exposes.
- actions/: one module per action family; the registry says which types exist and which need
  ngrok's cloud.
- runner.py: one phase run for one exchange (`run_phase`); trace.py: what it did, for the capture.
- legacy.py: the deprecated tunnel keys and flags as the equivalent policy.
No sockets here: the proxy (http_exchange.py, tcp_pipe.py) feeds facts in and acts on outcomes.
"""

from .document import Policy, load_policy
from .errors import PolicyError, PolicyRuntimeError

__all__ = ["Policy", "PolicyError", "PolicyRuntimeError", "load_policy"]
