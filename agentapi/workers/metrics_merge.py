"""One tunnel's metrics over every process that serves it (`--workers N`).

Each process keeps go-metrics state for its own connections (engine/metrics.py). What the API,
the status page and the console show is their sum, by these rules:

- counts, the open-connection gauge and the EWMA rates (rate1/5/15, events per second) add: each
  process's rate is the rate of its own share of the traffic;
- percentiles (p50/p90/p95/p99) are go-metrics' SamplePercentiles over the processes' reservoirs
  taken together (each an ExpDecaySample of up to 1028 values, so at most 1028 x N values). With
  the kernel spreading connections evenly (SO_REUSEPORT hashes them) each reservoir is a sample of
  the same distribution; a process that served few requests weighs a little more than its share.
- a process that exited took its counts with it (a restarted worker counts from zero).

With one process the snapshot is `TunnelMetrics.snapshot()` itself: this module is not used.
`state()` is what a worker sends (plain values, picklable); `merged_snapshot()` has the API shape,
plus `workers`: [{"pid", "conns", "http"}] (each process's counts), which ngrok's agent does not
have: it shows which processes took the traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentapi.engine.metrics import PERCENTILES, Meter, Number, TunnelMetrics, percentiles

State = dict[str, Any]


def _meter(meter: Meter) -> dict[str, Any]:
    return {"count": meter.count, "rate1": meter.rate1, "rate5": meter.rate5, "rate15": meter.rate15}


def state(metrics: TunnelMetrics) -> State:
    """One process's metrics of one tunnel as plain values:
    {"conns": {count, rate1, rate5, rate15, gauge, values}, "http": {count, rate1, rate5, rate15, values}}
    (`values`: the reservoir's durations in ns)."""
    return {
        "conns": {**_meter(metrics.conns.meter), "gauge": metrics.conns.gauge, "values": metrics.conns.sample.values()},
        "http": {**_meter(metrics.http.meter), "values": metrics.http.sample.values()},
    }


def merged_snapshot(parts: Sequence[tuple[int, State]]) -> dict[str, Any]:
    """The API's metrics shape (TunnelMetrics.snapshot) summed over `parts`: (pid, state) of each
    process that runs the tunnel, plus the `workers` list."""
    return {
        "conns": _merge([s["conns"] for _, s in parts], gauge=True),
        "http": _merge([s["http"] for _, s in parts], gauge=False),
        "workers": [{"pid": pid, "conns": s["conns"]["count"], "http": s["http"]["count"]} for pid, s in parts],
    }


def _merge(kinds: list[dict[str, Any]], *, gauge: bool) -> dict[str, Number]:
    values: list[int] = []
    for kind in kinds:
        values += kind["values"]
    p50, p90, p95, p99 = percentiles(values, PERCENTILES)
    out: dict[str, Number] = {"count": sum(kind["count"] for kind in kinds)}
    if gauge:
        out["gauge"] = sum(kind["gauge"] for kind in kinds)
    for rate in ("rate1", "rate5", "rate15"):
        out[rate] = float(sum(kind[rate] for kind in kinds))
    out.update(p50=p50, p90=p90, p95=p95, p99=p99)
    return out
