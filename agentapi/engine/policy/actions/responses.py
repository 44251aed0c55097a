"""The agent's own answers: custom-response, deny, close-connection and redirect.

Rules (ngrok's docs, `traffic-policy/actions/<type>.mdx`):
- custom-response (on_http_request, on_http_response; terminating): `status_code` (default 200),
  `body` (`${...}` allowed, sent as UTF-8), `headers` (at most 10, `${...}` in values). In
  on_http_request the service is not asked; in on_http_response the answer replaces the
  service's response. Without a content-type field the proxy infers one from the body
  (outcomes.Respond; http_policy.inferred_content_type: JSON, HTML or plain text), so the rule
  lives in one place.
- deny (on_tcp_connect, on_http_request; terminating): in on_http_request the answer is
  `status_code` (default 403) with no body ("will not send back a response body"); in
  on_tcp_connect it has no config fields and closes the connection.
- close-connection (on_http_request, on_tcp_connect; terminating): no config fields; the
  connection closes without an answer.
- redirect (on_http_request): `from`/`to` rewrite the request URL as url-rewrite does
  (url_rewrite.py), then the answer is `status_code` (a 3xx, default 302) with `Location` and
  `headers` (at most 10, `${...}` in values; `location` is the action's own). When `from` does
  not match, or the URL comes out unchanged, the action does nothing and the rule goes on ("If
  the rewritten URL is identical to the original, ngrok skips the redirect"). Sets
  actions.ngrok.redirect.matches, .url (the Location, "" when there was no redirect) and
  .error.code/.message ("").
- Status codes of an answer are 200-599: a 1xx is an interim response, not an answer.
"""

from __future__ import annotations

from ..outcomes import CloseConnection, Outcome, Respond
from .base import REQUEST, RESPONSE, TCP, Action, Config, PhaseRun
from .headers import HeaderTemplates, wire_text
from .url_rewrite import UrlRewriter, request_url

MIN_STATUS, MAX_STATUS = 200, 599
_NO_ERROR = {"code": "", "message": ""}


class CustomResponse(Action):
    """custom-response: answers `status_code` with `headers` and `body`, ending the phase."""

    type = "custom-response"
    phases = frozenset({REQUEST, RESPONSE})
    terminating = True

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        self.status = config.integer("status_code", 200, minimum=MIN_STATUS, maximum=MAX_STATUS)
        self.body = config.template("body", "")
        self.headers = HeaderTemplates(config, "headers", required=False)
        config.finish()

    def run(self, run: PhaseRun) -> Outcome | None:
        body = run.render(self.body).encode("utf-8")
        headers = [(name, wire_text(value)) for name, value in self.headers.render(run)]
        run.note(self.type, f"{self.status}, {len(body)} bytes", terminal=True)
        return Respond(self.status, headers, body)


class Deny(Action):
    """deny: the answer `status_code` (default 403) in on_http_request; a close in on_tcp_connect."""

    type = "deny"
    phases = frozenset({TCP, REQUEST})
    terminating = True

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        self.status = 0
        if phase == TCP:
            if config.has("status_code"):
                raise config.error(
                    "status_code", "deny has no config fields in on_tcp_connect: it closes the connection"
                )
        else:
            self.status = config.integer("status_code", 403, minimum=MIN_STATUS, maximum=MAX_STATUS)
        config.finish()

    def run(self, run: PhaseRun) -> Outcome | None:
        if run.phase == TCP:
            run.note(self.type, "closed connection", terminal=True)
            return CloseConnection()
        run.note(self.type, str(self.status), terminal=True)
        return Respond(self.status)


class CloseConnectionAction(Action):
    """close-connection: the connection closes at once, without an answer."""

    type = "close-connection"
    phases = frozenset({TCP, REQUEST})
    terminating = True

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        config.finish()

    def run(self, run: PhaseRun) -> Outcome | None:
        run.note(self.type, "closed connection", terminal=True)
        return CloseConnection()


class Redirect(Action):
    """redirect: a 3xx to the request URL rewritten by `from` -> `to`, when that changes it."""

    type = "redirect"
    phases = frozenset({REQUEST})

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        self.rewriter = UrlRewriter(config)
        self.status = config.integer("status_code", 302, minimum=300, maximum=399)
        self.headers = HeaderTemplates(
            config,
            "headers",
            required=False,
            refused={"location": "the redirect sets location itself, from `from` and `to`"},
        )
        config.finish()

    def run(self, run: PhaseRun) -> Outcome | None:
        url = request_url(run)
        rewritten = self.rewriter.apply(run, url)
        redirected = bool(rewritten.matches) and rewritten.url != url
        run.scope.actions["redirect"] = {
            "matches": rewritten.matches,
            "url": rewritten.url if redirected else "",
            "error": dict(_NO_ERROR),
        }
        run.scope.changed("actions")
        if not redirected:
            run.note(self.type, "no match" if not rewritten.matches else "unchanged")
            return None
        headers = [("Location", rewritten.url)]
        headers += [(name, wire_text(value)) for name, value in self.headers.render(run)]
        run.note(self.type, f"{self.status} -> {rewritten.url}", terminal=True)
        return Respond(self.status, headers)


ACTIONS = (CustomResponse, Deny, CloseConnectionAction, Redirect)
