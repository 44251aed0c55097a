"""CEL for Traffic Policy: expressions compiled once at load, evaluated per request. (STUB: the
CEL helper replaces this module; the signatures are the contract.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .variables import Scope


class Expression:
    """A compiled CEL expression. `roots`: the top-level variables it reads ("req", "conn"...)."""

    source: str
    roots: frozenset[str]

    def evaluate(self, scope: Scope) -> Any:
        """The expression's value; raises PolicyRuntimeError naming the expression on failure."""
        raise NotImplementedError


class Template:
    """A config string with `${expr}` parts; `constant` when it has none."""

    source: str
    constant: bool

    def render(self, scope: Scope) -> str:
        """The string with each `${...}` replaced by its value as text; raises PolicyRuntimeError."""
        raise NotImplementedError


def compile_expression(source: str, *, where: str) -> Expression:
    """Compile once; raises PolicyError("{where}: ... at column N") for bad syntax, an unknown
    function, or a variable/macro that needs ngrok's cloud."""
    raise NotImplementedError


def compile_template(text: str, *, where: str) -> Template:
    """Compile each `${...}` part of a config string; raises PolicyError like compile_expression."""
    raise NotImplementedError
