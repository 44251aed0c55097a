"""The action types a policy may name, each in the module that builds and runs it.

Actions that need ngrok's cloud are refused when the policy loads, with the reason; so are the
ones this agent does not run yet. Nothing is silently ignored.
Source of the list: ngrok's docs, `traffic-policy/actions/*` and `snippets/ActionHub.jsx`.
"""

from __future__ import annotations

import importlib

from .base import Action

# action type -> the module (in this package) whose ACTIONS tuple holds its class
_MODULES = {
    "add-headers": "headers",
    "remove-headers": "headers",
    "basic-auth": "basic_auth",
    "custom-response": "responses",
    "deny": "responses",
    "close-connection": "responses",
    "redirect": "responses",
    "url-rewrite": "url_rewrite",
    "restrict-ips": "restrict_ips",
    "rate-limit": "rate_limit",
    "compress-response": "compress_response",
    "set-vars": "vars_and_log",
    "log": "vars_and_log",
    "circuit-breaker": "circuit_breaker",
    "verify-webhook": "verify_webhook",
    "jwt-validation": "jwt_validation",
    "forward-internal": "forward_internal",
}

CLOUD_ONLY = {
    "oauth": "its login flow runs through ngrok's cloud (the callback is idp.ngrok.com, with ngrok-managed apps)",
    "openid-connect": "it needs ngrok's cloud to hold the OIDC session and callback",
    "oidc": "it needs ngrok's cloud to hold the OIDC session and callback",
    "saml": "it needs ngrok's cloud to hold the SAML session and assertion consumer",
    "owasp-crs-request": "it runs ngrok's cloud WAF (Coraza with the OWASP Core Rule Set), which has no local engine",
    "owasp-crs-response": "it runs ngrok's cloud WAF (Coraza with the OWASP Core Rule Set), which has no local engine",
    "ai-gateway": "it routes through ngrok's cloud AI gateway and its provider keys",
}

NOT_YET = {
    "http-request",
    "request-body-find-replace",
    "response-body-find-replace",
    "sse-find-replace",
    "terminate-tls",
}


def action_class(action_type: str) -> type[Action] | None:
    """The class for a known, locally runnable action type, else None."""
    module_name = _MODULES.get(action_type)
    if module_name is None:
        return None
    module = importlib.import_module(f"{__name__}.{module_name}")
    for cls in module.ACTIONS:
        if cls.type == action_type:
            return cls
    return None
