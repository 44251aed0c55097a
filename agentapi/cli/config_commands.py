"""`config ...` and `authtoken` (`agent/cli.mdx` "ngrok config"): the config file's tooling.

    config check                      every key and tunnel checked as a start would
    config upgrade [2|3] [--dry-run] [--relocate]   v1/v2 -> v3 (config_upgrade.py), with a backup
    config edit                       $EDITOR on the file, then checked
    config add-authtoken TOKEN | add-api-key KEY    accepted, not written: no account is needed
    authtoken TOKEN                   ngrok 2's spelling (npm `ngrok`)
    config add-connect-url | add-server-addr URL    refused: custom agent ingress is ngrok's cloud

Rules:
- The file is the first `--config`, else ngrok's default (`~/.config/ngrok/ngrok.yml`); `check`
  reads every `--config` merged, as a start does.
- pyngrok reads "Authtoken saved" / "API key saved" on stdout; npm `ngrok` waits for any stdout.
- `upgrade` prints the upgraded file (stdout) and what changed (stderr). Without `--dry-run` the
  original is kept beside it as `NAME.bak` (`.bak.1`, ... when taken) and the new text is written
  whole under another name, checked like `config check`, then moved into place: a bad result never
  replaces the file. `--relocate` then moves it to the default location.
- `edit`: `$EDITOR` (then `$VISUAL`; else nano or vi when stdin is a terminal), split like a shell
  word list, run on the file (made with `version: "3"` when missing); a non-zero exit of the
  editor is an error; the edited file is then checked.
Every failure is an AgentError with one line.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

from agentapi.config_file import ConfigFileError, load_config

from .config_upgrade import LATEST, UpgradeError, upgrade
from .errors import AgentError
from .global_flags import config_paths
from .tunnels import check_definitions, default_config, default_config_path

SUBCOMMANDS = ("add-api-key", "add-authtoken", "add-connect-url", "add-server-addr", "check", "edit", "upgrade")
NEW_FILE = 'version: "3"\nagent: {}\n'


class Writer(Protocol):
    """Where a command writes its output: a text stream, or Django's OutputWrapper."""

    def write(self, text: str, /) -> object: ...


def run_config_command(action: str, options: dict[str, Any], out: Writer, err: Writer) -> None:
    """Run `config WHAT...` (or `authtoken TOKEN`). Writes to `out`/`err`. Raises AgentError."""
    what = ["add-authtoken", options["token"]] if action == "authtoken" else list(options.get("what") or [])
    sub, args = (what[0], what[1:]) if what else ("", [])
    if sub in ("add-authtoken", "add-api-key") and len(args) == 1:
        thing = "Authtoken" if sub == "add-authtoken" else "API key"
        out.write(f"{thing} saved to configuration file (ignored: this agent needs no account).\n")
    elif sub in ("add-connect-url", "add-server-addr") and len(args) == 1:
        raise AgentError(
            f"config {sub}: custom agent ingress is part of ngrok's cloud; this agent connects to no ngrok "
            "server (connect_url and server_addr in a config file are accepted and ignored)"
        )
    elif sub == "check" and not args:
        paths = config_paths(options) or default_config()
        check_files(paths)
        out.write(f"Valid configuration file at {', '.join(str(p) for p in paths) or '(none: defaults)'}\n")
    elif sub == "upgrade" and len(args) <= 1:
        upgrade_file(
            the_file(options),
            _version_argument(args),
            dry_run=bool(options.get("dry_run")),
            relocate=bool(options.get("relocate")),
            out=out,
            err=err,
        )
    elif sub == "edit" and not args:
        path = the_file(options)
        edit_file(path, os.environ)
        check_files([path])
        out.write(f"Valid configuration file at {path}\n")
    else:
        raise AgentError(
            f"unsupported: {action} {' '.join(what)}".rstrip()
            + " (this agent knows: config add-authtoken TOKEN, config add-api-key KEY, config check,"
            " config upgrade [VERSION] [--dry-run] [--relocate], config edit)"
        )


def the_file(options: dict[str, Any]) -> Path:
    """The one file a config subcommand works on: the first --config, else ngrok's default."""
    paths = config_paths(options)
    return paths[0] if paths else default_config_path()


def check_files(paths: list[Path]) -> None:
    """`config check`: the files load and every tunnel and endpoint starts. Raises AgentError."""
    try:
        check_definitions(load_config(paths))
    except ConfigFileError as error:
        raise AgentError(str(error)) from None


def _version_argument(args: list[str]) -> int:
    if not args:
        return LATEST
    if args[0].strip() not in ("2", "3"):
        raise AgentError(f"config upgrade {args[0]}: the version to upgrade to is 2 or 3")
    return int(args[0])


def upgrade_file(path: Path, version: int, *, dry_run: bool, relocate: bool, out: Writer, err: Writer) -> None:
    """`config upgrade`: see the banner. Raises AgentError."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise AgentError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise AgentError(f"cannot read config file {path}: {error}") from None
    try:
        result = upgrade(document, version)
    except UpgradeError as error:
        raise AgentError(f"{path}: {error}") from None
    text = yaml.safe_dump(result.document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    out.write(text)
    if not result.changes:
        err.write(f"{path} is already version {result.from_version}: nothing to change\n")
        return
    for change in result.changes:
        err.write(f"  {change}\n")
    if dry_run:
        err.write(f"dry run: {path} not changed (version {result.from_version} -> {result.to_version})\n")
        return
    staged = path.with_name(f".{path.name}.upgrade")
    staged.write_text(text, encoding="utf-8")
    try:
        check_files([staged])
    except AgentError as error:
        staged.unlink()
        raise AgentError(f"the upgraded file would not load, {path} not changed: {error}") from None
    backup = _backup_path(path)
    shutil.copy2(path, backup)
    os.replace(staged, path)
    err.write(f"upgraded {path} to version {result.to_version}; the original is kept in {backup}\n")
    if relocate:
        target = default_config_path()
        if target.resolve() != path.resolve():
            if target.exists():
                raise AgentError(f"--relocate: {target} already exists; {path} left where it is")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target)
            err.write(f"moved {path} to {target}\n")


def _backup_path(path: Path) -> Path:
    candidate = path.with_name(path.name + ".bak")
    number = 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.bak.{number}")
    return candidate


def editor_command(environ: Mapping[str, str], *, interactive: bool) -> list[str]:
    """The editor to run, as argv: $EDITOR, $VISUAL, else nano or vi on a terminal. Raises AgentError."""
    chosen = environ.get("EDITOR") or environ.get("VISUAL")
    if chosen:
        return shlex.split(chosen)
    if interactive:
        for fallback in ("nano", "vi"):
            if shutil.which(fallback, path=environ.get("PATH")):
                return [fallback]
    raise AgentError("config edit: set EDITOR to the editor to run (no terminal, or neither nano nor vi found)")


def edit_file(path: Path, environ: Mapping[str, str]) -> None:
    """`config edit`: run the editor on `path` (created when missing). Raises AgentError."""
    command = editor_command(environ, interactive=sys.stdin.isatty())
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(NEW_FILE, encoding="utf-8")
    try:
        completed = subprocess.run([*command, str(path)], check=False, env=dict(environ))
    except OSError as error:
        raise AgentError(f"config edit: cannot run {command[0]}: {error.strerror or error}") from None
    if completed.returncode != 0:
        raise AgentError(f"config edit: {command[0]} exited with status {completed.returncode}")
