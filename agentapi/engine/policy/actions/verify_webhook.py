"""verify-webhook: a request must carry its provider's valid signature for the shared secret.

Rules (ngrok's docs, `traffic-policy/actions/verify-webhook.mdx`; the providers' schemes in
webhook_providers.py and the modules it names):
- Phase: on_http_request. Config: `provider` (an ngrok provider identifier, required; one this
  agent does not verify, or an unknown one, is refused at load), `secret` (required, not empty,
  `${...}` allowed), `enforce` (default true). Unknown fields are refused.
- It reads the whole request body (`needs_body`): the proxy reads it before the phase runs.
- The URL a provider signs (Twilio, Square) is the one it called: the public side's scheme, the
  Host field and the request target.
- Verified: the request goes on ("verified github" in the trace).
- A provider's challenge (Twitter CRC, Worldline, Xero intent to receive, Zoom url_validation) is
  answered by the agent; the phase ends.
- Not verified and `enforce`: 403 with a short text/plain body saying why and `ngrok-error-code:
  ERR_NGROK_3204` ("Request failed webhook verification"), ending the phase; Xero's refusal is its
  own 401 with no body. Not verified and `enforce: false`: the request goes on.
- actions.ngrok.verify_webhook.verified (bool), .error.code and .error.message (ERR_NGROK_3204 and
  why when not verified, empty strings when verified).
- A secret that renders empty at run time fails the rule (the agent's 500), as a missing secret
  is a configuration error, not a bad request.
"""

from __future__ import annotations

from ..errors import PolicyError, PolicyRuntimeError
from ..facts import RequestFacts
from ..outcomes import Outcome, Respond
from ..webhook_providers import provider_named, verify
from .base import REQUEST, Action, Config, PhaseRun

ERROR_CODE = "ERR_NGROK_3204"  # ngrok: "Request failed webhook verification"


def request_url(request: RequestFacts) -> str:
    """The absolute URL the request was sent to: scheme://host/target."""
    return f"{request.scheme}://{request.host}{request.target}"


class VerifyWebhook(Action):
    """verify-webhook: `provider`, `secret`, `enforce`; 403 unless the provider's signature holds."""

    type = "verify-webhook"
    phases = frozenset({REQUEST})
    needs_body = True

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        name = config.string("provider")
        try:
            self.provider = provider_named(name)
        except PolicyError as error:
            raise config.error("provider", str(error)) from None
        self.secret = config.template("secret")
        if self.secret.constant and not self.secret.source:
            raise config.error("secret", "must not be empty")
        self.enforce = config.boolean("enforce", True)
        config.finish()

    def run(self, run: PhaseRun) -> Outcome | None:
        request = run.request
        if request is None or request.body is None:
            raise PolicyRuntimeError("verify-webhook needs the whole request body, which was not read")
        secret = run.render(self.secret)
        if not secret:
            raise PolicyRuntimeError("the secret rendered empty")
        verdict = verify(
            self.provider,
            secret.encode("utf-8"),
            method=request.method,
            url=request_url(request),
            headers=request.headers,
            body=request.body,
            now=run.clock(),
        )
        run.scope.actions["verify_webhook"] = {
            "verified": verdict.ok,
            "error": {"code": "" if verdict.ok else ERROR_CODE, "message": verdict.reason},
        }
        run.scope.changed("actions")
        name = self.provider.name
        if verdict.answer is not None:
            run.note(self.type, f"answered {verdict.handshake}", terminal=True)
            return verdict.answer
        if verdict.ok:
            run.note(self.type, f"verified {name}")
            return None
        if not self.enforce:
            run.note(self.type, f"not verified, not enforced ({name}): {verdict.reason}")
            return None
        refusal = verdict.refusal or Respond(
            403,
            [("Content-Type", "text/plain; charset=utf-8"), ("ngrok-error-code", ERROR_CODE)],
            f"webhook verification failed ({name}): {verdict.reason}\n".encode(),
        )
        run.note(self.type, f"refused {refusal.status}: {verdict.reason}", terminal=True)
        return refusal


ACTIONS = (VerifyWebhook,)
