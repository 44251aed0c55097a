"""The rate-limit action: at most `capacity` requests per `rate` reach the service, per bucket.

Rules (ngrok's `traffic-policy/actions/rate-limit.mdx`):
- Phase on_http_request; not terminating (it answers only when it limits).
- Config: `name` (required, under 1024 characters), `algorithm` (required, only `sliding_window`),
  `capacity` (required, 1 to 2,000,000,000), `rate` (required, a duration from 60s to 24h that is
  a multiple of 10s), `bucket_key` (required, 1 to 10 CEL expressions, written bare as in ngrok's
  examples: `conn.client_ip`, `getReqHeader('x-key')[0]`), `enforce` (default true). Unknown
  fields are refused.
- A request's bucket is the combination of its bucket keys' values (a list value, such as a
  header's, counts as its items joined with ","). Each action has its own counters: two rate-limit
  actions limit separately, as ngrok says to do for separate limits.
- Counting: the sliding window counter of sliding_window.py, in this agent's memory (ngrok too
  counts per ingress server); only requests let through are counted.
- Over capacity: `429 Too Many Requests` with `Retry-After` (whole seconds, at least 1) and an
  empty body, as in ngrok's example; the trace says "429, bucket <key>". With `enforce: false` the
  request goes on and only `actions.ngrok.rate_limit.limited` tells (so a later rule can answer
  its own way).
- Sets `actions.ngrok.rate_limit.bucket_key` (the key, its values joined with ", ") and
  `.limited` (whether this request was over capacity) for later rules.
- A bucket key that fails to evaluate fails the action (PolicyRuntimeError: the agent's 500).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from ..cel import compile_expression
from ..go_duration import config_duration
from ..outcomes import Outcome, Respond
from ..sliding_window import SlidingWindowLimiter
from .base import REQUEST, Action, Config, PhaseRun

MAX_CAPACITY = 2_000_000_000
MAX_NAME = 1024
MAX_BUCKET_KEYS = 10
# Bucket keys longer than this are kept as their SHA-256, so a huge header value cannot make
# every bucket large (the limiter holds at most DEFAULT_MAX_BUCKETS of them).
_MAX_KEY_CHARS = 256
_SHOWN_CHARS = 128


class RateLimit(Action):
    """ngrok's `rate-limit` action (see the module's rules)."""

    type = "rate-limit"
    phases = frozenset({REQUEST})

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        self.name = config.string("name")
        if not 0 < len(self.name) < MAX_NAME:
            raise config.error("name", f"must be 1 to {MAX_NAME - 1} characters")
        algorithm = config.string("algorithm")
        if algorithm != "sliding_window":
            raise config.error("algorithm", f"must be sliding_window, was {algorithm[:64]!r}")
        self.capacity = config.integer("capacity", minimum=1, maximum=MAX_CAPACITY)
        self.rate = config_duration(config, "rate", None, minimum=60, maximum=24 * 3600, multiple_of=10)
        texts = config.strings("bucket_key", required=True, min_items=1, max_items=MAX_BUCKET_KEYS)
        self.bucket_keys = tuple(
            compile_expression(text, where=f"{config.where}.bucket_key[{index}]") for index, text in enumerate(texts)
        )
        self.enforce = config.boolean("enforce", True)
        self.limiter = SlidingWindowLimiter(self.capacity, self.rate)

    def run(self, run: PhaseRun) -> Outcome | None:
        values = [bucket_text(key.evaluate(run.scope)) for key in self.bucket_keys]
        shown = ", ".join(values)
        decision = self.limiter.hit(_counter_key(values), run.clock())
        limited = not decision.allowed
        run.scope.actions["rate_limit"] = {"bucket_key": shown, "limited": limited}
        run.scope.changed("actions")
        bucket = f"bucket {shown[:_SHOWN_CHARS]}"
        if not limited:
            run.note(self.type, f"allowed, {bucket}")
            return None
        if not self.enforce:
            run.note(self.type, f"over capacity (enforce: false), {bucket}")
            return None
        run.note(self.type, f"429, {bucket}", terminal=True)
        retry_after = max(1, math.ceil(decision.retry_after))
        return Respond(429, [("Retry-After", str(retry_after))])


def bucket_text(value: Any) -> str:
    """A bucket key's CEL value as text: strings as they are, lists as their items joined with
    ",", maps as JSON, null as "", booleans as CEL writes them."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return ",".join(bucket_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _counter_key(values: list[str]) -> str:
    # JSON keeps ("a,b",) and ("a", "b") apart.
    key = values[0] if len(values) == 1 else json.dumps(values)
    if len(key) > _MAX_KEY_CHARS:
        return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key


ACTIONS = (RateLimit,)
