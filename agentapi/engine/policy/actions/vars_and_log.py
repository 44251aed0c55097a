"""set-vars and log: values computed from config with `${...}`, kept as `vars.*` or logged.

Rules (ngrok's docs, `traffic-policy/actions/set-vars.mdx` and `log.mdx`):
- Both run in every phase. set-vars: `vars`, a non-empty list of one-entry maps `{name: value}`,
  set in list order, so a later value may read `vars.<earlier name>`. log: `metadata`, a
  non-empty map of name -> value.
- A value may be any YAML/JSON value; strings inside it (in lists and maps too) may hold
  `${...}`. A string that is exactly one `${expr}` keeps the type of its value (a list, a map,
  a number...: "will resolve to the evaluated type"); other strings are text with each `${...}`
  as text.
- log: ngrok sends the metadata to its cloud event stream; here it goes into the request's
  policy trace (the capture: compact JSON, cut at 1000 characters with "...") and one log line.
  actions.ngrok.log.metadata is the map as evaluated.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from .. import cel
from ..cel_source import split_template
from ..errors import PolicyError
from ..outcomes import Outcome
from .base import PHASES, Action, Config, PhaseRun

log = logging.getLogger(__name__)
MAX_TRACE_TEXT = 1000


@dataclass(frozen=True, slots=True)
class _Text:
    template: cel.Template


@dataclass(frozen=True, slots=True)
class _Typed:
    expression: cel.Expression


def compile_value(value: Any, *, where: str) -> Any:
    """A config value ready to evaluate: strings with `${...}` compiled, lists and maps walked.

    Raises PolicyError naming `where` for a CEL expression that does not compile.
    """
    if isinstance(value, str):
        try:
            pieces = split_template(value)
        except PolicyError as error:
            raise PolicyError(f"{where}: {error}") from None
        if len(pieces) == 1 and not isinstance(pieces[0], str):
            # Exactly one `${expr}`: the value keeps the expression's type.
            return _Typed(cel.compile_expression(pieces[0][1], where=where))
        template = cel.compile_template(value, where=where)
        return value if template.constant else _Text(template)
    if isinstance(value, list):
        return [compile_value(item, where=f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise PolicyError(f"{where}: map keys must be strings")
        return {key: compile_value(item, where=f"{where}.{key}") for key, item in value.items()}
    return value


def evaluate(plan: Any, run: PhaseRun) -> Any:
    """The value of a compiled config value for this run; raises PolicyRuntimeError from CEL."""
    if isinstance(plan, _Text):
        return run.render(plan.template)
    if isinstance(plan, _Typed):
        return plan.expression.evaluate(run.scope)
    if isinstance(plan, list):
        return [evaluate(item, run) for item in plan]
    if isinstance(plan, dict):
        return {key: evaluate(item, run) for key, item in plan.items()}
    return plan


class SetVars(Action):
    """set-vars: `vars: [{name: value}, ...]` evaluated in order into `vars.<name>`."""

    type = "set-vars"
    phases = frozenset(PHASES)

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        raw = config.raw("vars")
        if raw is None:
            raise config.error("vars", "is required")
        if not isinstance(raw, list) or not raw:
            raise config.error("vars", "must be a non-empty list of {name: value} maps")
        assignments = []
        for index, item in enumerate(raw):
            if not isinstance(item, dict) or len(item) != 1:
                raise config.error(f"vars[{index}]", "must be a map of exactly one name: value")
            ((name, value),) = item.items()
            if not isinstance(name, str) or not name:
                raise config.error(f"vars[{index}]", "the variable name must be a non-empty string")
            assignments.append((name, compile_value(value, where=f"{config.where}.vars[{index}].{name}")))
        self.assignments = tuple(assignments)
        config.finish()

    def run(self, run: PhaseRun) -> Outcome | None:
        for name, plan in self.assignments:
            run.scope.vars[name] = evaluate(plan, run)
            # A later value in this list may read this one.
            run.scope.changed("vars")
        run.note(self.type, ", ".join(dict.fromkeys(name for name, _ in self.assignments)))
        return None


def _trace_text(metadata: dict[str, Any]) -> str:
    text = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= MAX_TRACE_TEXT else text[: MAX_TRACE_TEXT - 3] + "..."


class Log(Action):
    """log: `metadata` (name -> value) evaluated into the trace, the log and actions.ngrok.log."""

    type = "log"
    phases = frozenset(PHASES)

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        raw = config.raw("metadata")
        if raw is None:
            raise config.error("metadata", "is required")
        if not isinstance(raw, dict) or not raw:
            raise config.error("metadata", "must be a non-empty map of name: value")
        plan = compile_value(raw, where=f"{config.where}.metadata")
        assert isinstance(plan, dict)
        self.metadata: dict[str, Any] = plan
        config.finish()

    def run(self, run: PhaseRun) -> Outcome | None:
        metadata = evaluate(self.metadata, run)
        run.scope.actions["log"] = {"metadata": metadata}
        run.scope.changed("actions")
        text = _trace_text(metadata)
        run.note(self.type, text)
        log.info("traffic policy log, endpoint %s, %s rule %r: %s", run.scope.endpoint.name, run.phase, run.rule, text)
        return None


ACTIONS = (SetVars, Log)
