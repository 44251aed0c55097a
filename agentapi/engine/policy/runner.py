"""Running one phase of a policy: rules in order, every expression of a rule must hold, its
actions in order, a terminating outcome ends the phase (ngrok's `traffic-policy/how-it-works.mdx`).

A CEL expression that does not give true or false, or an action that fails, raises
PolicyRuntimeError with the rule named: the proxy answers 500 and records it.
"""

from __future__ import annotations

from .actions.base import PhaseRun
from .document import Policy
from .errors import PolicyRuntimeError
from .outcomes import Outcome


def run_phase(policy: Policy, run: PhaseRun) -> Outcome | None:
    """Run `run.phase` of `policy`; the Outcome that ended it early, or None."""
    for rule in policy.rules[run.phase]:
        run.rule = rule.name
        matched = True
        for expression in rule.expressions:
            value = expression.evaluate(run.scope)
            if not isinstance(value, bool):
                raise PolicyRuntimeError(
                    f"{run.phase} rule {rule.name!r}: expression {expression.source!r} gave {type(value).__name__}, not a bool"
                )
            if not value:
                matched = False
                break
        if not matched:
            continue
        for action in rule.actions:
            try:
                outcome = action.run(run)
            except PolicyRuntimeError as error:
                raise PolicyRuntimeError(f"{run.phase} rule {rule.name!r}, action {action.type}: {error}") from error
            if outcome is not None:
                return outcome
    return None
