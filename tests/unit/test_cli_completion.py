"""`completion bash|zsh|fish`: scripts made from the parser, which the shells accept and which complete
the subcommands and each one's flags."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from agentapi.cli import completion
from agentapi.cli.config_commands import SUBCOMMANDS
from agentapi.management.commands.agent import Command


@pytest.fixture(scope="module")
def tree() -> dict[str, completion.Node]:
    return completion.command_tree(Command().create_parser("manage.py", "agent"), {"config": SUBCOMMANDS})


def complete_in_bash(script: str, line: str) -> list[str]:
    """What bash offers for `line` (the last word being completed), with the script sourced."""
    words = line.split(" ")
    program = (
        f"{script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_ngrok_complete; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    completed = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True, timeout=10)
    return completed.stdout.split()


def test_the_bash_script_parses() -> None:
    script = completion.script("bash", completion.command_tree(Command().create_parser("m", "agent"), {}))
    assert subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True, timeout=10).returncode == 0


def test_bash_completes_subcommands_then_each_ones_flags(tree: dict[str, completion.Node]) -> None:
    script = completion.script("bash", tree)
    assert complete_in_bash(script, "ngrok se") == ["service"]
    assert {"http", "tcp", "tls", "start", "config", "diagnose", "service", "completion"} <= set(
        complete_in_bash(script, "ngrok ")
    )
    assert complete_in_bash(script, "ngrok http 8080 --ins") == ["--inspect"]
    assert complete_in_bash(script, "ngrok tls 443 --cr") == ["--crt"]
    assert complete_in_bash(script, "ngrok config up") == ["upgrade"]
    assert complete_in_bash(script, "ngrok service ins") == ["install"]


def test_deprecated_flags_are_left_out_as_in_help(tree: dict[str, completion.Node]) -> None:
    assert "--basic-auth" not in tree["http"].flags and "--traffic-policy-file" in tree["http"].flags
    assert "--cidr-allow" in tree["tcp"].flags  # deprecated on http only


def test_zsh_and_fish_scripts_name_every_subcommand_and_flag(tree: dict[str, completion.Node]) -> None:
    zsh, fish = completion.script("zsh", tree), completion.script("fish", tree)
    assert zsh.startswith("#compdef ngrok\n") and "compdef _ngrok_complete ngrok" in zsh
    assert "        http) candidates=(" in zsh
    assert 'complete -c ngrok -n "__fish_seen_subcommand_from http" -l traffic-policy-file' in fish
    assert 'complete -c ngrok -n "__fish_seen_subcommand_from config" -a "add-api-key add-authtoken' in fish
    for shell, binary in (("zsh", "zsh"), ("fish", "fish")):
        if shutil.which(binary):
            check = [binary, "-n"] if binary == "zsh" else [binary, "--no-execute"]
            assert subprocess.run(check, input=completion.script(shell, tree), text=True, timeout=10).returncode == 0


def test_the_program_name_may_be_chosen_but_not_made_of_shell_syntax(tree: dict[str, completion.Node]) -> None:
    assert "complete -o default -F _agent_complete agent" in completion.script("bash", tree, prog="agent")
    with pytest.raises(ValueError, match="invalid program name"):
        completion.script("bash", tree, prog="x; rm -rf /")
    with pytest.raises(ValueError, match="not a flag or subcommand name"):
        completion.script("bash", {"": completion.Node(("--a$(id)",), ())})
