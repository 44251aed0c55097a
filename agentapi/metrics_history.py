"""The last few minutes of each running tunnel's metrics, kept in memory by the runtime, so the
status page's charts start with history instead of empty on every load.

Why a ring in the runtime and not the stored captures: the charts show what the API's metrics say
(requests per second, open connections, the duration percentiles of go-metrics' decaying sample),
and captures cannot give those: a tunnel with `inspect: false` stores none, "Clear" and eviction
remove them, open connections are not captured at all, and percentiles recomputed from captures
would disagree with the numbers printed beside the chart.

Rules:
- `record(time, tunnels)` is called about once a second (HISTORY_INTERVAL) with every running
  tunnel's metrics snapshot (the API's shape: conns.count/gauge, http.count/p50/p90/p99 in ns).
  Each tunnel keeps its last `points` samples (POINTS: 5 minutes); a tunnel absent from a call has
  stopped, and its history is dropped.
- Requests per second is the change of http.count over the time since the previous sample of the
  same tunnel (0 for its first sample, and never negative, for a counter that restarted).
- Pure and single-threaded: the runtime calls it on the event loop; `time` is injected.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

HISTORY_INTERVAL = 1.0
POINTS = 300

SERIES = ("t", "count", "rps", "open", "p50", "p90", "p99")


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # epoch seconds
    count: int  # http.count
    rps: float
    open: int  # conns.gauge
    p50: float  # ns
    p90: float
    p99: float


class MetricsHistory:
    def __init__(self, points: int = POINTS) -> None:
        self.points = points
        self._rings: dict[str, deque[Sample]] = {}

    def record(self, time: float, tunnels: Iterable[tuple[str, Mapping[str, Mapping[str, Any]]]]) -> None:
        """One sample of every running tunnel, taken at `time` (epoch seconds)."""
        seen = set()
        for name, metrics in tunnels:
            seen.add(name)
            ring = self._rings.get(name)
            if ring is None:
                ring = self._rings[name] = deque(maxlen=self.points)
            http = metrics.get("http", {})
            count = int(http.get("count", 0))
            rps = 0.0
            if ring:
                last = ring[-1]
                elapsed = time - last.t
                rps = max(count - last.count, 0) / elapsed if elapsed > 0 else last.rps
            ring.append(
                Sample(
                    t=time,
                    count=count,
                    rps=rps,
                    open=int(metrics.get("conns", {}).get("gauge", 0)),
                    p50=float(http.get("p50", 0)),
                    p90=float(http.get("p90", 0)),
                    p99=float(http.get("p99", 0)),
                )
            )
        for name in [name for name in self._rings if name not in seen]:
            del self._rings[name]

    def series(self) -> dict[str, dict[str, list[float]]]:
        """{tunnel name: {"t": [...], "count": [...], "rps": [...], "open": [...], "p50": [...],
        "p90": [...], "p99": [...]}}, oldest first: columns, as a chart library takes them."""
        return {
            name: {key: [getattr(sample, key) for sample in ring] for key in SERIES}
            for name, ring in self._rings.items()
        }
