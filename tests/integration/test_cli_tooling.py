"""The config tooling, diagnose, completion and service as an operator runs them: `manage.py agent ...`
in a process of its own, on real files, sockets and shells."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.agent_process import ROOT
from tests.support.upstream import free_port

V2 = """\
authtoken: 4nq9771bPxe8ctg7LKr_2ClH7Y15Zqe4bWLWF9p
server_addr: agent.example.com:443
root_cas: host
web_addr: 127.0.0.1:{web_port}
tunnels:
  web:
    proto: http
    addr: {port}
    auth: "ann:password1"
    bind_tls: true
  db:
    proto: tcp
    addr: 5432
"""


def agent(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "EDITOR", "VISUAL")}
    environ.update({"AGENT_DATA_DIR": str(tmp_path / "data"), **(env or {})})
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )


def test_config_upgrade_output_passes_config_check(tmp_path: Path) -> None:
    config = tmp_path / "ngrok.yml"
    config.write_text(V2.format(web_port=free_port(), port=8080))
    dry = agent(tmp_path, "config", "upgrade", "--dry-run", "--config", str(config))
    assert dry.returncode == 0, dry.stderr
    assert yaml.safe_load(dry.stdout)["agent"]["connect_url"] == "agent.example.com:443"
    upgraded = agent(tmp_path, "config", "upgrade", "--config", str(config))
    assert upgraded.returncode == 0, upgraded.stderr
    assert yaml.safe_load(config.read_text()) == yaml.safe_load(dry.stdout)
    assert (tmp_path / "ngrok.yml.bak").read_text().startswith("authtoken:")
    checked = agent(tmp_path, "config", "check", "--config", str(config))
    assert (checked.returncode, checked.stdout.strip()) == (0, f"Valid configuration file at {config}")


def test_config_edit_runs_editor_on_the_file_then_checks_it(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "ngrok.yml"
    editor = tmp_path / "editor.sh"
    # Keeps what it was given, then writes the file as an operator would.
    editor.write_text(
        '#!/bin/sh\ncp "$1" "$1.seen"\nprintf \'version: "3"\\nagent:\\n  web_addr: 127.0.0.1:4099\\n\' > "$1"\n'
    )
    editor.chmod(0o755)
    edited = agent(tmp_path, "config", "edit", "--config", str(config), env={"EDITOR": str(editor)})
    assert edited.returncode == 0, edited.stderr
    assert (tmp_path / "conf" / "ngrok.yml.seen").read_text() == 'version: "3"\nagent: {}\n'  # made when missing
    assert yaml.safe_load(config.read_text()) == {"version": "3", "agent": {"web_addr": "127.0.0.1:4099"}}
    assert edited.stdout.strip() == f"Valid configuration file at {config}"


def test_config_edit_reports_an_edit_that_breaks_the_file(tmp_path: Path) -> None:
    config = tmp_path / "ngrok.yml"
    config.write_text('version: "3"\nagent:\n  web_addr: 127.0.0.1:4099\n')
    editor = tmp_path / "editor.sh"
    # The file is the last argument: EDITOR may carry its own ("code --wait").
    editor.write_text('#!/bin/sh\nfor file; do :; done\necho "  frobnicate: 1" >> "$file"\n')
    editor.chmod(0o755)
    edited = agent(tmp_path, "config", "edit", "--config", str(config), env={"EDITOR": f"{editor} --wait"})
    assert edited.returncode == 1
    assert f"{config}: unknown configuration key 'frobnicate'" in edited.stderr
    failing = agent(tmp_path, "config", "edit", "--config", str(config), env={"EDITOR": "false"})
    assert (failing.returncode, "config edit: false exited with status 1" in failing.stderr) == (1, True)


def test_diagnose_passes_and_writes_its_report(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as service:
        config = tmp_path / "ngrok.yml"
        web_port = free_port()
        config.write_text(
            V2.format(web_port=web_port, port=service.getsockname()[1]).replace(
                "addr: 5432", f"addr: {service.getsockname()[1]}"
            )
        )
        report = tmp_path / "report.json"
        result = agent(tmp_path, "diagnose", "--config", str(config), "--write-report", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-2:] == ["Successfully diagnosed", f"Report written to {report}"]
    document = json.loads(report.read_text())
    assert document["ok"] is True
    assert [check["name"] for check in document["checks"]] == [
        "localhost",
        "web address",
        "database",
        "upstream web",
        "upstream db",
        "clock",
    ]
    assert document["checks"][1]["detail"] == f"127.0.0.1:{web_port}: 127.0.0.1:{web_port} can be bound"


def test_diagnose_fails_with_exit_status_1_naming_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "ngrok.yml"
    closed = free_port()
    config.write_text(
        f'version: "3"\nendpoints:\n  - name: api\n    url: http://\n    upstream:\n      url: {closed}\n'
    )
    report = tmp_path / "report.json"
    result = agent(tmp_path, "diagnose", "-w", str(report), "--config", str(config))
    assert result.returncode == 1
    assert "Problems found: upstream api" in result.stdout
    assert "diagnose: problems found" in result.stderr
    failed = [check for check in json.loads(report.read_text())["checks"] if not check["ok"]]
    assert [check["name"] for check in failed] == ["upstream api"]
    assert failed[0]["detail"].startswith(f"localhost:{closed} does not answer")


def test_diagnose_finds_a_database_it_cannot_open(tmp_path: Path) -> None:
    result = agent(tmp_path, "diagnose", env={"DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/agent.sqlite3"})
    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if line.strip().startswith("database")]
    assert line.split(None, 2)[1:] == ["FAIL", "cannot write: unable to open database file"]


def test_bash_sources_the_completion_script(tmp_path: Path) -> None:
    printed = agent(tmp_path, "completion", "bash")
    assert printed.returncode == 0, printed.stderr
    sourced = subprocess.run(
        ["bash", "-c", "source /dev/stdin; complete -p ngrok"], input=printed.stdout, capture_output=True, text=True
    )
    assert sourced.stdout.strip() == "complete -o default -F _ngrok_complete ngrok"


def test_service_install_writes_a_unit_systemd_accepts_and_uninstall_removes_it(tmp_path: Path) -> None:
    config = tmp_path / "ngrok.yml"
    config.write_text(f'version: "3"\nagent:\n  web_addr: 127.0.0.1:{free_port()}\n')
    units = tmp_path / "units"
    installed = agent(tmp_path, "service", "install", "--config", str(config), "--unit-dir", str(units))
    assert installed.returncode == 0, installed.stderr
    unit = units / "tunnel-agent.service"
    assert f'"start" "--all" "--config" "{config}"' in unit.read_text()
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
        assert verify.returncode == 0, verify.stderr
    else:  # no systemd-analyze here: the unit still names this project's Python and manage.py
        assert f'ExecStart="{sys.executable}" "-u" "{ROOT / "manage.py"}"' in unit.read_text()
    removed = agent(tmp_path, "service", "uninstall", "--unit-dir", str(units))
    assert removed.returncode == 0 and not unit.exists()


def test_service_start_reports_a_systemctl_that_fails(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text(
        '#!/bin/sh\necho "Failed to connect to bus: No such file or directory" >&2\nexit 1\n'
    )
    (fake / "systemctl").chmod(0o755)
    result = agent(tmp_path, "service", "start", env={"PATH": f"{fake}:/usr/bin:/bin"})
    assert result.returncode == 1
    assert (
        "systemctl start tunnel-agent.service failed: exit status 1: Failed to connect to bus: No such file or directory"
        in result.stderr
    )
