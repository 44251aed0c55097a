"""Per-tunnel metrics of several engine processes summed into the API's one snapshot."""

from __future__ import annotations

import random

from agentapi.engine.metrics import PERCENTILES, TunnelMetrics, percentiles
from agentapi.workers.metrics_merge import merged_snapshot, state


def _metrics(durations: list[int], conns: int, open_now: int = 0) -> TunnelMetrics:
    metrics = TunnelMetrics(clock=lambda: 100.0, rng=random.Random(7))
    for _ in range(conns):
        metrics.conn_opened()
    for _ in range(conns - open_now):
        metrics.conn_closed(5_000)
    for duration in durations:
        metrics.request_done(duration)
    metrics.tick()
    return metrics


def test_one_process_merged_is_its_own_snapshot() -> None:
    metrics = _metrics([1_000, 2_000, 3_000, 40_000], conns=3, open_now=1)
    merged = merged_snapshot([(11, state(metrics))])
    assert {k: merged[k] for k in ("conns", "http")} == metrics.snapshot()
    assert merged["workers"] == [{"pid": 11, "conns": 3, "http": 4}]


def test_counts_gauges_and_rates_add_and_percentiles_cover_every_sample() -> None:
    first = _metrics([1_000] * 10, conns=4, open_now=2)
    second = _metrics([9_000] * 30, conns=6, open_now=1)
    merged = merged_snapshot([(1, state(first)), (2, state(second))])

    assert merged["http"]["count"] == 40
    assert merged["conns"]["count"] == 10
    assert merged["conns"]["gauge"] == 3
    assert merged["http"]["rate1"] == first.http.meter.rate1 + second.http.meter.rate1 == 40 / 5
    expected = percentiles([1_000] * 10 + [9_000] * 30, PERCENTILES)
    assert [merged["http"][p] for p in ("p50", "p90", "p95", "p99")] == expected
    assert merged["workers"] == [{"pid": 1, "conns": 4, "http": 10}, {"pid": 2, "conns": 6, "http": 30}]


def test_a_state_is_plain_values_a_pipe_can_carry() -> None:
    import pickle

    metrics = _metrics([5], conns=1)
    assert pickle.loads(pickle.dumps(state(metrics))) == state(metrics)
