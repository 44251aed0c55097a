"""`completion [bash|zsh|fish]`: shell completion scripts made from the command's own argparse parser.

ngrok's `completion` (`agent/cli.mdx`) prints code for `. <(ngrok completion)`. Here the words come
from the parser itself, so a new flag completes without touching this module:
- the first word completes to the subcommands and the root's flags;
- after a subcommand, its flags (hidden ones, ngrok's deprecated flags, are left out as in
  `--help`) and its own words (the choices of its positionals, e.g. `service install`, or the
  `extra_words` given for `config`);
- nothing else (file names are the shell's default once no word matches, in bash and zsh).
The script completes the command name `prog` (default `ngrok`: bin/ngrok is how clients start this
agent). Every word is a flag or a subcommand name made of `[A-Za-z0-9-]`, so no quoting is needed;
any other word is refused (ValueError) rather than written into a shell script.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SHELLS = ("bash", "zsh", "fish")
_WORD = re.compile(r"-{0,2}[A-Za-z0-9][A-Za-z0-9-]*")
_PROG = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Node:
    """One command's completions: its flags and the words that may follow it."""

    flags: tuple[str, ...]
    words: tuple[str, ...]


def command_tree(parser: argparse.ArgumentParser, extra_words: Mapping[str, Sequence[str]]) -> dict[str, Node]:
    """ "" (the root) and each subcommand name -> its Node."""
    tree = {"": Node(_flags(parser), tuple(_subparsers(parser)))}
    for name, sub in _subparsers(parser).items():
        words = [choice for action in sub._actions if not action.option_strings for choice in (action.choices or ())]
        tree[name] = Node(_flags(sub), tuple(dict.fromkeys([*words, *extra_words.get(name, ())])))
    return tree


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    flags = [
        option
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for option in action.option_strings
        if option.startswith("--")
    ]
    return tuple(dict.fromkeys(flags))


def script(shell: str, tree: Mapping[str, Node], prog: str = "ngrok") -> str:
    """The completion script for `shell` (bash, zsh or fish). Raises ValueError."""
    if not _PROG.fullmatch(prog):
        raise ValueError(f"invalid program name {prog!r}")
    for node in tree.values():
        for word in (*node.flags, *node.words):
            if not _WORD.fullmatch(word):
                raise ValueError(f"cannot complete {word!r}: not a flag or subcommand name")
    if shell == "bash":
        return _bash(tree, prog)
    if shell == "zsh":
        return _zsh(tree, prog)
    if shell == "fish":
        return _fish(tree, prog)
    raise ValueError(f"unknown shell {shell!r}: {', '.join(SHELLS)}")


def _label(name: str) -> str:
    """A case label: the subcommand, or "" for the first word."""
    return name or '""'


def _function_name(prog: str) -> str:
    return "_" + re.sub(r"[^A-Za-z0-9_]", "_", prog) + "_complete"


def _bash(tree: Mapping[str, Node], prog: str) -> str:
    cases = "\n".join(
        f'        {_label(name)}) words="{" ".join((*node.words, *node.flags))}" ;;' for name, node in tree.items()
    )
    function = _function_name(prog)
    return f"""# bash completion for {prog} (eval "$({prog} completion bash)")
{function}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" command="" words="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            -*) ;;
            *) command="${{COMP_WORDS[i]}}"; break ;;
        esac
    done
    case "$command" in
{cases}
        *) words="" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F {function} {prog}
"""


def _zsh(tree: Mapping[str, Node], prog: str) -> str:
    cases = "\n".join(
        f"        {_label(name)}) candidates=({' '.join((*node.words, *node.flags))}) ;;" for name, node in tree.items()
    )
    function = _function_name(prog)
    return f"""#compdef {prog}
# zsh completion for {prog} (eval "$({prog} completion zsh)")
{function}() {{
    local command="" i
    local -a candidates
    for ((i = 2; i < CURRENT; i++)); do
        if [[ $words[i] != -* ]]; then command=$words[i]; break; fi
    done
    case "$command" in
{cases}
        *) candidates=() ;;
    esac
    compadd -- $candidates
}}
compdef {function} {prog}
"""


def _fish(tree: Mapping[str, Node], prog: str) -> str:
    subcommands = " ".join(tree[""].words)
    lines = [f"# fish completion for {prog} ({prog} completion fish | source)", f"complete -c {prog} -f"]
    lines.append(f'complete -c {prog} -n "not __fish_seen_subcommand_from {subcommands}" -a "{subcommands}"')
    for flag in tree[""].flags:
        lines.append(f'complete -c {prog} -n "not __fish_seen_subcommand_from {subcommands}" -l {flag[2:]}')
    for name, node in tree.items():
        if not name:
            continue
        condition = f"__fish_seen_subcommand_from {name}"
        if node.words:
            lines.append(f'complete -c {prog} -n "{condition}" -a "{" ".join(node.words)}"')
        lines.extend(f'complete -c {prog} -n "{condition}" -l {flag[2:]}' for flag in node.flags)
    return "\n".join(lines) + "\n"
