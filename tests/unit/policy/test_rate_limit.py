"""rate-limit (ngrok's docs, traffic-policy/actions/rate-limit.mdx) and the sliding window behind it:
capacity per window, the previous window sliding out, Retry-After, bounded memory, the config it
refuses and what it tells later rules. Time is a number the test sets; nothing sleeps."""

from __future__ import annotations

from typing import Any

import pytest

from agentapi.engine.policy import PolicyError, load_policy
from agentapi.engine.policy.actions.base import REQUEST, Config, PhaseRun
from agentapi.engine.policy.actions.rate_limit import RateLimit, bucket_text
from agentapi.engine.policy.facts import ConnFacts, EndpointFacts, RequestFacts
from agentapi.engine.policy.outcomes import Respond
from agentapi.engine.policy.runner import run_phase
from agentapi.engine.policy.sliding_window import SlidingWindowLimiter
from agentapi.engine.policy.variables import Scope

WHERE = "on_http_request.rules[0].actions[0] (rate-limit).config"
DOCS_CONFIG = {
    "name": "Only allow 30 requests per minute",
    "algorithm": "sliding_window",
    "capacity": 30,
    "rate": "60s",
    "bucket_key": ["conn.client_ip"],
}

# Sliding window


def test_capacity_requests_pass_in_a_window_and_the_next_is_refused() -> None:
    limiter = SlidingWindowLimiter(3, 60.0)
    assert [limiter.hit("a", 600.0 + i).allowed for i in range(4)] == [True, True, True, False]


def test_the_refused_request_is_told_to_come_back_when_there_is_room_and_is_let_in_then() -> None:
    limiter = SlidingWindowLimiter(2, 60.0)
    limiter.hit("a", 600.0)
    limiter.hit("a", 610.0)
    refused = limiter.hit("a", 620.0)
    # Both requests sit in this window: room comes once half of them slid out of the next one.
    assert refused.retry_after == pytest.approx(70.0)
    assert not limiter.hit("a", 620.0 + refused.retry_after - 0.5).allowed
    assert limiter.hit("a", 620.0 + refused.retry_after).allowed


def test_the_previous_window_slides_out_as_the_current_one_fills() -> None:
    limiter = SlidingWindowLimiter(10, 60.0)
    for _ in range(10):
        assert limiter.hit("a", 600.0).allowed
    # Halfway through the next window the previous ten weigh five: five more fit, not six.
    results = [limiter.hit("a", 690.0).allowed for _ in range(6)]
    assert results == [True] * 5 + [False]
    refused = limiter.hit("a", 690.0)
    assert refused.load == pytest.approx(10.0)
    # previous * (1 - f) + 5 <= 9 once f >= 0.6: at 696 s.
    assert refused.retry_after == pytest.approx(6.0)


def test_refused_requests_are_not_counted() -> None:
    limiter = SlidingWindowLimiter(1, 60.0)
    assert limiter.hit("a", 0.0).allowed
    for second in range(1, 60):
        assert not limiter.hit("a", float(second)).allowed
    # Only the one allowed request slides out: at the end of the next window the bucket is empty.
    assert limiter.hit("a", 120.0).allowed


def test_buckets_are_counted_apart() -> None:
    limiter = SlidingWindowLimiter(1, 60.0)
    assert limiter.hit("a", 0.0).allowed
    assert limiter.hit("b", 0.0).allowed
    assert not limiter.hit("a", 1.0).allowed


def test_a_bucket_idle_for_a_whole_window_is_forgotten() -> None:
    limiter = SlidingWindowLimiter(5, 60.0)
    for key in ("a", "b", "c"):
        limiter.hit(key, 10.0)
    limiter.hit("c", 70.0)
    assert len(limiter) == 3  # a and b still weigh on the window that began at 60 s
    limiter.hit("d", 120.0)
    assert len(limiter) == 2  # a and b were last used in the window two before: gone


def test_past_the_bucket_cap_the_least_recently_used_bucket_is_forgotten() -> None:
    limiter = SlidingWindowLimiter(1, 60.0, max_buckets=2)
    limiter.hit("a", 0.0)
    limiter.hit("b", 0.0)
    limiter.hit("a", 1.0)  # refused, but used: b is now the oldest
    limiter.hit("c", 2.0)
    assert len(limiter) == 2
    assert limiter.hit("b", 3.0).allowed  # b's count was forgotten
    assert not limiter.hit("c", 3.0).allowed


# The action


def action(config: dict[str, Any]) -> RateLimit:
    built = Config(config, where=WHERE)
    limit = RateLimit(built, phase=REQUEST)
    built.finish()
    return limit


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def phase_run(client_ip: str = "203.0.113.7", *, clock: Clock, host: str = "example.ngrok.app") -> PhaseRun:
    conn = ConnFacts(client_ip=client_ip, client_port=50123, server_ip="127.0.0.1", server_port=8080, start=0.0)
    endpoint = EndpointFacts("ep_1", "web", "https://example.ngrok.app", "example.ngrok.app", 443, "https", "")
    scope = Scope(conn=conn, endpoint=endpoint)
    request = RequestFacts("GET", "/get", "1.1", "https", host, [("Host", host)], 0.0)
    scope.request = request
    return PhaseRun(phase=REQUEST, scope=scope, conn=conn, request=request, clock=clock)


DOCS_POLICY = """
on_http_request:
  - actions:
      - type: rate-limit
        config:
          name: Only allow 30 requests per minute
          algorithm: sliding_window
          capacity: 30
          rate: 60s
          bucket_key:
            - 'hasReqHeader(''host'') ? getReqHeader(''host'')[0] : ''unknown'''
"""

SOFT_LIMIT_POLICY = """
on_http_request:
  - actions:
      - type: rate-limit
        config:
          name: soft
          algorithm: sliding_window
          capacity: 1
          rate: 60s
          bucket_key: [conn.client_ip]
          enforce: false
  - expressions: ["actions.ngrok.rate_limit.limited"]
    actions:
      - type: custom-response
        config:
          status_code: 503
          body: "slow down, ${actions.ngrok.rate_limit.bucket_key}"
"""


def test_the_docs_policy_limits_by_host_header_and_answers_429_after_capacity() -> None:
    policy = load_policy(DOCS_POLICY, proto="https")
    clock = Clock(1200.0)
    for _ in range(30):
        assert run_phase(policy, phase_run(clock=clock, host="httpbin.ngrok.app")) is None
    run = phase_run(clock=clock, host="httpbin.ngrok.app")
    # The rest of this window, then 2 s of the next for one of the thirty to slide out.
    assert run_phase(policy, run) == Respond(429, [("Retry-After", "62")])
    assert run.trace[-1].outcome == "429, bucket httpbin.ngrok.app"
    assert run_phase(policy, phase_run(clock=clock, host="other.ngrok.app")) is None


def test_a_later_rule_reads_the_actions_result_variables() -> None:
    policy = load_policy(SOFT_LIMIT_POLICY, proto="https")
    clock = Clock(0.0)
    assert run_phase(policy, phase_run(clock=clock)) is None
    outcome = run_phase(policy, phase_run(clock=clock))
    assert isinstance(outcome, Respond)
    assert (outcome.status, outcome.body) == (503, b"slow down, 203.0.113.7")


def test_a_bucket_key_that_does_not_compile_is_refused_at_load() -> None:
    bad = DOCS_POLICY.replace("'hasReqHeader(''host'') ? getReqHeader(''host'')[0] : ''unknown'''", "conn.client_ip +")
    with pytest.raises(PolicyError, match=r"\(rate-limit\)\.config\.bucket_key\[0\]"):
        load_policy(bad, proto="https")


def test_the_docs_example_answers_429_with_retry_after_once_capacity_is_spent() -> None:
    limit = action(DOCS_CONFIG)
    clock = Clock(1200.0)
    for _ in range(30):
        run = phase_run(clock=clock)
        assert limit.run(run) is None
        assert run.trace[-1].outcome == "allowed, bucket 203.0.113.7"
    clock.now = 1236.0
    run = phase_run(clock=clock)
    outcome = limit.run(run)
    # 24 s to the next window, then 2 s (1/30 of it) for one of the thirty to slide out.
    assert outcome == Respond(429, [("Retry-After", "26")])
    entry = run.trace[-1]
    assert (entry.action, entry.outcome, entry.terminal) == ("rate-limit", "429, bucket 203.0.113.7", True)
    assert run.scope.actions["rate_limit"] == {"bucket_key": "203.0.113.7", "limited": True}


def test_another_client_has_its_own_bucket() -> None:
    limit = action({**DOCS_CONFIG, "capacity": 1})
    clock = Clock(0.0)
    assert limit.run(phase_run("203.0.113.7", clock=clock)) is None
    assert isinstance(limit.run(phase_run("203.0.113.7", clock=clock)), Respond)
    other = phase_run("198.51.100.1", clock=clock)
    assert limit.run(other) is None
    assert other.scope.actions["rate_limit"] == {"bucket_key": "198.51.100.1", "limited": False}


def test_several_bucket_keys_limit_each_combination() -> None:
    limit = action({**DOCS_CONFIG, "capacity": 1, "bucket_key": ["req.host", "conn.client_ip"]})
    clock = Clock(0.0)
    first = phase_run(clock=clock, host="a.example")
    assert limit.run(first) is None
    assert first.scope.actions["rate_limit"]["bucket_key"] == "a.example, 203.0.113.7"
    assert limit.run(phase_run(clock=clock, host="b.example")) is None
    assert isinstance(limit.run(phase_run(clock=clock, host="a.example")), Respond)


def test_not_enforced_it_lets_the_request_through_and_says_it_was_over() -> None:
    limit = action({**DOCS_CONFIG, "capacity": 1, "enforce": False})
    clock = Clock(0.0)
    limit.run(phase_run(clock=clock))
    run = phase_run(clock=clock)
    assert limit.run(run) is None
    assert run.scope.actions["rate_limit"] == {"bucket_key": "203.0.113.7", "limited": True}
    assert run.trace[-1].outcome == "over capacity (enforce: false), bucket 203.0.113.7"
    assert not run.trace[-1].terminal


def test_a_window_later_the_bucket_has_room_again() -> None:
    limit = action({**DOCS_CONFIG, "capacity": 2, "rate": "1m"})
    clock = Clock(0.0)
    assert [limit.run(phase_run(clock=clock)) is None for _ in range(3)] == [True, True, False]
    clock.now = 120.0
    assert limit.run(phase_run(clock=clock)) is None


def test_bucket_key_values_become_text() -> None:
    assert bucket_text(["a", "b"]) == "a,b"
    assert bucket_text(None) == ""
    assert bucket_text(True) == "true"
    assert bucket_text(7) == "7"
    assert bucket_text({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rate": "65s"}, "rate: must be a multiple of 10s, was 65s"),
        ({"rate": "50s"}, "rate: must be between 1m and 24h, was 50s"),
        ({"rate": "25h"}, "rate: must be between 1m and 24h, was 25h"),
        ({"rate": 60}, 'rate: must be a duration string such as "60s" or "10m"'),
        ({"rate": "a minute"}, "rate: 'a minute' is not a duration"),
        ({"algorithm": "token_bucket"}, "algorithm: must be sliding_window, was 'token_bucket'"),
        ({"capacity": 0}, "capacity: must be at least 1 and at most 2000000000"),
        ({"capacity": 2_000_000_001}, "capacity: must be at least 1 and at most 2000000000"),
        ({"bucket_key": []}, "bucket_key: must have 1 to 10 entries"),
        ({"bucket_key": ["conn.client_ip"] * 11}, "bucket_key: must have 1 to 10 entries"),
        ({"name": "x" * 1024}, "name: must be 1 to 1023 characters"),
        ({"enforce": "yes"}, "enforce: must be true or false"),
        ({"burst": 5}, "burst: unknown field"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        action({**DOCS_CONFIG, **change})
    assert str(refused.value).startswith(f"{WHERE}.{message}")


@pytest.mark.parametrize("missing", ["name", "algorithm", "capacity", "rate", "bucket_key"])
def test_every_documented_required_field_is_required(missing: str) -> None:
    config = {key: value for key, value in DOCS_CONFIG.items() if key != missing}
    with pytest.raises(PolicyError, match=f"config.{missing}: is required"):
        action(config)


def test_rates_that_are_multiples_of_ten_seconds_in_any_unit_are_accepted() -> None:
    assert action({**DOCS_CONFIG, "rate": "1.5m"}).rate == 90.0
    assert action({**DOCS_CONFIG, "rate": "1h30m"}).rate == 5400.0
    assert action({**DOCS_CONFIG, "rate": "24h"}).rate == 86400.0
