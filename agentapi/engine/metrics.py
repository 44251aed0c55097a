# Tunnel metrics with rcrowley/go-metrics semantics, as reported by the ngrok
# agent. The numbers are consumed by tools written against the Go agent, so the
# rules below are a contract and must not drift:
#
# - Meter: count = total marks. rate1/rate5/rate15 are EWMAs in events/second,
#   ticked every TICK_SECONDS (5 s): instant = marks since last tick / 5,
#   rate += alpha * (instant - rate), alpha = 1 - exp(-5/60/N), N = 1, 5, 15
#   minutes. The first tick sets rate = instant (StandardEWMA init flag).
# - Timer = Meter + forward-decaying reservoir (ExpDecaySample): size 1028,
#   alpha 0.015, priority = exp(alpha * (t - t0)) / U(0,1), t in seconds. Min-heap
#   by priority; when full, a value replaces the min entry only if its priority
#   is higher. Every hour t0 moves to now and priorities are multiplied by
#   exp(-alpha * (new_t0 - old_t0)) so they stay within float range.
# - Percentiles (SamplePercentiles): sort; pos = p * (n + 1); pos < 1 -> min;
#   pos >= n -> max; otherwise linear interpolation between v[int(pos) - 1] and
#   v[int(pos)]. An empty sample gives 0.
# - Durations are integer nanoseconds.
#
# Everything here runs on a single asyncio loop and sits on the proxy hot path:
# no locks, no background tasks; the engine calls tick() every TICK_SECONDS.
from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

TICK_SECONDS = 5

RESERVOIR_SIZE = 1028
RESERVOIR_ALPHA = 0.015
RESCALE_SECONDS = 3600.0

PERCENTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)

M1_ALPHA = 1.0 - math.exp(-TICK_SECONDS / 60.0 / 1)
M5_ALPHA = 1.0 - math.exp(-TICK_SECONDS / 60.0 / 5)
M15_ALPHA = 1.0 - math.exp(-TICK_SECONDS / 60.0 / 15)

Clock = Callable[[], float]
# Module-level names for ExpDecaySample.update (once per request): no attribute lookup per call.
_exp, _heappush, _heapreplace = math.exp, heapq.heappush, heapq.heapreplace
Number = int | float


@dataclass(slots=True, eq=False)
class EWMA:
    alpha: float
    rate: float = 0.0
    # A zero rate is a legitimate steady state, so "not ticked yet" needs its
    # own flag rather than a sentinel rate.
    ticked: bool = False

    def tick(self, instant: float) -> None:
        if self.ticked:
            self.rate += self.alpha * (instant - self.rate)
        else:
            self.rate = instant
            self.ticked = True


@dataclass(slots=True, eq=False)
class Meter:
    count: int = 0
    # Marks since the last tick; kept apart from count so mark() is two int
    # additions and the EWMA arithmetic happens only on tick().
    uncounted: int = 0
    m1: EWMA = field(default_factory=lambda: EWMA(M1_ALPHA))
    m5: EWMA = field(default_factory=lambda: EWMA(M5_ALPHA))
    m15: EWMA = field(default_factory=lambda: EWMA(M15_ALPHA))

    def mark(self, n: int = 1) -> None:
        self.count += n
        self.uncounted += n

    def tick(self) -> None:
        instant = self.uncounted / TICK_SECONDS
        self.uncounted = 0
        self.m1.tick(instant)
        self.m5.tick(instant)
        self.m15.tick(instant)

    @property
    def rate1(self) -> float:
        return self.m1.rate

    @property
    def rate5(self) -> float:
        return self.m5.rate

    @property
    def rate15(self) -> float:
        return self.m15.rate


class ExpDecaySample:
    __slots__ = ("_clock", "_heap", "_next_rescale", "_random", "_t0", "alpha", "size")

    def __init__(
        self,
        size: int = RESERVOIR_SIZE,
        alpha: float = RESERVOIR_ALPHA,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.size = size
        self.alpha = alpha
        self._clock = clock
        # Bound once so update() does not look the method up per call.
        self._random = (rng if rng is not None else random.Random()).random
        # (priority, value); heap[0] is the entry most deserving of eviction.
        self._heap: list[tuple[float, int]] = []
        self._t0 = clock()
        self._next_rescale = self._t0 + RESCALE_SECONDS

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def t0(self) -> float:
        return self._t0

    def update(self, value: int) -> None:
        now = self._clock()
        if now >= self._next_rescale:
            self._rescale(now)
        # 1 - random() lies in (0, 1], so the division can never be by zero.
        priority = _exp(self.alpha * (now - self._t0)) / (1.0 - self._random())
        heap = self._heap
        if len(heap) < self.size:
            _heappush(heap, (priority, value))
        elif priority > heap[0][0]:
            _heapreplace(heap, (priority, value))

    def _rescale(self, now: float) -> None:
        # Priorities grow as exp(alpha * age); re-basing hourly keeps them far
        # from overflow. Scaling every entry by the same factor keeps the heap
        # order intact, so no re-heapify is needed.
        factor = math.exp(-self.alpha * (now - self._t0))
        self._heap = [(p * factor, v) for p, v in self._heap]
        self._t0 = now
        self._next_rescale = now + RESCALE_SECONDS

    def values(self) -> list[int]:
        return [v for _, v in self._heap]

    def percentiles(self, ps: Sequence[float] = PERCENTILES) -> list[Number]:
        return percentiles(self.values(), ps)


def percentiles(values: list[int], ps: Sequence[float]) -> list[Number]:
    n = len(values)
    if n == 0:
        return [0 for _ in ps]
    ordered = sorted(values)
    out: list[Number] = []
    for p in ps:
        pos = p * (n + 1)
        if pos < 1.0:
            score: float = ordered[0]
        elif pos >= n:
            score = ordered[-1]
        else:
            lower = ordered[int(pos) - 1]
            upper = ordered[int(pos)]
            score = lower + (pos - math.floor(pos)) * (upper - lower)
        out.append(_integral(score))
    return out


def _integral(x: float) -> Number:
    # The JSON renderer prints Go-style numbers; an int keeps "10" from being
    # rendered as "10.0".
    if isinstance(x, int):
        return x
    return int(x) if x.is_integer() else x


class Timer:
    __slots__ = ("meter", "sample")

    def __init__(self, clock: Clock = time.monotonic, rng: random.Random | None = None) -> None:
        self.meter = Meter()
        self.sample = ExpDecaySample(clock=clock, rng=rng)

    def update(self, duration_ns: int) -> None:
        meter = self.meter  # Meter.mark(), inlined: once per request
        meter.count += 1
        meter.uncounted += 1
        self.sample.update(duration_ns)

    def tick(self) -> None:
        self.meter.tick()

    @property
    def count(self) -> int:
        return self.meter.count

    def percentiles(self, ps: Sequence[float] = PERCENTILES) -> list[Number]:
        return self.sample.percentiles(ps)


class ConnTimer(Timer):
    # The meter counts opens (rate of new connections) while the reservoir only
    # sees lifetimes at close, so the two halves are fed at different moments.
    __slots__ = ("gauge",)

    def __init__(self, clock: Clock = time.monotonic, rng: random.Random | None = None) -> None:
        super().__init__(clock, rng)
        self.gauge = 0

    def opened(self) -> None:
        self.gauge += 1
        self.meter.mark()

    def closed(self, lifetime_ns: int) -> None:
        self.gauge -= 1
        self.sample.update(lifetime_ns)


class TunnelMetrics:
    __slots__ = ("conns", "http")

    def __init__(self, clock: Clock = time.monotonic, rng: random.Random | None = None) -> None:
        rng = rng if rng is not None else random.Random()
        self.conns = ConnTimer(clock, rng)
        self.http = Timer(clock, rng)

    def conn_opened(self) -> None:
        self.conns.opened()

    def conn_closed(self, lifetime_ns: int) -> None:
        self.conns.closed(lifetime_ns)

    def request_done(self, duration_ns: int) -> None:
        http = self.http  # Timer.update(), inlined: once per request
        meter = http.meter
        meter.count += 1
        meter.uncounted += 1
        http.sample.update(duration_ns)

    def tick(self) -> None:
        self.conns.tick()
        self.http.tick()

    def snapshot(self) -> dict[str, dict[str, Number]]:
        conns, http = self.conns, self.http
        c50, c90, c95, c99 = conns.percentiles()
        h50, h90, h95, h99 = http.percentiles()
        return {
            "conns": {
                "count": conns.meter.count,
                "gauge": conns.gauge,
                "rate1": float(conns.meter.rate1),
                "rate5": float(conns.meter.rate5),
                "rate15": float(conns.meter.rate15),
                "p50": c50,
                "p90": c90,
                "p95": c95,
                "p99": c99,
            },
            "http": {
                "count": http.meter.count,
                "rate1": float(http.meter.rate1),
                "rate5": float(http.meter.rate5),
                "rate15": float(http.meter.rate15),
                "p50": h50,
                "p90": h90,
                "p95": h95,
                "p99": h99,
            },
        }
