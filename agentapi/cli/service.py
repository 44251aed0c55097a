"""`service install|start|stop|restart|uninstall`: the agent as a systemd service.

ngrok's `service` (`agent/cli.mdx` "ngrok service") installs an OS service that "has the same
behavior as if it were invoked from the command line with the command: ngrok start --all", with
the config file given to `install`. Here, on Linux with systemd:
- `install --config FILE [--user] [--unit-dir DIR]` checks FILE as `config check` would, then
  writes UNIT_NAME (mode 0644) that runs this project's Python on `manage.py agent start --all
  --config FILE --log stdout` (the journal takes stdout; no terminal, so no console), with
  AGENT_DATA_DIR as in effect now, restarting on failure. System units go to /etc/systemd/system
  (`WantedBy=multi-user.target`, after the network is online), `--user` ones to
  ~/.config/systemd/user (`WantedBy=default.target`). Then `systemctl [--user] daemon-reload` and
  `enable`. A unit already there is replaced.
- `uninstall` runs `systemctl disable` (when installed) and removes the file, then `daemon-reload`.
- `start|stop|restart` run `systemctl [--user] VERB UNIT_NAME`.
- `--unit-dir DIR` writes or removes the unit there and runs no systemctl at all (tests, packaging).
- A systemctl that fails (or is missing: a container without systemd) is reported with its exit
  status and stderr: an error for start/stop/restart; after install or uninstall, whose file part
  is done, a warning saying what to run.
- `verify_unit` runs `systemd-analyze verify` on a written unit when the binary exists.
Unit file quoting: systemd.service(5) "Command lines": each argument in double quotes with `\\`
and `"` escaped, `%` doubled (specifiers) and `$` doubled (environment expansion); a path setting
(WorkingDirectory) takes no quotes, only `%` doubled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import AgentError

UNIT_NAME = "tunnel-agent.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
ACTIONS = ("install", "start", "stop", "restart", "uninstall")
SYSTEMCTL_TIMEOUT = 60.0  # seconds for one systemctl call


@dataclass(frozen=True)
class ServiceCommand:
    """What `agent service ACTION ...` was asked. `unit_dir` None: systemd's directory for the scope."""

    action: str
    config: Path | None = None
    user: bool = False
    unit_dir: Path | None = None


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT, check=False)


def unit_dir(user: bool) -> Path:
    """Where systemd reads units of this scope: the system's, or the user's (XDG_CONFIG_HOME)."""
    if not user:
        return SYSTEM_UNIT_DIR
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "systemd" / "user"


def quote(argument: str, *, dollar: bool = True) -> str:
    """One ExecStart argument (or, `dollar` False, one Environment= assignment) quoted for systemd:
    see the banner. `$` is expanded only on command lines."""
    if "\n" in argument:
        raise AgentError(f"a value with a line break cannot go in a unit file: {argument!r}")
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped.replace("$", "$$") if dollar else escaped}"'


def _path_setting(path: Path) -> str:
    """A path as a unit setting's value: unquoted (systemd takes no quotes there), `%` doubled."""
    text = str(path)
    if "\n" in text:
        raise AgentError(f"a value with a line break cannot go in a unit file: {text!r}")
    return text.replace("%", "%%")


def unit_text(config: Path, *, user: bool, python: str, manage_py: Path, data_dir: Path) -> str:
    """The unit file for `start --all --config CONFIG` (absolute paths expected)."""
    command = [python, "-u", str(manage_py), "agent", "start", "--all", "--config", str(config), "--log", "stdout"]
    after = "" if user else "After=network-online.target\nWants=network-online.target\n"
    wanted_by = "default.target" if user else "multi-user.target"
    return (
        "[Unit]\n"
        f"Description=Tunnel agent (ngrok-compatible): start --all from {_path_setting(config)}\n"
        f"{after}"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"WorkingDirectory={_path_setting(manage_py.parent)}\n"
        f"Environment={quote('AGENT_DATA_DIR=' + str(data_dir), dollar=False)}\n"
        f"ExecStart={' '.join(quote(arg) for arg in command)}\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        # ngrok 3.32 raises RLIMIT_NOFILE under systemd: one file per tunnel connection.
        "LimitNOFILE=65536\n"
        "\n"
        "[Install]\n"
        f"WantedBy={wanted_by}\n"
    )


def run_service(
    command: ServiceCommand,
    *,
    manage_py: Path,
    data_dir: Path,
    check_config: Callable[[Path], None],
    say: Callable[[str], None],
    warn: Callable[[str], None],
    runner: Runner = _run,
) -> None:
    """Carry out `service ACTION`; see the banner. Raises AgentError."""
    if command.action not in ACTIONS:
        raise AgentError(f"service {command.action}: one of {', '.join(ACTIONS)}")
    directory = command.unit_dir or unit_dir(command.user)
    path = directory / UNIT_NAME
    systemd = command.unit_dir is None
    if command.action == "install":
        if command.config is None:
            raise AgentError("service install needs --config FILE: the file the service starts every tunnel of")
        config = command.config.expanduser().resolve()
        check_config(config)
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(
            unit_text(config, user=command.user, python=sys.executable, manage_py=manage_py, data_dir=data_dir)
        )
        path.chmod(0o644)
        say(f"installed {path} (runs start --all --config {config})")
        if systemd:
            for verb in (["daemon-reload"], ["enable", UNIT_NAME]):
                _systemctl(verb, command.user, runner, warn=warn)
        return
    if command.action == "uninstall":
        if not path.exists():
            raise AgentError(f"service uninstall: {path} is not installed")
        if systemd:
            _systemctl(["disable", UNIT_NAME], command.user, runner, warn=warn)
        path.unlink()
        say(f"removed {path}")
        if systemd:
            _systemctl(["daemon-reload"], command.user, runner, warn=warn)
        return
    if not systemd:
        raise AgentError(f"service {command.action}: --unit-dir only writes unit files; systemctl starts services")
    _systemctl([command.action, UNIT_NAME], command.user, runner, warn=None)
    say(f"{command.action}: {UNIT_NAME} ok")


def _systemctl(verb: list[str], user: bool, runner: Runner, *, warn: Callable[[str], None] | None) -> None:
    """systemctl [--user] VERB...; a failure raises AgentError, or is passed to `warn` when given."""
    argv = ["systemctl", *(["--user"] if user else []), *verb]
    try:
        completed = runner(argv)
        failure = (
            ""
            if completed.returncode == 0
            else f"exit status {completed.returncode}: {(completed.stderr or completed.stdout).strip()}"
        )
    except FileNotFoundError:
        failure = "systemctl not found (is this a systemd system?)"
    except (OSError, subprocess.SubprocessError) as error:
        failure = str(error)
    if not failure:
        return
    message = f"{' '.join(argv)} failed: {failure}"
    if warn is None:
        raise AgentError(message)
    warn(f"{message}; the unit file is in place: run it once systemd is running")


def verify_unit(path: Path, *, user: bool = False) -> subprocess.CompletedProcess[str] | None:
    """`systemd-analyze [--user] verify PATH`, or None when systemd-analyze is not installed."""
    binary = shutil.which("systemd-analyze")
    if binary is None:
        return None
    argv = [binary, *(["--user"] if user else []), "verify", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT, check=False)
