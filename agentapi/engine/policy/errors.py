"""The two ways a Traffic Policy fails: refused when it loads, or failing while a request runs it."""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy that does not parse or validate; refused when it loads (the API's 400, ERR_NGROK_9026).

    The message names where: the phase, the rule (by index and name), the action and the field, and
    for a CEL expression the column. Example:
    `on_http_request.rules[0] ("auth").actions[0] (basic-auth).config.credentials[0]: the password must be 8-128 characters`.
    """


class PolicyRuntimeError(RuntimeError):
    """An expression or action that fails while a request runs the policy (a CEL error, a bad
    interpolated value, a JWKS that cannot be read). The client gets the agent's 500 with an
    `ngrok-error-code` header; the capture and the log say which rule and action failed."""
