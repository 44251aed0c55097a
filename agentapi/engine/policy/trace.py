"""What a policy did to one exchange, step by step: kept with the capture and shown in the inspector."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One action that ran, e.g. phase on_http_request, rule "auth", action basic-auth, outcome
    "refused 401". `terminal` marks the action that ended the phase with the agent's own answer
    or a close (what the inspector's "blocked by policy" filter finds)."""

    phase: str
    rule: str
    action: str
    outcome: str
    terminal: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "rule": self.rule,
            "action": self.action,
            "outcome": self.outcome,
            "terminal": self.terminal,
        }
