"""The performance targets of issue 11 ("Performance"), checked against one benchmark run.

Rules of this module:
- Every target is a ratio or a bound measured in the same run (ratios against direct or against
  nginx-as-a-proxy in the same rounds, so the machine's speed cancels out):
  - inspection off: agent CPU per request <= 1.3 x nginx-as-a-proxy's (wrk keep-alive, c=32);
  - inspection on, captures persisted: <= 2.0 x;
  - inspected p99 <= 2 x direct p99 at c=32;
  - fresh-connection added latency (tunnel p50 - direct p50) < 1 ms for every service;
  - 1 MiB bodies: >= 0.9 x nginx-as-a-proxy's MB/s;
  - 1 GiB upload: agent RSS growth < 64 MB;
  - capture visible in the API after the response: p99 < 50 ms; WebSocket push: p99 < 50 ms;
  - API list of 50 out of 100,000 stored captures: p50 < 10 ms.
- A target whose figure could not be measured (NaN, or skipped) is reported "n/a", never MET.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One target: `measured` compared with `bound` (`at_most` True: measured <= bound, strictly
    below when `strict`; False: measured >= bound). `unit` is printed after both numbers."""

    name: str
    measured: float
    bound: float
    unit: str = ""
    at_most: bool = True
    strict: bool = False

    @property
    def verdict(self) -> str:
        """ "MET", "MISSED" or "n/a" (not measured)."""
        if math.isnan(self.measured):
            return "n/a"
        if self.at_most:
            met = self.measured < self.bound if self.strict else self.measured <= self.bound
        else:
            met = self.measured >= self.bound
        return "MET" if met else "MISSED"

    def row(self) -> str:
        """A Markdown table row: | target | measured | verdict |."""
        sign = ("<" if self.strict else "<=") if self.at_most else ">="
        return f"| {self.name} {sign} {self.bound:g}{self.unit} | {self.measured:.2f}{self.unit} | {self.verdict} |"


def table(targets: list[Target]) -> str:
    """The targets as a Markdown table."""
    lines = ["| target | measured | verdict |", "|---|---:|---|"]
    return "\n".join(lines + [t.row() for t in targets])
