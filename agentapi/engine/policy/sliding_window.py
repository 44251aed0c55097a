"""Sliding-window rate limiting in memory: the counters behind the rate-limit action.

Rules (ngrok's `traffic-policy/actions/rate-limit.mdx`: `algorithm: sliding_window`, `capacity`
requests per `rate`; the sliding window counter as Cloudflare describes it):
- Time is cut into fixed windows of `window` seconds aligned on the clock's zero. A bucket keeps
  the count of the current window and of the one before it. At time t, with f the fraction of the
  current window gone by, the bucket's load is `previous * (1 - f) + current`: the previous window
  slides out as the current one fills. A request is allowed when `load + 1 <= capacity`.
- Only allowed requests are counted (ngrok: capacity is "the maximum number of requests allowed
  to reach your upstream server"), so a client that keeps knocking while refused gets in again
  as soon as the load drops, and a refused request costs no memory beyond its bucket.
- A refused request is told when to come back (`retry_after`, seconds, > 0): the first moment
  the load leaves room for one more request if nothing else arrives. The caller rounds it up for
  the `Retry-After` header.
- Memory is bounded: a bucket untouched for a whole window holds nothing that can refuse a
  request (both of its windows are over), so it is dropped the next time any bucket is touched
  (buckets are kept in order of last use, so this costs O(1) per call). Past `max_buckets`
  buckets, the least recently used one is forgotten: under an attack of many keys, a quiet key
  may lose its count (it is limited less, never more).
- Pure: no clock of its own. Every call takes `now` (seconds, any monotonic or wall clock, but the
  same one every time), so tests drive time by hand.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

DEFAULT_MAX_BUCKETS = 100_000
# Float noise must not refuse the request that comes back exactly at its Retry-After time.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request. `load` is the bucket's load before this request (requests, as
    a float); `retry_after` is 0.0 when allowed, else the seconds until one more would be."""

    allowed: bool
    load: float
    retry_after: float = 0.0


@dataclass(slots=True)
class _Bucket:
    window: int  # index of the current window (floor(now / window length))
    current: int = 0
    previous: int = 0


class SlidingWindowLimiter:
    """Per-key sliding window counters: `capacity` requests per `window` seconds.

    `capacity` >= 1, `window` > 0 seconds, `max_buckets` >= 1. Raises ValueError otherwise.
    """

    def __init__(self, capacity: int, window: float, *, max_buckets: int = DEFAULT_MAX_BUCKETS) -> None:
        if capacity < 1 or window <= 0 or max_buckets < 1:
            raise ValueError("capacity and max_buckets must be at least 1 and the window positive")
        self.capacity = capacity
        self.window = window
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def hit(self, key: Hashable, now: float) -> Decision:
        """One request for `key` at `now` (seconds): allowed and counted, or refused and not counted."""
        index = int(now // self.window)
        self._evict_idle(index)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(index)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            _roll(bucket, index)
        elapsed = now / self.window - index  # fraction of the current window gone, in [0, 1)
        load = bucket.previous * (1.0 - elapsed) + bucket.current
        if load + 1 <= self.capacity + _EPSILON:
            bucket.current += 1
            return Decision(True, load)
        return Decision(False, load, self._retry_after(bucket, index, elapsed))

    def _retry_after(self, bucket: _Bucket, index: int, elapsed: float) -> float:
        room = self.capacity - 1  # the load must fall to this for one more request
        if bucket.current <= room:
            # Within this window, as the previous one slides out: previous * (1 - f) <= room - current.
            needed = 1.0 - (room - bucket.current) / bucket.previous
            wait = (needed - elapsed) * self.window
        else:
            # Only in the next window, when this window's count is the one sliding out.
            needed = 1.0 - room / bucket.current
            wait = (1.0 - elapsed + needed) * self.window
        return max(wait, _EPSILON)

    def _evict_idle(self, index: int) -> None:
        # A bucket last used two windows ago or more has nothing left to count.
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if oldest.window > index - 2:
                return
            buckets.popitem(last=False)


def _roll(bucket: _Bucket, index: int) -> None:
    if index <= bucket.window:  # the same window (or a clock that stepped back: keep the counts)
        return
    bucket.previous = bucket.current if index == bucket.window + 1 else 0
    bucket.current = 0
    bucket.window = index
