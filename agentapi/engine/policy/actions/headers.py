"""add-headers and remove-headers, and header fields written from config (custom-response and
redirect use `HeaderTemplates` too).

Rules (ngrok's docs, `traffic-policy/actions/add-headers.mdx` and `remove-headers.mdx`):
- Both run in on_http_request (the request going to the service) and on_http_response (the
  response going to the client); `headers` has 1 to 10 entries.
- add-headers appends a field even when one of that name exists ("Addition only"), except `host`,
  whose value replaces the Host field (and the request's host). Names are lower-cased (the docs:
  "normalized to lowercase"). Values may hold `${...}` CEL interpolation.
- remove-headers removes every field of each name, compared case-insensitively.
- Neither may add or remove `user-agent` (the docs' special cases): refused when the policy loads.
- A name must be an RFC 9110 5.1 token; a value must not hold CR, LF or NUL (RFC 9110 5.5):
  a constant value is refused at load, an interpolated one fails the rule at run time.
  Text is UTF-8 on the wire: a value is kept as the latin-1 text of its UTF-8 bytes (facts.py).
- ngrok's `ngrok-skip-browser-warning` rule is about its free plan's interstitial page, which
  this agent does not have: the field is added like any other.
- actions.ngrok.add_headers.headers_added: the map of fields added; actions.ngrok.remove_headers
  .headers_removed: the names that were present and removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import cel
from ..errors import PolicyRuntimeError
from ..outcomes import Outcome
from .base import REQUEST, RESPONSE, Action, Config, PhaseRun

MAX_HEADERS = 10
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
# The docs' special cases: neither action may touch it.
_PROTECTED = frozenset({"user-agent"})


def wire_text(value: str) -> str:
    """A config or CEL string as header text: the latin-1 spelling of its UTF-8 bytes."""
    return value.encode("utf-8").decode("latin-1")


def check_field_value(value: str) -> str | None:
    """Why `value` cannot be a header field value (RFC 9110 5.5), or None when it can."""
    if _FORBIDDEN_IN_VALUE.search(value):
        return "a header value must not contain CR, LF or NUL"
    return None


def replace_field(fields: list[tuple[str, str]], name: str, value: str) -> None:
    """Set field `name` to `value` in place: the first one keeps its place, the others go; appended
    when there is none."""
    lower = name.lower()
    kept: list[tuple[str, str]] = []
    placed = False
    for key, old in fields:
        if key.lower() != lower:
            kept.append((key, old))
        elif not placed:
            kept.append((key, value))
            placed = True
    if not placed:
        kept.append((name, value))
    fields[:] = kept


@dataclass(frozen=True, slots=True)
class _Field:
    name: str  # lower-cased token
    value: cel.Template


class HeaderTemplates:
    """A config map of header name -> value with `${...}` interpolation, checked when it loads.

    `render(run)` gives `[(name, value)]` in config order, names lower-cased, values as wire
    text; raises PolicyRuntimeError when an interpolated value is not a valid field value.
    Raises PolicyError (naming `field`) for more than 10 entries, a name that is not a token, a
    constant value with CR/LF/NUL, or a name in `refused` (with the reason given there).
    """

    def __init__(self, config: Config, field: str, *, required: bool, refused: dict[str, str] | None = None) -> None:
        raw = config.string_map(field, required=required, max_items=MAX_HEADERS)
        fields: list[_Field] = []
        for name, value in raw.items():
            lower = name.lower()
            if not _TOKEN.fullmatch(name):
                raise config.error(f"{field}.{name}", "a header name must be a token (RFC 9110 5.1)")
            if refused and lower in refused:
                raise config.error(f"{field}.{name}", refused[lower])
            template = cel.compile_template(value, where=f"{config.where}.{field}.{name}")
            if template.constant and (problem := check_field_value(value)):
                raise config.error(f"{field}.{name}", problem)
            fields.append(_Field(lower, template))
        self._fields = tuple(fields)
        self.names = tuple(f.name for f in fields)

    def __bool__(self) -> bool:
        return bool(self._fields)

    def render(self, run: PhaseRun) -> list[tuple[str, str]]:
        pairs = []
        for field in self._fields:
            value = run.render(field.value)
            if problem := check_field_value(value):
                raise PolicyRuntimeError(f"header {field.name}: {problem} (the interpolated value was {value!r:.80})")
            pairs.append((field.name, value))
        return pairs


def _protected_reason(verb: str) -> dict[str, str]:
    return {name: f"ngrok does not allow {verb} the {name} header" for name in _PROTECTED}


def _message_fields(run: PhaseRun) -> list[tuple[str, str]]:
    """The header fields of the message this phase acts on."""
    message = run.response if run.phase == RESPONSE else run.request
    if message is None:
        raise PolicyRuntimeError(f"no {'response' if run.phase == RESPONSE else 'request'} in {run.phase}")
    return message.headers


class AddHeaders(Action):
    """add-headers: `headers` (1-10 name -> value, `${...}` in values) appended to the message."""

    type = "add-headers"
    phases = frozenset({REQUEST, RESPONSE})

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        self.headers = HeaderTemplates(config, "headers", required=True, refused=_protected_reason("adding"))
        config.finish()

    def run(self, run: PhaseRun) -> Outcome | None:
        fields = _message_fields(run)
        added: dict[str, str] = {}
        for name, value in self.headers.render(run):
            text = wire_text(value)
            if name == "host":
                replace_field(fields, "host", text)
                if run.request is not None and run.phase == REQUEST:
                    run.request.host = text
            else:
                fields.append((name, text))
            added[name] = value
        run.scope.changed("res" if run.phase == RESPONSE else "req")
        run.scope.actions["add_headers"] = {"headers_added": added}
        run.scope.changed("actions")
        run.note(self.type, ", ".join(added))
        return None


class RemoveHeaders(Action):
    """remove-headers: every field named in `headers` (1-10 names) removed from the message."""

    type = "remove-headers"
    phases = frozenset({REQUEST, RESPONSE})

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        names = config.strings("headers", required=True, min_items=1, max_items=MAX_HEADERS)
        for index, name in enumerate(names):
            if not _TOKEN.fullmatch(name):
                raise config.error(f"headers[{index}]", "a header name must be a token (RFC 9110 5.1)")
            if name.lower() in _PROTECTED:
                raise config.error(f"headers[{index}]", _protected_reason("removing")[name.lower()])
        # Lower-cased and without repeats, in config order.
        self.names = tuple(dict.fromkeys(name.lower() for name in names))
        config.finish()

    def run(self, run: PhaseRun) -> Outcome | None:
        fields = _message_fields(run)
        present = {name.lower() for name, _ in fields}
        removed = [name for name in self.names if name in present]
        if removed:
            gone = set(removed)
            fields[:] = [(name, value) for name, value in fields if name.lower() not in gone]
            if "host" in gone and run.request is not None and run.phase == REQUEST:
                run.request.host = ""
            run.scope.changed("res" if run.phase == RESPONSE else "req")
        run.scope.actions["remove_headers"] = {"headers_removed": removed}
        run.scope.changed("actions")
        run.note(self.type, f"removed {', '.join(removed)}" if removed else "none present")
        return None


ACTIONS = (AddHeaders, RemoveHeaders)
