"""The circuit-breaker action: refuse requests for a while when too many of them fail.

Rules (ngrok's `traffic-policy/actions/circuit-breaker.mdx`; the state machine is breaker.py's):
- Phase on_http_request; not terminating (it answers only when tripped).
- Config: `error_threshold` (0.0 to 1.0, default 0.5: ngrok's table marks it required yet gives
  this default, and a default only makes sense for an optional field), `volume_threshold` (1 to
  2,000,000,000, default 10), `window_duration` (1s to 2m, default 10s), `tripped_duration` (1s
  to 2m, default 10s), `num_buckets` ("fixed at 10": 10 is accepted, any other value refused),
  `enforce` (default true). Unknown fields are refused; the names of ngrok's migration guide
  (`rolling_window`, `error_threshold_percentage`) are refused with the field to use instead.
- An error is a 5xx final response: the service's, or the agent's own when the service failed
  (the proxy reports each final status through `PhaseRun.on_response`). The breaker's own 503s
  are not counted: those requests never reached the service.
- Tripped: `503 Service Unavailable` with `ngrok-error-code: ERR_NGROK_3202` ("Circuit breaker
  tripped", ngrok's error reference); the trace says "503, tripped".
- `enforce: false`: the breaker never trips and nothing is refused; outcomes are still counted
  and the trace says whether it would have tripped.
- One breaker per action, shared by every request the action sees (its rule's expressions
  decide which); it lives as long as the loaded policy. No result variables (ngrok sets none).
"""

from __future__ import annotations

from ..breaker import CircuitBreaker
from ..go_duration import config_duration
from ..outcomes import Outcome, Respond
from .base import REQUEST, Action, Config, PhaseRun

TRIPPED_CODE = "ERR_NGROK_3202"
NUM_BUCKETS = 10
_RENAMED = {"rolling_window": "window_duration", "error_threshold_percentage": "error_threshold"}


class CircuitBreakerAction(Action):
    """ngrok's `circuit-breaker` action (see the module's rules)."""

    type = "circuit-breaker"
    phases = frozenset({REQUEST})

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        for old, new in _RENAMED.items():
            if config.has(old):
                raise config.error(old, f"unknown field: the circuit-breaker action calls it {new}")
        error_threshold = config.number("error_threshold", 0.5, minimum=0.0, maximum=1.0)
        volume_threshold = config.integer("volume_threshold", 10, minimum=1, maximum=2_000_000_000)
        window = config_duration(config, "window_duration", "10s", minimum=1, maximum=120)
        tripped = config_duration(config, "tripped_duration", "10s", minimum=1, maximum=120)
        num_buckets = config.integer("num_buckets", NUM_BUCKETS)
        if num_buckets != NUM_BUCKETS:
            raise config.error("num_buckets", f"is fixed at {NUM_BUCKETS}, was {num_buckets}")
        self.enforce = config.boolean("enforce", True)
        self.breaker = CircuitBreaker(
            error_threshold=error_threshold,
            volume_threshold=volume_threshold,
            window=window,
            tripped=tripped,
            num_buckets=NUM_BUCKETS,
        )

    def run(self, run: PhaseRun) -> Outcome | None:
        breaker, clock = self.breaker, run.clock
        now = clock()
        if not self.enforce:
            requests, errors = breaker.counts(now)
            would = "would trip" if breaker.tripping(now) else "closed"
            run.note(self.type, f"{would} (enforce: false), {errors}/{requests} errors")
            run.on_response.append(lambda status: breaker.record(clock(), error=status >= 500))
            return None
        admission = breaker.admit(now)
        if not admission.allowed:
            run.note(self.type, "503, tripped", terminal=True)
            return Respond(
                503,
                [("Content-Type", "text/plain; charset=utf-8"), ("ngrok-error-code", TRIPPED_CODE)],
                f"Circuit breaker tripped ({TRIPPED_CODE})\n".encode(),
            )
        trial = admission.trial
        run.on_response.append(lambda status: breaker.record(clock(), error=status >= 500, trial=trial))
        if trial:
            run.note(self.type, "half-open: trial request")
        else:
            run.note(self.type, f"closed, {admission.errors}/{admission.requests} errors")
        return None


ACTIONS = (CircuitBreakerAction,)
