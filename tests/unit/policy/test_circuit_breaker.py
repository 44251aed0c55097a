"""circuit-breaker (ngrok's docs, traffic-policy/actions/circuit-breaker.mdx) and its state machine:
when it trips, the rolling window, the half-open trial, the 503 it answers and the config it refuses.
Time is a number the test sets; nothing sleeps."""

from __future__ import annotations

from typing import Any

import pytest

from agentapi.engine.policy import PolicyError, load_policy
from agentapi.engine.policy.actions.base import REQUEST, Config, PhaseRun
from agentapi.engine.policy.actions.circuit_breaker import CircuitBreakerAction
from agentapi.engine.policy.breaker import BreakerState, CircuitBreaker
from agentapi.engine.policy.facts import ConnFacts, EndpointFacts, RequestFacts
from agentapi.engine.policy.outcomes import Respond
from agentapi.engine.policy.runner import run_phase
from agentapi.engine.policy.variables import Scope

WHERE = "on_http_request.rules[0].actions[0] (circuit-breaker).config"
DOCS_CONFIG = {
    "error_threshold": 0,
    "volume_threshold": 1,
    "window_duration": "60s",
    "tripped_duration": "2m",
    "enforce": True,
}


def breaker(**overrides: Any) -> CircuitBreaker:
    settings: dict[str, Any] = {"error_threshold": 0.5, "volume_threshold": 4, "window": 10.0, "tripped": 10.0}
    return CircuitBreaker(**{**settings, **overrides})


def finish(machine: CircuitBreaker, now: float, *statuses: int) -> None:
    for status in statuses:
        admission = machine.admit(now)
        assert admission.allowed
        machine.record(now, error=status >= 500, trial=admission.trial)


# The state machine


def test_it_trips_when_the_error_ratio_reaches_the_threshold_over_enough_requests() -> None:
    machine = breaker()
    finish(machine, 100.0, 200, 500, 200, 500)  # 2 of 4: 0.5
    admission = machine.admit(100.5)
    assert not admission.allowed
    assert (admission.requests, admission.errors) == (4, 2)
    assert machine.state(100.5) is BreakerState.OPEN


def test_below_the_volume_threshold_even_all_errors_do_not_trip_it() -> None:
    machine = breaker()
    finish(machine, 100.0, 500, 500, 500)
    assert machine.admit(100.5).allowed


def test_under_the_error_threshold_it_stays_closed() -> None:
    machine = breaker()
    finish(machine, 100.0, 500, 200, 200, 200, 200)
    assert machine.admit(100.5).allowed
    assert machine.state(100.5) is BreakerState.CLOSED


def test_errors_older_than_the_window_no_longer_count() -> None:
    machine = breaker()
    finish(machine, 100.0, 500, 500, 500)
    finish(machine, 109.0, 500)  # four errors, but the first three are from another second
    machine.record(109.0, error=False)
    assert machine.counts(110.5) == (2, 1)  # the bucket of 100 s has slid out of the 10 s window
    assert machine.admit(110.5).allowed


def test_open_it_refuses_until_the_tripped_time_then_lets_one_trial_through() -> None:
    machine = breaker()
    finish(machine, 100.0, 500, 500, 500, 500)
    assert not machine.admit(100.0).allowed
    assert not machine.admit(109.9).allowed
    trial = machine.admit(110.0)
    assert trial.allowed and trial.trial
    assert machine.state(110.0) is BreakerState.HALF_OPEN
    assert not machine.admit(110.1).allowed  # one trial at a time


def test_a_trial_that_succeeds_closes_it_and_clears_the_window() -> None:
    machine = breaker()
    finish(machine, 100.0, 500, 500, 500, 500)
    machine.admit(100.0)
    trial = machine.admit(110.0)
    machine.record(110.2, error=False, trial=trial.trial)
    assert machine.state(110.2) is BreakerState.CLOSED
    assert machine.counts(110.2) == (0, 0)
    assert machine.admit(110.3).allowed


def test_a_trial_that_fails_keeps_it_open_for_another_tripped_duration() -> None:
    machine = breaker()
    finish(machine, 100.0, 500, 500, 500, 500)
    machine.admit(100.0)
    trial = machine.admit(110.0)
    machine.record(111.0, error=True, trial=trial.trial)
    assert machine.state(111.0) is BreakerState.OPEN
    assert not machine.admit(120.5).allowed
    assert machine.admit(121.0).trial


def test_a_trial_that_never_answers_is_replaced_after_the_tripped_duration() -> None:
    machine = breaker()
    finish(machine, 100.0, 500, 500, 500, 500)
    machine.admit(100.0)
    assert machine.admit(110.0).trial
    assert machine.state(120.0) is BreakerState.OPEN
    assert machine.admit(120.0).trial


def test_a_late_success_of_a_request_let_through_before_the_trip_does_not_close_it() -> None:
    machine = breaker()
    early = machine.admit(100.0)
    finish(machine, 100.0, 500, 500, 500, 500)
    machine.admit(100.1)
    machine.record(100.2, error=False, trial=early.trial)
    assert machine.state(100.2) is BreakerState.OPEN


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="error_threshold"):
        breaker(error_threshold=1.5)
    with pytest.raises(ValueError, match="num_buckets"):
        breaker(num_buckets=0)


# The action


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def action(config: dict[str, Any]) -> CircuitBreakerAction:
    built = Config(config, where=WHERE)
    circuit = CircuitBreakerAction(built, phase=REQUEST)
    built.finish()
    return circuit


def phase_run(clock: Clock) -> PhaseRun:
    conn = ConnFacts(client_ip="203.0.113.7", client_port=50123, server_ip="127.0.0.1", server_port=8080, start=0.0)
    endpoint = EndpointFacts("ep_1", "web", "https://hotdog.ngrok.app", "hotdog.ngrok.app", 443, "https", "")
    scope = Scope(conn=conn, endpoint=endpoint)
    request = RequestFacts("GET", "/", "1.1", "https", "hotdog.ngrok.app", [("Host", "hotdog.ngrok.app")], 0.0)
    scope.request = request
    return PhaseRun(phase=REQUEST, scope=scope, conn=conn, request=request, clock=clock)


def exchange(circuit: CircuitBreakerAction, clock: Clock, status: int) -> tuple[PhaseRun, int]:
    """One request through the action; the service's `status` reported as the proxy would."""
    run = phase_run(clock)
    outcome = circuit.run(run)
    if isinstance(outcome, Respond):
        return run, outcome.status
    for callback in run.on_response:
        callback(status)
    return run, status


def test_the_docs_example_lets_the_first_request_through_and_answers_the_second_with_503() -> None:
    circuit = action(DOCS_CONFIG)
    clock = Clock(1000.0)
    first, status = exchange(circuit, clock, 200)
    assert status == 200
    assert first.trace[-1].outcome == "closed, 0/0 errors"
    clock.now = 1000.01
    second, status = exchange(circuit, clock, 200)
    assert status == 503
    entry = second.trace[-1]
    assert (entry.action, entry.outcome, entry.terminal) == ("circuit-breaker", "503, tripped", True)


def test_the_503_names_ngroks_error_code() -> None:
    circuit = action(DOCS_CONFIG)
    clock = Clock(0.0)
    exchange(circuit, clock, 200)
    outcome = circuit.run(phase_run(clock))
    assert isinstance(outcome, Respond)
    assert ("ngrok-error-code", "ERR_NGROK_3202") in outcome.headers
    assert outcome.body == b"Circuit breaker tripped (ERR_NGROK_3202)\n"


def test_failing_responses_trip_it_and_after_the_tripped_duration_a_good_trial_closes_it() -> None:
    circuit = action({"error_threshold": 0.5, "volume_threshold": 3, "tripped_duration": "5s"})
    clock = Clock(0.0)
    for _ in range(3):
        assert exchange(circuit, clock, 502)[1] == 502
    assert exchange(circuit, clock, 200)[1] == 503
    clock.now = 5.0
    trial, status = exchange(circuit, clock, 200)
    assert status == 200
    assert trial.trace[-1].outcome == "half-open: trial request"
    assert exchange(circuit, clock, 200)[1] == 200


def test_not_enforced_it_never_refuses_but_says_it_would_trip() -> None:
    circuit = action({**DOCS_CONFIG, "enforce": False})
    clock = Clock(0.0)
    for _ in range(3):
        run, status = exchange(circuit, clock, 500)
        assert status == 500
    assert run.trace[-1].outcome == "would trip (enforce: false), 2/2 errors"
    assert not run.trace[-1].terminal


def test_the_documented_defaults() -> None:
    circuit = action({})
    assert circuit.enforce
    assert circuit.breaker.error_threshold == 0.5
    assert circuit.breaker.volume_threshold == 10
    assert circuit.breaker.tripped == 10.0
    assert action({"num_buckets": 10}).enforce


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"error_threshold": 1.5}, "error_threshold: must be between 0 and 1"),
        ({"error_threshold": -0.1}, "error_threshold: must be between 0 and 1"),
        ({"volume_threshold": 0}, "volume_threshold: must be at least 1 and at most 2000000000"),
        ({"window_duration": "3m"}, "window_duration: must be between 1s and 2m, was 3m"),
        ({"tripped_duration": "500ms"}, "tripped_duration: must be between 1s and 2m, was 500ms"),
        ({"tripped_duration": 10}, 'tripped_duration: must be a duration string such as "60s" or "10m"'),
        ({"num_buckets": 20}, "num_buckets: is fixed at 10, was 20"),
        (
            {"rolling_window": "60s"},
            "rolling_window: unknown field: the circuit-breaker action calls it window_duration",
        ),
        (
            {"error_threshold_percentage": 0.5},
            "error_threshold_percentage: unknown field: the circuit-breaker action calls it error_threshold",
        ),
        ({"half_open": True}, "half_open: unknown field"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        action(config)
    assert str(refused.value) == f"{WHERE}.{message}"


DOCS_POLICY = """
on_http_request:
  - actions:
    - type: "circuit-breaker"
      config:
        error_threshold: 0
        volume_threshold: 1
        window_duration: "60s"
        tripped_duration: "2m"
        enforce: true
"""


def test_the_docs_policy_trips_on_the_second_request_and_lets_a_trial_through_two_minutes_later() -> None:
    policy = load_policy(DOCS_POLICY, proto="https")
    clock = Clock(0.0)
    first = phase_run(clock)
    assert run_phase(policy, first) is None
    for callback in first.on_response:
        callback(200)
    clock.now = 0.01
    second = run_phase(policy, phase_run(clock))
    assert isinstance(second, Respond)
    assert second.status == 503
    clock.now = 120.01
    assert run_phase(policy, phase_run(clock)) is None
