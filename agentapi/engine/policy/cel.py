"""CEL for Traffic Policy: expressions compiled once when a policy loads, evaluated per exchange.

The evaluator is the `common-expression-language` package (cel-rust through PyO3); why, and what it
costs, is in docs/traffic-policy.md ("CEL evaluator: the choice"). Rules:
- Compiling: the text is parsed by the package (a syntax error is refused with its column), then
  read as tokens (cel_source.py) to check every name: a variable must be one ngrok documents
  (cel_schema.py), a function or method one this agent has (cel_functions.py); a name that needs
  ngrok's cloud (`conn.geo.*`, `secrets.get`...) is refused saying so. Errors are PolicyError
  `"{where}: {message} (column N)"`.
- Each variable path (`req.url.path`, `req.headers['x-id']`) is rewritten to one generated name
  read through the Scope (variables.py), so an evaluation converts to CEL only the values it
  reads; `has(req.url.port)` becomes one such read too. Converting a Python value to CEL is the
  package's main cost (a map of ten headers is about 40 µs, a string 1 µs).
- `list.sortBy(x, key)`, a macro the package lacks, is rewritten to
  `list.map(x, [key, x]).sortPairs_()`.
- One `cel.Context` holds every function and the variable resolver for the whole process; the
  Scope being evaluated is kept per thread while its expression runs, so the request macros
  (`getReqHeader('x')`) and the resolver read it. Nothing is built per evaluation.
- Evaluating never raises anything but PolicyRuntimeError, naming where the expression is, its
  text and what failed ("no such key: req.headers['x-id']").
- `${...}` templates (cel_source.split_template): each part compiled once; values written as text
  as cel_strings.text_of says (strings as they are, numbers and bools as text, lists and maps as
  JSON, timestamps in RFC 3339).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import cel as cel_lib

from . import cel_functions
from .cel_schema import REFUSED_ROOTS, ROOTS, check_path, show_path
from .cel_source import RESERVED, Kind, Token, position, split_template, tokenize
from .cel_strings import text_of
from .errors import PolicyError, PolicyRuntimeError
from .variables import Missing, Path, Scope

# The package logs each failing Python function at WARNING; every failure here already becomes a
# PolicyRuntimeError that the proxy records, so the log line would be noise per request.
logging.getLogger("cel").setLevel(logging.ERROR)


class _Evaluation(threading.local):
    scope: Scope | None = None
    missing: str | None = None


_state = _Evaluation()


def _current_scope() -> Scope:
    scope = _state.scope
    if scope is None:
        raise cel_functions.CelFunctionError("no exchange is being evaluated")
    return scope


# Generated variable names: "__tp<n>" -> (is_has, path), and back. Shared by every policy of the
# process, so a path reloaded in a new policy keeps its name; it grows only with new paths.
_NAMES: dict[str, tuple[bool, Path]] = {}
_NAME_OF: dict[tuple[bool, Path], str] = {}
_names_lock = threading.Lock()


def _name_for(is_has: bool, path: Path) -> str:
    key = (is_has, path)
    name = _NAME_OF.get(key)
    if name is None:
        with _names_lock:
            name = _NAME_OF.get(key)
            if name is None:
                name = f"__tp{len(_NAMES)}"
                _NAMES[name] = key
                _NAME_OF[key] = name
    return name


def _resolve(name: str) -> Any:
    entry = _NAMES.get(name)
    scope = _state.scope
    if entry is None or scope is None:
        return None
    is_has, path = entry
    try:
        return scope.has(path) if is_has else scope.value(path)
    except Missing as error:
        if _state.missing is None:
            _state.missing = str(error)
    except Exception as error:  # a bug in a variable: reported as this evaluation's failure
        if _state.missing is None:
            _state.missing = f"reading {show_path(path)} failed: {type(error).__name__}: {error}"
    return None  # the package then fails with "Undefined variable", mapped to `missing`


_FUNCTIONS = cel_functions.build_functions(_current_scope)
_CONTEXT = cel_lib.Context(functions=_FUNCTIONS)
_CONTEXT.set_variable_resolver(_resolve)

_GLOBAL_FUNCTIONS = cel_functions.NATIVE_FUNCTIONS | {name for name in _FUNCTIONS if "." not in name}
_METHODS = cel_functions.NATIVE_METHODS | {name for name in _FUNCTIONS if "." not in name} | {"sortBy"}
_NAMESPACES = {name.split(".", 1)[0] for name in (*_FUNCTIONS, *cel_functions.CLOUD_FUNCTIONS) if "." in name}


class Expression:
    """A compiled CEL expression. `roots`: the top-level variables it reads ("req", "conn"...),
    counting the ones the request and response macros read."""

    __slots__ = ("_program", "_where", "roots", "source")

    def __init__(self, source: str, program: cel_lib.Program, roots: frozenset[str], where: str) -> None:
        self.source = source
        self.roots = roots
        self._program = program
        self._where = where

    def evaluate(self, scope: Scope) -> Any:
        """The expression's value (bool, int, float, str, bytes, list, dict, datetime,
        timedelta or None); raises PolicyRuntimeError naming the expression on failure."""
        state = _state
        previous = state.scope
        state.scope = scope
        state.missing = None
        try:
            return self._program.execute(_CONTEXT)
        except Exception as error:
            raise PolicyRuntimeError(f"{self._where}: {self.source!r}: {_problem(error)}") from None
        except BaseException as error:  # a panic inside the library (pyo3's PanicException)
            if isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                raise
            raise PolicyRuntimeError(f"{self._where}: {self.source!r}: the evaluator failed: {error}") from None
        finally:
            state.scope = previous

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


class Template:
    """A config string with `${expr}` parts; `constant` when it has none."""

    __slots__ = ("_parts", "constant", "roots", "source")

    def __init__(self, source: str, parts: tuple[str | Expression, ...]) -> None:
        self.source = source
        self._parts = parts
        self.constant = all(isinstance(part, str) for part in parts)
        self.roots = frozenset(root for part in parts if isinstance(part, Expression) for root in part.roots)

    def render(self, scope: Scope) -> str:
        """The string with each `${...}` replaced by its value as text; raises PolicyRuntimeError."""
        if self.constant:
            return self.source
        return "".join(part if isinstance(part, str) else text_of(part.evaluate(scope)) for part in self._parts)

    def value(self, scope: Scope) -> Any:
        """The value itself when the whole string is one `${...}` (a list stays a list, for
        set-vars and log), else `render`. Raises PolicyRuntimeError."""
        if len(self._parts) == 1 and isinstance(self._parts[0], Expression):
            return self._parts[0].evaluate(scope)
        return self.render(scope)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def compile_expression(source: str, *, where: str) -> Expression:
    """Compile once; raises PolicyError("{where}: ... (column N)") for bad syntax, an unknown
    variable or function, or a variable/macro that needs ngrok's cloud."""
    return _compile(source, where=where, text=source, offset=0)


def compile_template(text: str, *, where: str) -> Template:
    """Compile each `${...}` part of a config string; raises PolicyError like compile_expression
    (the column counts in the whole string)."""
    try:
        pieces = split_template(text)
    except PolicyError as error:
        raise PolicyError(f"{where}: {error}") from None
    parts: list[str | Expression] = []
    for piece in pieces:
        if isinstance(piece, str):
            parts.append(piece)
        else:
            offset, source = piece
            parts.append(_compile(source, where=where, text=text, offset=offset))
    return Template(text, tuple(parts))


_SYNTAX_AT = re.compile(r"<input>:(\d+):(\d+): (.*)")


# Bounds on what reaches the CEL library, whose recursive parser overflows the stack (and takes the
# agent down) on very long or very deeply nested input: no real rule comes near either.
MAX_EXPRESSION_CHARS = 4096
MAX_NESTING = 64  # brackets, parentheses and braces open at once
MAX_OPERATORS = 512  # binary operators in one expression (each nests the parse one level)
_BINARY = frozenset({"+", "-", "*", "/", "%", "&&", "||", "==", "!=", "<", "<=", ">", ">=", "?", ".", "["})


def _check_size(source: str, *, where: str) -> None:
    """PolicyError for an expression too long or too deeply nested for the library to parse safely."""
    if len(source) > MAX_EXPRESSION_CHARS:
        raise PolicyError(f"{where}: the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    tokens, _ = tokenize(source)
    depth = deepest = operators = 0
    for token in tokens:
        if token.kind is not Kind.PUNCT:
            continue
        if token.text in ("(", "[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token.text in (")", "]", "}"):
            depth -= 1
        if token.text in _BINARY:
            operators += 1
    if deepest > MAX_NESTING:
        raise PolicyError(f"{where}: the expression nests more than {MAX_NESTING} levels deep")
    if operators > MAX_OPERATORS:
        raise PolicyError(f"{where}: the expression has more than {MAX_OPERATORS} operators")


def _compile(source: str, *, where: str, text: str, offset: int) -> Expression:
    try:
        _check_size(source, where=where)
    except PolicyError as error:
        raise PolicyError(str(error)) from None
    try:
        cel_lib.compile(source)
    except ValueError as error:
        raise PolicyError(f"{where}: {_syntax_message(str(error), source, text, offset)}") from None
    except BaseException as error:  # a panic inside the library (pyo3's PanicException)
        if isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        raise PolicyError(f"{where}: the expression could not be parsed") from None
    try:
        rewritten, roots = _rewrite(source, text, offset)
    except PolicyError as error:
        raise PolicyError(f"{where}: {error}") from None
    try:
        program = cel_lib.compile(rewritten)
    except ValueError as error:  # a rewrite this module got wrong: say so rather than crash
        raise PolicyError(f"{where}: this agent could not prepare the expression: {error}") from None
    return Expression(source, program, roots, where)


def _syntax_message(message: str, source: str, text: str, offset: int) -> str:
    match = _SYNTAX_AT.search(message)
    if match is None:
        return f"the expression does not parse: {message.splitlines()[0]}"
    line, column, problem = int(match.group(1)), int(match.group(2)), match.group(3)
    line_start = 0
    for _ in range(line - 1):
        line_start = source.index("\n", line_start) + 1
    return f"{problem.strip()}{position(text, offset + line_start + column - 1)}"


def _rewrite(source: str, text: str, offset: int) -> tuple[str, frozenset[str]]:
    """The source with its variable paths replaced by generated names, and the roots it reads.
    Raises PolicyError (with the column) for a name this agent refuses."""
    tokens, _ = tokenize(source)
    count = len(tokens)

    def refuse(token: Token, message: str) -> PolicyError:
        return PolicyError(f"{message}{position(text, offset + token.start)}")

    def punct(index: int, value: str) -> bool:
        return index < count and tokens[index].kind is Kind.PUNCT and tokens[index].text == value

    bound: set[str] = set()
    for index, token in enumerate(tokens):
        if (
            token.text in cel_functions.BINDING_MACROS
            and punct(index - 1, ".")
            and punct(index + 1, "(")
            and index + 3 < count
            and tokens[index + 2].kind is Kind.IDENT
            and punct(index + 3, ",")
        ):
            name = tokens[index + 2].text
            if name in ROOTS or name in REFUSED_ROOTS:
                raise refuse(tokens[index + 2], f"{name!r} cannot name a macro's variable: it is a variable of ngrok's")
            bound.add(name)

    edits: list[tuple[int, int, str]] = []
    roots: set[str] = set()
    index = 0
    while index < count:
        token = tokens[index]
        if token.kind is not Kind.IDENT or token.text in RESERVED:
            index += 1
            continue
        if punct(index - 1, "."):  # a member or method name after an expression
            if punct(index + 1, "("):
                _check_method(token, refuse)
                if token.text == "sortBy":
                    edits.extend(_sort_by_edits(tokens, index, refuse))
            index += 1
            continue
        segments, ends, j = _chain(tokens, index)
        root = token.text
        if punct(j, "("):
            qualified = ".".join(str(s) for s in segments) if all(isinstance(s, str) for s in segments) else ""
            if len(segments) == 1:
                if root == "has":
                    end = _has_rewrite(tokens, j, edits, roots, refuse)
                    if end is not None:
                        index = end
                        continue
                elif root not in _GLOBAL_FUNCTIONS:
                    raise refuse(token, f"unknown function {root!r}")
                index = j
                continue
            if root not in ROOTS and root not in bound:
                if qualified in cel_functions.CLOUD_FUNCTIONS:
                    reason = cel_functions.CLOUD_FUNCTIONS[qualified]
                    raise refuse(token, f"{qualified}() is refused: {reason}, which this agent cannot reach")
                if qualified in _FUNCTIONS:
                    index = j
                    continue
                if root in _NAMESPACES:
                    raise refuse(token, f"unknown function {qualified!r}")
            method = tokens[ends[-1]]
            if isinstance(segments[-1], str):
                _check_method(method, refuse)
                if method.text == "sortBy":
                    edits.extend(_sort_by_edits(tokens, ends[-1], refuse))
            segments.pop()
            ends.pop()
        if root in ROOTS:
            path = tuple(segments)
            problem = check_path(path)
            if problem is not None:
                bad, message = problem
                raise refuse(tokens[ends[bad]], message)
            roots.add(root)
            edits.append((token.start, tokens[ends[-1]].end, _name_for(False, path)))
        elif root in REFUSED_ROOTS:
            raise refuse(token, f"{root} is refused: {REFUSED_ROOTS[root].reason}")
        elif root not in bound and not (root in cel_functions.TYPE_NAMES and len(segments) == 1):
            raise refuse(token, f"unknown variable {root!r}")
        index = j
    for name in _FUNCTIONS.keys() & cel_functions.READS_ROOT.keys():
        if any(t.kind is Kind.IDENT and t.text == name for t in tokens):
            roots.add(cel_functions.READS_ROOT[name])
    rewritten = source
    for start, end, replacement in sorted(edits, reverse=True):
        rewritten = rewritten[:start] + replacement + rewritten[end:]
    return rewritten, frozenset(roots)


def _literal_key(token: Token) -> str | int | None:
    if token.kind is Kind.STRING and token.value is not None:
        return token.value
    if token.kind is Kind.NUMBER and token.text.isdigit():
        return int(token.text)
    return None


def _check_method(token: Token, refuse: Any) -> None:
    if token.text not in _METHODS:
        raise refuse(token, f"unknown function {token.text!r}")


def _chain(tokens: list[Token], index: int) -> tuple[list[str | int], list[int], int]:
    """The path written from tokens[index] on: `req.headers['x-id'][0]` -> its segments, the index
    of each segment's last token, and the index of the first token after it."""
    count = len(tokens)
    segments: list[str | int] = [tokens[index].text]
    ends = [index]
    j = index + 1
    while j < count and tokens[j].kind is Kind.PUNCT:
        if tokens[j].text == "." and j + 1 < count and tokens[j + 1].kind is Kind.IDENT:
            segments.append(tokens[j + 1].text)
            ends.append(j + 1)
            j += 2
        elif tokens[j].text == "[" and j + 2 < count and tokens[j + 2].text == "]":
            key = _literal_key(tokens[j + 1])
            if key is None:
                break
            segments.append(key)
            ends.append(j + 2)
            j += 3
        else:
            break
    return segments, ends, j


def _has_rewrite(
    tokens: list[Token], open_index: int, edits: list[tuple[int, int, str]], roots: set[str], refuse: Any
) -> int | None:
    """`has(req.url.port)` -> one generated bool name; the index after `)`, or None when the
    argument is not a whole path of a variable (then the package's own has() runs)."""
    first = open_index + 1
    if first >= len(tokens) or tokens[first].kind is not Kind.IDENT or tokens[first].text not in ROOTS:
        return None
    segments, ends, j = _chain(tokens, first)
    if j >= len(tokens) or tokens[j].text != ")" or len(segments) < 2 or not isinstance(segments[-1], str):
        return None
    path = tuple(segments)
    problem = check_path(path)
    if problem is not None:
        raise refuse(tokens[ends[problem[0]]], problem[1])
    roots.add(str(path[0]))
    edits.append((tokens[open_index - 1].start, tokens[j].end, _name_for(True, path)))
    return j + 1


def _sort_by_edits(tokens: list[Token], index: int, refuse: Any) -> list[tuple[int, int, str]]:
    """`.sortBy(x, key)` -> `.map(x, [key, x]).sortPairs_()`, as edits around the key's tokens
    (which keep their own edits)."""
    count = len(tokens)
    if not (index + 3 < count and tokens[index + 2].kind is Kind.IDENT and tokens[index + 3].text == ","):
        raise refuse(tokens[index], "sortBy needs a variable name and a key expression: list.sortBy(x, x.key)")
    variable = tokens[index + 2].text
    depth = 0
    close = index + 1
    for close in range(index + 1, count):
        if tokens[close].text in "([{":
            depth += 1
        elif tokens[close].text in ")]}":
            depth -= 1
            if depth == 0:
                break
    key_start = tokens[index + 4].start
    return [
        (tokens[index].start, tokens[index].end, "map"),
        (key_start, key_start, "["),
        (tokens[close].start, tokens[close].start, f", {variable}]"),
        (tokens[close].end, tokens[close].end, ".sortPairs_()"),
    ]


_UNDEFINED = re.compile(r"Undefined variable or function: '([^']*)'")
_FUNCTION_FAILED = re.compile(r"Function '([^']*)' error: (?:Python function call failed: (?:(\w+): )?)?(.*)", re.S)


def _problem(error: Exception) -> str:
    """What failed, in a few words, from an exception the package raised."""
    if _state.missing is not None:
        return _state.missing
    message = str(error)
    undefined = _UNDEFINED.search(message)
    if undefined is not None:
        entry = _NAMES.get(undefined.group(1))
        if entry is not None:
            return f"{show_path(entry[1])} has no value"
        return f"unknown name {undefined.group(1)!r}"
    failed = _FUNCTION_FAILED.match(message)
    if failed is not None:
        name, kind, detail = failed.groups()
        detail = detail.split(". Check function arguments", 1)[0].strip()
        if kind in (None, "CelFunctionError", "Missing"):
            return detail if kind else f"{name}: {detail}"
        return f"{name}: {kind}: {detail}"
    if isinstance(error, KeyError):
        return f"no such key: {message}"
    first = message.splitlines()[0] if message else type(error).__name__
    return first.split(". ", 1)[0]
