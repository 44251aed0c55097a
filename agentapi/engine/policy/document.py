"""A Traffic Policy document: parsed, checked and compiled once when it loads.

Rules (ngrok's docs, `traffic-policy/index.mdx` and `traffic-policy/how-it-works.mdx`):
- A policy is an object of phases: `on_tcp_connect`, `on_http_request`, `on_http_response`. Each
  is a list of rules `{name?, expressions?, actions}`; each action is `{type, config?}`.
- HTTP/HTTPS endpoints have all three phases; TCP and TLS endpoints only `on_tcp_connect`.
- Accepted as YAML or JSON text (JSON is tried first, so its errors are JSON's), or as an
  already-parsed object. `source` keeps the text as given (the API echoes it back).
- Every field is checked; an unknown key, a wrong type, a cloud-only action or variable, a CEL
  expression that does not compile: PolicyError naming the phase, rule, action and field.
- The 2023 names `inbound`/`outbound` are read as on_http_request/on_http_response (`inbound` of
  a tcp/tls endpoint as on_tcp_connect, as ngrok's v2 config docs list it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from .actions import CLOUD_ONLY, NOT_YET, action_class
from .actions.base import PHASES, REQUEST, RESPONSE, TCP, Action, Config
from .cel import Expression, compile_expression
from .errors import PolicyError

MAX_POLICY_BYTES = 256 * 1024
MAX_RULES = 100  # per phase
MAX_ACTIONS = 20  # per rule
MAX_EXPRESSIONS = 20  # per rule
MAX_NESTING = 32  # lists and objects inside each other
# Values in the whole document, YAML aliases expanded: a "billion laughs" document is refused after
# this many steps instead of being expanded (which would take minutes and gigabytes).
MAX_NODES = 100_000
_OLD_PHASE_NAMES = {"inbound": REQUEST, "outbound": RESPONSE}


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # as given, else "rules[i]"
    expressions: tuple[Expression, ...]
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy. `rules[phase]` is empty for a phase it does not use."""

    source: str
    rules: dict[str, tuple[Rule, ...]]
    needs_request_body: bool

    def uses(self, phase: str) -> bool:
        return bool(self.rules.get(phase))

    def actions(self) -> list[Action]:
        return [action for rules in self.rules.values() for rule in rules for action in rule.actions]

    def close(self) -> None:
        for action in self.actions():
            action.close()


def load_policy(raw: str | dict[str, Any], *, proto: str) -> Policy:
    """Parse and compile a policy for an endpoint of `proto` (http, https, tcp, tls).

    Raises PolicyError with a message naming where the policy is wrong.
    """
    if isinstance(raw, str):
        source = raw
        document = parse_policy_text(raw)
    elif isinstance(raw, dict):
        document = raw
        source = json.dumps(raw)
    else:
        raise PolicyError("traffic_policy must be a YAML or JSON document (a string) or an object")
    if document is None:
        document = {}
    check_bounds(document)
    if not isinstance(document, dict):
        raise PolicyError(
            "a traffic policy must be an object of phases: on_tcp_connect, on_http_request, on_http_response"
        )
    phases: dict[str, tuple[Rule, ...]] = {phase: () for phase in PHASES}
    for key, rules in document.items():
        phase = _OLD_PHASE_NAMES.get(key, key)
        if key == "inbound" and proto in ("tcp", "tls"):
            phase = TCP  # ngrok's v2 docs: a tcp/tls tunnel's traffic_policy.inbound is on_tcp_connect
        if phase not in PHASES:
            raise PolicyError(
                f"unknown phase {str(key)[:64]!r}: expected on_tcp_connect, on_http_request or on_http_response"
            )
        if proto in ("tcp", "tls") and phase != TCP:
            raise PolicyError(f"{key}: {proto} endpoints have only the on_tcp_connect phase")
        if rules is None:
            continue
        if not isinstance(rules, list):
            raise PolicyError(f"{key}: must be a list of rules")
        if len(rules) > MAX_RULES:
            raise PolicyError(f"{key}: at most {MAX_RULES} rules")
        phases[phase] = phases[phase] + tuple(
            _rule(rule, phase, f"{key}.rules[{index}]", index) for index, rule in enumerate(rules)
        )
    needs_body = any(action.needs_body for rule in phases[REQUEST] for action in rule.actions)
    return Policy(source=source, rules=phases, needs_request_body=needs_body)


def check_bounds(document: Any) -> None:
    """PolicyError when the document, aliases expanded, holds more than MAX_NODES values or nests
    deeper than MAX_NESTING. Walks without recursion and stops at the first bound crossed."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise PolicyError(f"the policy holds more than {MAX_NODES} values (with YAML aliases expanded)")
        if depth > MAX_NESTING:
            raise PolicyError(f"the policy nests more than {MAX_NESTING} levels deep")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def parse_policy_text(text: str) -> Any:
    """YAML or JSON text as data; PolicyError when it is neither."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise PolicyError(f"the policy is larger than {MAX_POLICY_BYTES // 1024} KiB")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise PolicyError(
                f"the policy is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
            ) from None
        except RecursionError:
            raise PolicyError(f"the policy nests more than {MAX_NESTING} levels deep") from None
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise PolicyError(f"the policy nests more than {MAX_NESTING} levels deep") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise PolicyError(f"the policy is not valid YAML: {problem}{where}") from None


def _rule(raw: Any, phase: str, where: str, index: int) -> Rule:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: a rule must be an object with actions")
    unknown = set(raw) - {"name", "expressions", "actions"}
    if unknown:
        raise PolicyError(f"{where}: unknown field {sorted(map(str, unknown))[0]!r}")
    name = raw.get("name") or ""
    if not isinstance(name, str):
        raise PolicyError(f"{where}.name: must be a string")
    if name:
        where = f'{where} ("{name[:64]}")'
    expressions = raw.get("expressions") or []
    if not isinstance(expressions, list) or not all(isinstance(e, str) for e in expressions):
        raise PolicyError(f"{where}.expressions: must be a list of CEL strings")
    if len(expressions) > MAX_EXPRESSIONS:
        raise PolicyError(f"{where}.expressions: at most {MAX_EXPRESSIONS}")
    compiled = tuple(compile_expression(text, where=f"{where}.expressions[{i}]") for i, text in enumerate(expressions))
    actions = raw.get("actions")
    if not isinstance(actions, list) or not actions:
        raise PolicyError(f"{where}.actions: a rule needs a list of at least one action")
    if len(actions) > MAX_ACTIONS:
        raise PolicyError(f"{where}.actions: at most {MAX_ACTIONS}")
    built = tuple(_action(action, phase, f"{where}.actions[{i}]") for i, action in enumerate(actions))
    return Rule(name=name or f"rules[{index}]", expressions=compiled, actions=built)


def _action(raw: Any, phase: str, where: str) -> Action:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: an action must be an object with a type")
    unknown = set(raw) - {"type", "config"}
    if unknown:
        raise PolicyError(f"{where}: unknown field {sorted(map(str, unknown))[0]!r}")
    action_type = raw.get("type")
    if not isinstance(action_type, str) or not action_type:
        raise PolicyError(f"{where}.type: is required")
    where = f"{where} ({action_type[:64]})"
    if action_type in CLOUD_ONLY:
        raise PolicyError(
            f"{where}: the {action_type} action needs ngrok's cloud and cannot run in this agent: {CLOUD_ONLY[action_type]}"
        )
    if action_type in NOT_YET:
        raise PolicyError(f"{where}: the {action_type} action is not supported by this agent yet")
    cls = action_class(action_type)
    if cls is None:
        raise PolicyError(f"{where}.type: unknown action type {action_type[:64]!r}")
    if phase not in cls.phases:
        allowed = ", ".join(p for p in PHASES if p in cls.phases)
        raise PolicyError(f"{where}: {action_type} cannot run in {phase} (only in {allowed})")
    config = Config(raw.get("config"), where=f"{where}.config")
    action = cls(config, phase=phase)
    config.finish()
    return action
