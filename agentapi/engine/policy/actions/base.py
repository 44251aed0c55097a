"""What every Traffic Policy action shares: its config read field by field (errors name the
field), the run it acts in, and the base class each action type extends.

An action is built once when the policy loads (config checked, CEL compiled, state such as a
rate limiter's buckets created) and run for each exchange whose rule matched. `run` returns None
to go on with the next action, or an Outcome (Respond, CloseConnection, ForwardInternal) that
ends the phase. It notes what it did in the run's trace in a few words ("refused 401").
Source of each action's fields: ngrok's docs, `traffic-policy/actions/<type>/index.mdx`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..cel import Template, compile_template
from ..errors import PolicyError
from ..facts import ConnFacts, RequestFacts, ResponseFacts
from ..outcomes import Outcome
from ..trace import TraceEntry
from ..variables import Scope

PHASES = ("on_tcp_connect", "on_http_request", "on_http_response")
TCP, REQUEST, RESPONSE = PHASES


@dataclass(slots=True)
class PhaseRun:
    """One phase of one exchange being run: what actions read, change and report.

    `request` is set in on_http_request and on_http_response, `response` in on_http_response.
    `compress` is set by compress-response to the content coding chosen for the body.
    """

    phase: str
    scope: Scope
    conn: ConnFacts
    request: RequestFacts | None = None
    response: ResponseFacts | None = None
    trace: list[TraceEntry] = field(default_factory=list)
    rule: str = ""
    compress: str | None = None
    clock: Callable[[], float] = time.time
    # Called with the final status of the exchange's response (the service's, or the agent's own
    # 5xx when the service failed): circuit-breaker counts errors this way.
    on_response: list[Callable[[int], None]] = field(default_factory=list)
    # Whether this agent runs the internal endpoint at a URL (forward-internal asks).
    internal_exists: Callable[[str], bool] = lambda url: False

    def note(self, action: str, outcome: str, *, terminal: bool = False) -> None:
        self.trace.append(TraceEntry(self.phase, self.rule, action, outcome, terminal))

    def render(self, template: Template) -> str:
        return template.source if template.constant else template.render(self.scope)


class Config:
    """An action's `config` object read field by field. Each reader removes the field it read, so
    `finish()` can refuse the ones left over (unknown fields are errors, as in ngrok)."""

    def __init__(self, raw: Any, *, where: str) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: config must be an object")
        self.where = where
        self._left = dict(raw)

    def error(self, name: str, message: str) -> PolicyError:
        return PolicyError(f"{self.where}.{name}: {message}")

    def has(self, name: str) -> bool:
        return self._left.get(name) is not None

    def raw(self, name: str, default: Any = None) -> Any:
        value = self._left.pop(name, None)
        return default if value is None else value

    def string(self, name: str, default: str | None = None) -> str:
        value = self.raw(name, default)
        if value is None:
            raise self.error(name, "is required")
        if not isinstance(value, str):
            raise self.error(name, "must be a string")
        return value

    def template(self, name: str, default: str | None = None) -> Template:
        text = self.string(name, default)
        return compile_template(text, where=f"{self.where}.{name}")

    def integer(
        self, name: str, default: int | None = None, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.raw(name, default)
        if value is None:
            raise self.error(name, "is required")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value != int(value)
        ):
            raise self.error(name, "must be a whole number")
        value = int(value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            low = "" if minimum is None else f"at least {minimum}"
            high = "" if maximum is None else f"at most {maximum}"
            raise self.error(name, f"must be {' and '.join(p for p in (low, high) if p)}")
        return value

    def number(
        self, name: str, default: float | None = None, *, minimum: float = 0.0, maximum: float | None = None
    ) -> float:
        value = self.raw(name, default)
        if value is None:
            raise self.error(name, "is required")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(name, "must be a number")
        if value < minimum or (maximum is not None and value > maximum):
            raise self.error(
                name,
                f"must be between {minimum:g} and {maximum:g}"
                if maximum is not None
                else f"must be at least {minimum:g}",
            )
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.error(name, "must be true or false")
        return value

    def strings(
        self, name: str, *, required: bool = False, min_items: int = 0, max_items: int | None = None
    ) -> list[str]:
        value = self.raw(name)
        if value is None:
            if required:
                raise self.error(name, "is required")
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(name, "must be a list of strings")
        if len(value) < min_items or (max_items is not None and len(value) > max_items):
            raise self.error(
                name,
                f"must have {min_items} to {max_items} entries"
                if max_items
                else f"must have at least {min_items} entries",
            )
        return value

    def string_map(self, name: str, *, required: bool = False, max_items: int | None = None) -> dict[str, str]:
        value = self.raw(name)
        if value is None:
            if required:
                raise self.error(name, "is required")
            return {}
        if not isinstance(value, dict):
            raise self.error(name, "must be an object of strings")
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, (str, int, float, bool)):
                raise self.error(name, "must be an object of strings")
        if max_items is not None and not 1 <= len(value) <= max_items:
            raise self.error(name, f"must have 1 to {max_items} entries")
        return {key: item if isinstance(item, str) else _yaml_scalar(item) for key, item in value.items()}

    def finish(self) -> None:
        if self._left:
            name = sorted(self._left)[0]
            raise self.error(name, "unknown field")


def _yaml_scalar(value: Any) -> str:
    # YAML gives `x-flag: true` as a bool; ngrok's header values are strings.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Action:
    """Base of every action type. Subclasses set `type` and `phases`, read their config in
    `__init__` (through `Config`, ending with `config.finish()`) and implement `run`."""

    type: ClassVar[str]
    phases: ClassVar[frozenset[str]]
    # Ends the phase whenever it runs (custom-response, deny, close-connection, forward-internal).
    terminating: ClassVar[bool] = False
    # Needs the whole request body before it runs (verify-webhook): the proxy reads it first.
    needs_body: bool = False  # an instance may set it from its config (jwt-validation's body tokens)

    def __init__(self, config: Config, *, phase: str) -> None:
        self.phase = phase

    def run(self, run: PhaseRun) -> Outcome | None:
        raise NotImplementedError

    async def prepare(self) -> None:
        """Called once on the event loop before the endpoint takes traffic (e.g. jwt-validation
        fetches its JWKS here, in a thread). Raise PolicyError to refuse the endpoint."""

    def close(self) -> None:
        """The policy is being replaced or its tunnel stopped: release timers or files."""
