"""The runtime's ring of recent metrics, which the status page's charts start from."""

from __future__ import annotations

from typing import Any

from agentapi.metrics_history import MetricsHistory


def metrics(count: int, gauge: int = 0, p50: float = 0, p90: float = 0, p99: float = 0) -> dict[str, Any]:
    return {"conns": {"count": count, "gauge": gauge}, "http": {"count": count, "p50": p50, "p90": p90, "p99": p99}}


def test_requests_per_second_is_the_count_change_over_the_time_between_samples() -> None:
    history = MetricsHistory()
    history.record(100.0, [("web", metrics(0))])
    history.record(101.0, [("web", metrics(5))])
    history.record(103.0, [("web", metrics(9, gauge=2, p50=637_000, p90=3_000_000, p99=2_500_000_000))])
    series = history.series()["web"]
    assert series["t"] == [100.0, 101.0, 103.0]
    assert series["rps"] == [0.0, 5.0, 2.0]
    assert (series["open"][-1], series["p50"][-1], series["p99"][-1]) == (2, 637_000, 2_500_000_000)


def test_each_tunnel_keeps_only_its_last_points() -> None:
    history = MetricsHistory(points=3)
    for second in range(10):
        history.record(float(second), [("web", metrics(second))])
    assert history.series()["web"]["t"] == [7.0, 8.0, 9.0]


def test_a_stopped_tunnel_loses_its_history() -> None:
    history = MetricsHistory()
    history.record(1.0, [("web", metrics(1)), ("api", metrics(1))])
    history.record(2.0, [("api", metrics(2))])
    assert list(history.series()) == ["api"]


def test_a_counter_that_restarted_gives_no_negative_rate() -> None:
    history = MetricsHistory()
    history.record(1.0, [("web", metrics(50))])
    history.record(2.0, [("web", metrics(3))])
    assert history.series()["web"]["rps"] == [0.0, 0.0]
