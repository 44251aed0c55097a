"""A circuit breaker's state machine: the rolling error counts and the closed / open / half-open
states behind the circuit-breaker action.

Rules (ngrok's `traffic-policy/actions/circuit-breaker.mdx`; its fields are Hystrix's, and where
ngrok's page is silent the breaker behaves as Hystrix's does):
- Outcomes of finished requests (error or not) are counted in a rolling window of `window`
  seconds cut into `num_buckets` buckets (ngrok fixes it at 10); a bucket older than the window
  no longer counts.
- CLOSED: a request is let through unless the window holds at least `volume_threshold` requests
  and errors / requests >= `error_threshold`; then the breaker trips (OPEN) and the request is
  refused. The check is made as each request arrives, so ngrok's example (`error_threshold: 0`,
  `volume_threshold: 1`) lets the first request through and refuses the second.
- OPEN: requests are refused. Once `tripped` seconds have passed since the breaker opened (or
  since the last trial), one request is let through as a trial and the wait starts again; the
  others are still refused (HALF_OPEN while a trial is out).
- The trial's outcome decides: not an error closes the breaker and clears the window; an error
  keeps it open for another `tripped` seconds from then. A trial whose outcome never comes (the
  client left) is replaced by another after `tripped` seconds. Requests let through before the
  breaker opened are counted when they finish but cannot close it.
- Pure: no clock of its own; each call takes `now` in seconds from one clock, so tests drive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether one request may go on. `trial` marks the half-open trial request, whose outcome
    must be reported with `record(..., trial=True)`. `requests`/`errors` are the window's counts
    when it was decided."""

    allowed: bool
    trial: bool = False
    requests: int = 0
    errors: int = 0


class CircuitBreaker:
    """One breaker (see the module's rules). Arguments: `error_threshold` in [0, 1],
    `volume_threshold` >= 1 requests, `window` and `tripped` > 0 seconds, `num_buckets` >= 1.
    Raises ValueError otherwise."""

    def __init__(
        self,
        *,
        error_threshold: float,
        volume_threshold: int,
        window: float,
        tripped: float,
        num_buckets: int = 10,
    ) -> None:
        if not 0.0 <= error_threshold <= 1.0 or volume_threshold < 1 or window <= 0 or tripped <= 0:
            raise ValueError("error_threshold must be in [0, 1], volume_threshold >= 1, durations positive")
        if num_buckets < 1:
            raise ValueError("num_buckets must be at least 1")
        self.error_threshold = error_threshold
        self.volume_threshold = volume_threshold
        self.tripped = tripped
        self._bucket_width = window / num_buckets
        self._num_buckets = num_buckets
        # Ring of [bucket index, requests, errors]; a slot whose index is stale counts for nothing.
        self._ring = [[-1, 0, 0] for _ in range(num_buckets)]
        self._open = False
        self._since = 0.0  # when the breaker opened, or the last trial was let through
        self._trial_out = False

    def state(self, now: float) -> BreakerState:
        """CLOSED, OPEN, or HALF_OPEN when a trial let through less than `tripped` ago is out."""
        if not self._open:
            return BreakerState.CLOSED
        return BreakerState.HALF_OPEN if self._trial_out and now < self._since + self.tripped else BreakerState.OPEN

    def counts(self, now: float) -> tuple[int, int]:
        """(requests, errors) finished within the window at `now`."""
        current = int(now // self._bucket_width)
        requests = errors = 0
        for index, bucket_requests, bucket_errors in self._ring:
            if current - self._num_buckets < index <= current:
                requests += bucket_requests
                errors += bucket_errors
        return requests, errors

    def tripping(self, now: float) -> bool:
        """Whether the window's counts are over both thresholds (what trips a closed breaker)."""
        requests, errors = self.counts(now)
        return requests >= self.volume_threshold and errors >= self.error_threshold * requests

    def admit(self, now: float) -> Admission:
        """Decide one arriving request (see the module's rules); may trip the breaker."""
        requests, errors = self.counts(now)
        if not self._open:
            if requests >= self.volume_threshold and errors >= self.error_threshold * requests:
                self._open, self._since, self._trial_out = True, now, False
                return Admission(False, requests=requests, errors=errors)
            return Admission(True, requests=requests, errors=errors)
        if now >= self._since + self.tripped:
            self._since, self._trial_out = now, True
            return Admission(True, trial=True, requests=requests, errors=errors)
        return Admission(False, requests=requests, errors=errors)

    def record(self, now: float, *, error: bool, trial: bool = False) -> None:
        """The outcome of a request that was let through, when it finished."""
        if trial and self._open:
            if error:
                self._since, self._trial_out = now, False
            else:
                self._open, self._trial_out = False, False
                for slot in self._ring:
                    slot[:] = [-1, 0, 0]
                return
        index = int(now // self._bucket_width)
        slot = self._ring[index % self._num_buckets]
        if slot[0] != index:
            slot[:] = [index, 0, 0]
        slot[1] += 1
        if error:
            slot[2] += 1
