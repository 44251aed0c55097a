"""One exchange's run through its endpoint's Traffic Policy: the scope its expressions share from
request to response, the trace it leaves in the capture, and failures turned into answers.

Rules:
- One Scope per exchange; `vars` start empty in each phase: ngrok's set-vars page scopes the
  variables a phase defines to that phase.
- The trace starts with the connection's on_tcp_connect steps; every phase appends to it.
- Nothing a policy does may crash the proxy: PolicyRuntimeError (a CEL error, a failing action)
  and any other exception from an action become the agent's 500 with `ngrok-error-code`
  (http_policy.failure_answer), a terminal "error" step in the trace and one log line.
- `response_status` reports the final status once (circuit-breaker counts 5xx through it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from .http_policy import failure_answer
from .policy.actions.base import PhaseRun
from .policy.document import Policy
from .policy.errors import PolicyRuntimeError
from .policy.facts import ConnFacts, EndpointFacts, RequestFacts, ResponseFacts
from .policy.outcomes import Outcome
from .policy.runner import run_phase
from .policy.trace import TraceEntry
from .policy.variables import Scope

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ExchangePolicy:
    policy: Policy
    endpoint_name: str
    scope: Scope
    request: RequestFacts
    trace: list[TraceEntry]
    on_response: list[Callable[[int], None]] = field(default_factory=list)
    internal_exists: Callable[[str], bool] = lambda url: False
    compress: str | None = None
    reported: bool = False

    @classmethod
    def start(
        cls,
        policy: Policy,
        *,
        endpoint: EndpointFacts,
        conn: ConnFacts,
        request: RequestFacts,
        trace: list[TraceEntry],
        internal_exists: Callable[[str], bool] = lambda url: False,
    ) -> ExchangePolicy:
        scope = Scope(conn=conn, endpoint=endpoint)
        scope.request = request
        return cls(
            policy=policy,
            endpoint_name=endpoint.name,
            scope=scope,
            request=request,
            trace=trace,
            internal_exists=internal_exists,
        )

    def run(self, phase: str, response: ResponseFacts | None = None) -> Outcome | None:
        """Run one phase; an Outcome that ends it (the agent's 500 when the policy failed)."""
        scope = self.scope
        scope.vars = {}
        scope.request = self.request
        scope.changed("req")
        if response is not None:
            scope.response = response
            scope.changed("res")
        run = PhaseRun(
            phase=phase,
            scope=scope,
            conn=scope.conn,
            request=self.request,
            response=response,
            trace=self.trace,
            on_response=self.on_response,
            internal_exists=self.internal_exists,
        )
        try:
            outcome = run_phase(self.policy, run)
        except PolicyRuntimeError as error:
            detail = str(error)
            log.warning("tunnel %s: traffic policy failed: %s", self.endpoint_name, detail)
        except Exception as error:  # an action's own bug must not take the agent down
            detail = f"{run.phase} rule {run.rule!r}: {type(error).__name__}: {error}"
            log.exception("tunnel %s: traffic policy action crashed", self.endpoint_name)
        else:
            if run.compress:
                self.compress = run.compress
            return outcome
        self.trace.append(TraceEntry(phase, run.rule, "error", f"500: {detail[:300]}", True))
        return failure_answer(detail[:300])

    def response_status(self, status: int) -> None:
        if self.reported:
            return
        self.reported = True
        for callback in self.on_response:
            try:
                callback(status)
            except Exception:  # a counter's bug must not fail the exchange
                log.exception("tunnel %s: on_response hook failed", self.endpoint_name)
