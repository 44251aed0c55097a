"""`service install|start|stop|restart|uninstall`: the systemd unit written, checked and managed."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from agentapi.cli.errors import AgentError
from agentapi.cli.service import UNIT_NAME, ServiceCommand, quote, run_service, unit_text, verify_unit

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


class Systemctl:
    """Stands in for systemctl: records each call and answers with `returncode`."""

    def __init__(self, returncode: int = 0, stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.returncode, self.stderr = returncode, stderr

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(list(argv), self.returncode, "", self.stderr)


def _must_exist(path: Path) -> None:
    """Stands in for `config check`."""
    if not path.exists():
        raise AgentError(f"{path} missing")


def service(command: ServiceCommand, systemctl: Systemctl | None = None) -> tuple[list[str], list[str]]:
    said: list[str] = []
    warned: list[str] = []
    run_service(
        command,
        manage_py=MANAGE_PY,
        data_dir=Path("/var/lib/agent"),
        check_config=_must_exist,
        say=said.append,
        warn=warned.append,
        runner=systemctl or Systemctl(),
    )
    return said, warned


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ngrok.yml"
    path.write_text('version: "3"\nagent: {}\n')
    return path


def test_the_unit_runs_start_all_with_the_config_and_logs_to_the_journal(config: Path) -> None:
    text = unit_text(config, user=False, python="/opt/venv/bin/python", manage_py=MANAGE_PY, data_dir=Path("/d"))
    [exec_start] = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == [
        "/opt/venv/bin/python",
        "-u",
        str(MANAGE_PY),
        "agent",
        "start",
        "--all",
        "--config",
        str(config),
        "--log",
        "stdout",
    ]
    assert 'Environment="AGENT_DATA_DIR=/d"' in text
    assert "WantedBy=multi-user.target" in text and "After=network-online.target" in text
    assert "Restart=on-failure" in text


def test_a_user_unit_is_wanted_by_the_users_default_target(config: Path) -> None:
    text = unit_text(config, user=True, python="/p", manage_py=MANAGE_PY, data_dir=Path("/d"))
    assert "WantedBy=default.target" in text
    assert "network-online.target" not in text  # a system target: the user manager has none


def test_systemd_specifiers_and_variables_in_paths_are_escaped() -> None:
    assert quote('/srv/100% "$HOME"\\x') == '"/srv/100%% \\"$$HOME\\"\\\\x"'
    assert quote("A=$x%", dollar=False) == '"A=$x%%"'
    with pytest.raises(AgentError, match="line break"):
        quote("a\nExecStartPre=/bin/evil")


def test_install_writes_the_unit_and_uninstall_removes_it(config: Path, tmp_path: Path) -> None:
    units = tmp_path / "units"
    said, warned = service(ServiceCommand("install", config=config, unit_dir=units))
    unit = units / UNIT_NAME
    assert unit.stat().st_mode & 0o777 == 0o644
    assert f'"--config" "{config}"' in unit.read_text()
    assert said == [f"installed {unit} (runs start --all --config {config})"]
    assert warned == []
    service(ServiceCommand("uninstall", unit_dir=units))
    assert not unit.exists()


def test_the_written_unit_passes_systemd_analyze_verify(config: Path, tmp_path: Path) -> None:
    units = tmp_path / "units"
    service(ServiceCommand("install", config=config, unit_dir=units))
    verified = verify_unit(units / UNIT_NAME)
    if verified is None:
        # No systemd-analyze here: the unit's sections and settings are still what systemd reads.
        text = (units / UNIT_NAME).read_text()
        assert [line for line in text.splitlines() if line.startswith("[")] == ["[Unit]", "[Service]", "[Install]"]
        assert all("=" in line for line in text.splitlines() if line and not line.startswith("["))
        return
    assert verified.returncode == 0, verified.stderr
    assert "bad" not in verified.stderr.lower()


def test_install_calls_systemctl_to_reload_and_enable(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agentapi.cli.service.SYSTEM_UNIT_DIR", tmp_path / "system")
    systemctl = Systemctl()
    service(ServiceCommand("install", config=config), systemctl)
    assert systemctl.calls == [["systemctl", "daemon-reload"], ["systemctl", "enable", UNIT_NAME]]
    assert (tmp_path / "system" / UNIT_NAME).exists()


def test_a_failing_systemctl_after_install_is_a_warning_saying_what_to_run(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agentapi.cli.service.SYSTEM_UNIT_DIR", tmp_path / "system")
    _, warned = service(
        ServiceCommand("install", config=config), Systemctl(1, "System has not been booted with systemd")
    )
    assert warned[0] == (
        "systemctl daemon-reload failed: exit status 1: System has not been booted with systemd; "
        "the unit file is in place: run it once systemd is running"
    )


@pytest.mark.parametrize("action", ["start", "stop", "restart"])
def test_start_stop_restart_run_systemctl_and_report_its_failure(action: str) -> None:
    systemctl = Systemctl()
    said, _ = service(ServiceCommand(action, user=True), systemctl)
    assert systemctl.calls == [["systemctl", "--user", action, UNIT_NAME]]
    assert said == [f"{action}: {UNIT_NAME} ok"]
    with pytest.raises(AgentError) as caught:
        service(ServiceCommand(action), Systemctl(5, f"Unit {UNIT_NAME} not found."))
    assert str(caught.value) == f"systemctl {action} {UNIT_NAME} failed: exit status 5: Unit {UNIT_NAME} not found."


def test_a_missing_systemctl_is_said_plainly() -> None:
    def missing(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(argv[0])

    with pytest.raises(
        AgentError, match=r"systemctl start .* failed: systemctl not found \(is this a systemd system\?\)"
    ):
        run_service(
            ServiceCommand("start"),
            manage_py=MANAGE_PY,
            data_dir=Path("/d"),
            check_config=lambda path: None,
            say=print,
            warn=print,
            runner=missing,
        )


def test_install_needs_a_config_that_loads(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="service install needs --config FILE"):
        service(ServiceCommand("install", unit_dir=tmp_path))
    with pytest.raises(AgentError, match="missing"):
        service(ServiceCommand("install", config=tmp_path / "nope.yml", unit_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_uninstall_of_a_unit_that_is_not_there_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="is not installed"):
        service(ServiceCommand("uninstall", unit_dir=tmp_path))
