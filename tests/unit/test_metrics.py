from __future__ import annotations

import math
import random

import pytest

from agentapi.engine.metrics import (
    M1_ALPHA,
    M5_ALPHA,
    M15_ALPHA,
    RESCALE_SECONDS,
    RESERVOIR_SIZE,
    TICK_SECONDS,
    ExpDecaySample,
    Meter,
    Timer,
    TunnelMetrics,
    percentiles,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_tick_interval_is_five_seconds() -> None:
    assert TICK_SECONDS == 5


def test_alphas_match_go_metrics_constants() -> None:
    assert pytest.approx(0.07995558537067671, rel=1e-15) == M1_ALPHA
    assert pytest.approx(0.01652854617838251, rel=1e-15) == M5_ALPHA
    assert pytest.approx(0.005540151995103271, rel=1e-15) == M15_ALPHA


def test_rates_are_zero_before_any_tick() -> None:
    m = Meter()
    m.mark(10)
    assert (m.rate1, m.rate5, m.rate15) == (0.0, 0.0, 0.0)


def test_first_tick_sets_rate_to_instant() -> None:
    m = Meter()
    m.mark(300)
    m.tick()
    assert (m.rate1, m.rate5, m.rate15) == (60.0, 60.0, 60.0)


def test_first_tick_with_no_marks_still_counts_as_initialised() -> None:
    m = Meter()
    m.tick()
    m.mark(50)
    m.tick()
    # Had the zero first tick not set the init flag, rate would jump to 10.
    assert m.rate1 == pytest.approx(M1_ALPHA * 10.0, rel=1e-12)


def test_subsequent_ticks_follow_ewma_formula() -> None:
    m = Meter()
    m.mark(300)
    m.tick()
    m.tick()
    # 60 * exp(-5/60/N), computed by hand.
    assert m.rate1 == pytest.approx(55.2026648777594, rel=1e-12)
    assert m.rate5 == pytest.approx(59.0082872292970, rel=1e-12)
    assert m.rate15 == pytest.approx(59.6675908802938, rel=1e-12)
    m.mark(100)
    m.tick()
    # rate + alpha * (20 - rate)
    assert m.rate1 == pytest.approx(52.3880152008504, rel=1e-12)
    assert m.rate5 == pytest.approx(58.3635369524880, rel=1e-12)
    assert m.rate15 == pytest.approx(59.4478263975374, rel=1e-12)


def test_count_is_total_marks_and_ticks_do_not_reset_it() -> None:
    m = Meter()
    m.mark()
    m.mark(4)
    m.tick()
    m.mark(2)
    m.tick()
    assert m.count == 7
    assert isinstance(m.count, int)


def test_percentiles_of_one_to_ten_interpolate_like_go_metrics() -> None:
    p50, p90, p95, p99 = percentiles(list(range(10, 0, -1)), (0.5, 0.9, 0.95, 0.99))
    assert p50 == 5.5
    assert p90 == pytest.approx(9.9)
    assert p95 == 10
    assert p99 == 10


def test_percentile_below_first_position_is_min() -> None:
    assert percentiles([7, 3, 9], (0.1,)) == [3]


def test_percentile_at_or_past_last_position_is_max() -> None:
    # pos = 0.75 * 4 = 3 == n
    assert percentiles([7, 3, 9], (0.75, 0.99)) == [9, 9]


def test_percentiles_of_single_value_are_that_value() -> None:
    assert percentiles([42], (0.5, 0.99)) == [42, 42]


def test_percentiles_of_empty_sample_are_zero() -> None:
    assert percentiles([], (0.5, 0.99)) == [0, 0]
    assert Timer().percentiles() == [0, 0, 0, 0]


def test_integral_percentiles_are_ints_and_fractional_ones_floats() -> None:
    p50, p99 = percentiles([1, 2, 3, 4], (0.5, 0.99))
    assert p50 == 2.5 and isinstance(p50, float)
    assert p99 == 4 and isinstance(p99, int)


def test_reservoir_never_exceeds_its_size() -> None:
    clock = FakeClock()
    s = ExpDecaySample(clock=clock, rng=random.Random(1))
    for i in range(5000):
        clock.now += 0.01
        s.update(i)
        assert len(s) <= RESERVOIR_SIZE
    assert len(s) == RESERVOIR_SIZE == 1028


def test_reservoir_keeps_every_value_until_full() -> None:
    s = ExpDecaySample(size=10, clock=FakeClock(), rng=random.Random(2))
    for i in range(10):
        s.update(i)
    assert sorted(s.values()) == list(range(10))


def test_reservoir_prefers_recent_values_after_long_gap() -> None:
    clock = FakeClock()
    s = ExpDecaySample(clock=clock, rng=random.Random(3))
    for _ in range(RESERVOIR_SIZE):
        s.update(1)
    start = s.t0
    clock.now += 2 * 3600
    for _ in range(RESERVOIR_SIZE):
        clock.now += 0.001
        s.update(2)
    assert s.t0 > start + RESCALE_SECONDS
    assert len(s) == RESERVOIR_SIZE
    assert set(s.values()) == {2}


def test_rescale_keeps_priorities_finite_after_many_hours() -> None:
    clock = FakeClock()
    s = ExpDecaySample(size=16, clock=clock, rng=random.Random(4))
    for i in range(24 * 60):
        clock.now += 60
        s.update(i)
    assert all(math.isfinite(p) for p, _ in s._heap)
    # Values from the last minutes must dominate a reservoir spanning a day.
    assert min(s.values()) > 24 * 60 - 200


def test_timer_update_marks_meter_and_samples_duration() -> None:
    t = Timer(clock=FakeClock(), rng=random.Random(5))
    for d in range(1, 11):
        t.update(d * 1_000_000)
    t.tick()
    assert t.count == 10
    assert t.meter.rate1 == 2.0
    assert t.percentiles((0.5,)) == [5_500_000]


def test_gauge_goes_up_on_open_and_down_on_close() -> None:
    tm = TunnelMetrics(clock=FakeClock(), rng=random.Random(6))
    tm.conn_opened()
    tm.conn_opened()
    tm.conn_opened()
    assert tm.conns.gauge == 3
    tm.conn_closed(1_000)
    assert tm.conns.gauge == 2
    tm.conn_closed(2_000)
    tm.conn_closed(3_000)
    assert tm.conns.gauge == 0


def test_conn_meter_counts_opens_and_sample_holds_lifetimes() -> None:
    tm = TunnelMetrics(clock=FakeClock(), rng=random.Random(7))
    for _ in range(5):
        tm.conn_opened()
    tm.conn_closed(40)
    assert tm.conns.count == 5
    assert tm.conns.sample.values() == [40]


def test_tick_ticks_both_meters() -> None:
    tm = TunnelMetrics(clock=FakeClock(), rng=random.Random(8))
    for _ in range(10):
        tm.conn_opened()
    for _ in range(25):
        tm.request_done(1)
    tm.tick()
    assert tm.conns.meter.rate1 == 2.0
    assert tm.http.meter.rate1 == 5.0


def test_snapshot_keys_are_in_wire_order() -> None:
    snap = TunnelMetrics(clock=FakeClock(), rng=random.Random(9)).snapshot()
    assert list(snap) == ["conns", "http"]
    assert list(snap["conns"]) == [
        "count",
        "gauge",
        "rate1",
        "rate5",
        "rate15",
        "p50",
        "p90",
        "p95",
        "p99",
    ]
    assert list(snap["http"]) == [
        "count",
        "rate1",
        "rate5",
        "rate15",
        "p50",
        "p90",
        "p95",
        "p99",
    ]


def test_snapshot_counts_are_ints_rates_floats_and_percentiles_go_style() -> None:
    tm = TunnelMetrics(clock=FakeClock(), rng=random.Random(10))
    tm.conn_opened()
    tm.conn_opened()
    tm.conn_closed(7)
    for d in range(1, 11):
        tm.request_done(d)
    tm.tick()
    snap = tm.snapshot()
    conns, http = snap["conns"], snap["http"]
    assert type(conns["count"]) is int and conns["count"] == 2
    assert type(conns["gauge"]) is int and conns["gauge"] == 1
    assert type(http["count"]) is int and http["count"] == 10
    for section in (conns, http):
        for key in ("rate1", "rate5", "rate15"):
            assert type(section[key]) is float
    assert http["rate1"] == 2.0
    assert conns["p50"] == 7 and type(conns["p50"]) is int
    assert http["p50"] == 5.5 and type(http["p50"]) is float
    assert http["p90"] == pytest.approx(9.9) and type(http["p90"]) is float
    assert http["p99"] == 10 and type(http["p99"]) is int


def test_empty_snapshot_is_all_zero() -> None:
    snap = TunnelMetrics(clock=FakeClock(), rng=random.Random(11)).snapshot()
    for section in snap.values():
        assert all(v == 0 for v in section.values())
        assert type(section["p50"]) is int
