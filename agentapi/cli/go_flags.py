"""ngrok's flag syntax (Go's pflag, through cobra) on top of argparse.

Rules (pflag's, `github.com/spf13/pflag` `bool.go`, `string_slice.go`; strconv.ParseBool):
- A bool flag alone means true (`--inspect`); a value is given only with `=`:
  `--inspect=false`, `--pooling-enabled=true`. The words are ParseBool's: 1, t, T, TRUE, true,
  True, 0, f, F, FALSE, false, False. Anything else (`--inspect=maybe`, `--inspect=`) is an error.
  `--inspect 8080` is the flag and then the address, never the flag with the value 8080.
- Ours, kept from this agent's older command line: `--inspect false` and `--inspect true` (the
  words exactly) still give the value, since no address is spelled `true` or `false`.
- String-slice flags (`--cidr-allow`, `--config`) repeat and each value is split on commas as CSV
  (quotes keep a comma inside one item): `split_list`.
- `--` ends the flags: nothing after it is rewritten.

argparse alone would take the next word as the value of an optional-valued flag, so
`GoFlagParser` (the class of every subcommand's parser) rewrites a lone bool flag to
`--flag=true` before argparse sees it. Bool flags are declared with `action=GoBool` and store a
Python bool (None when not given, so "given false" and "not given" differ).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from typing import Any

from django.core.management.base import CommandParser

TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# The space-separated value this agent's older command line took (`--inspect false`).
_SPACED_WORDS = frozenset({"true", "false"})


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool. Raises ValueError for any other word (the empty string too)."""
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"invalid boolean value {text!r}: true or false")


class GoBool(argparse.Action):
    """A Go bool flag: `--flag` (true) or `--flag=VALUE` (ParseBool). Stores True or False."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("default", None)
        super().__init__(option_strings, dest, nargs="?", const="true", metavar="true|false", **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        text = values if isinstance(values, str) else "true"
        try:
            setattr(namespace, self.dest, parse_bool(text))
        except ValueError:
            raise argparse.ArgumentError(self, f"invalid boolean value {text!r}: true or false") from None


def split_list(values: Sequence[str] | None) -> list[str]:
    """Repeated string-slice flag values, each split on commas as CSV; blanks dropped, items stripped."""
    items: list[str] = []
    for value in values or []:
        items.extend(item.strip() for item in next(csv.reader([value])) if item.strip())
    return items


def bool_flag_names(parser: argparse.ArgumentParser) -> frozenset[str]:
    """The option strings of the parser's own GoBool flags (not its subcommands')."""
    return frozenset(name for action in parser._actions if isinstance(action, GoBool) for name in action.option_strings)


def rewrite_bool_flags(args: Sequence[str], names: frozenset[str]) -> list[str]:
    """`args` with each lone bool flag given its value explicitly, so argparse never takes the next word.

    `--inspect 8080` -> `--inspect=true 8080`; `--inspect false` -> `--inspect=false` (ours, see
    the banner); `--inspect=false` and everything after `--` unchanged.
    """
    out: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            out.extend(args[index:])
            break
        if arg in names:
            following = args[index + 1] if index + 1 < len(args) else None
            if following in _SPACED_WORDS:
                out.append(f"{arg}={following}")
                index += 2
                continue
            out.append(f"{arg}=true")
        else:
            out.append(arg)
        index += 1
    return out


class GoFlagParser(CommandParser):
    """A subcommand's parser that reads its bool flags the way ngrok (pflag) does; see the banner."""

    def parse_known_args(  # type: ignore[override]  # argparse's overloads; the plain signature is what is called
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is not None:
            args = rewrite_bool_flags(list(args), bool_flag_names(self))
        return super().parse_known_args(args, namespace)
