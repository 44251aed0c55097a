"""`--log PATH` / `log: PATH`: the agent's log lines in a file (ngrok's `log` key, `agent/config/v3.mdx`).

Each test runs the real command (`manage.py agent http PORT --log FILE`), reads the file while the
agent runs and after it stops; rotation is the system's (logrotate's copytruncate, docs/console.md).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from agentapi.logfmt import LogTargetError, open_log_target
from tests.support.agent_process import ROOT
from tests.support.upstream import Upstream

LOGFMT_LINE = re.compile(r"t=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} lvl=(dbug|info|warn|eror|crit) msg=")


class LoggingAgent:
    """`manage.py agent ARGS` with stdout and stderr piped; ready when its log file says so."""

    def __init__(self, data_dir: Path, log_file: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update({"AGENT_DATA_DIR": str(data_dir), "AGENT_HEARTBEAT_SECONDS": "0.5"})
        command = [sys.executable, str(ROOT / "manage.py"), "agent", *args, "--web-addr", "127.0.0.1:0"]
        self.log_file = log_file
        self.offset = log_file.stat().st_size if log_file.exists() else 0  # earlier runs' lines
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def wait_ready(self, timeout: float = 30) -> str:
        """The text this run logged, once it holds `agent ready` (bounded poll)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_file.read_bytes()[self.offset :].decode() if self.log_file.exists() else ""
            if 'msg="agent ready"' in text or '"msg": "agent ready"' in text:
                return text
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out, err = self.proc.communicate(timeout=10)
                pytest.fail(f"the agent did not get ready; log:\n{text}\nstdout:\n{out}\nstderr:\n{err}")
            time.sleep(0.05)

    def wait(self) -> tuple[int, str, str]:
        """Wait for the agent to exit by itself: exit status, stdout, stderr."""
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err

    def stop(self) -> tuple[int, str, str]:
        """SIGINT (Ctrl-C) and wait: exit status, stdout, stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err


def message(line: str) -> str:
    found = re.search(r'msg=("[^"]*"|\S+)', line)
    assert found is not None, line
    return found.group(1).strip('"')


@pytest.fixture
def agents() -> Iterator[list[LoggingAgent]]:
    started: list[LoggingAgent] = []
    yield started
    for agent in started:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait()


def start(agents: list[LoggingAgent], tmp_path: Path, log_file: Path, *args: str) -> LoggingAgent:
    agent = LoggingAgent(tmp_path / "data", log_file, *args)
    agents.append(agent)
    return agent


def test_log_path_writes_logfmt_lines_to_the_file_and_nothing_to_stdout(
    agents: list[LoggingAgent], tmp_path: Path, upstream: Upstream
) -> None:
    log_file = tmp_path / "agent.log"
    agent = start(agents, tmp_path, log_file, "http", str(upstream.port), "--log", str(log_file))
    text = agent.wait_ready()
    url = re.search(r'msg="started tunnel" obj=tunnels name=command_line addr=\S+ url=(\S+)', text)
    assert url is not None, text
    assert requests.get(url.group(1) + "/status/204", timeout=10).status_code == 204
    status, out, err = agent.stop()
    assert status == 0 and out == "" and err == ""
    lines = log_file.read_text().splitlines()
    assert all(LOGFMT_LINE.match(line) for line in lines), lines
    messages = [message(line) for line in lines]
    for expected in ("starting web service", "started tunnel", "agent ready", "received stop request", "agent stopped"):
        assert expected in messages


def test_log_format_json_writes_one_json_object_per_line(
    agents: list[LoggingAgent], tmp_path: Path, upstream: Upstream
) -> None:
    log_file = tmp_path / "agent.json.log"
    agent = start(
        agents, tmp_path, log_file, "http", str(upstream.port), "--log", str(log_file), "--log-format", "json"
    )
    agent.wait_ready()
    assert agent.stop()[0] == 0
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert records and all({"t", "lvl", "msg"} <= record.keys() for record in records)
    [started] = [record for record in records if record["msg"] == "started tunnel"]
    assert started["obj"] == "tunnels" and started["url"].startswith(("http://", "https://"))
    assert records[-1]["msg"] == "agent stopped"


def test_the_config_files_log_keys_write_to_their_path(
    agents: list[LoggingAgent], tmp_path: Path, upstream: Upstream
) -> None:
    log_file = tmp_path / "from-config.log"
    config = tmp_path / "ngrok.yml"
    config.write_text(f'version: "3"\nagent:\n  log: {log_file}\n  log_format: json\n  log_level: info\n')
    agent = start(agents, tmp_path, log_file, "http", str(upstream.port), "--config", str(config))
    agent.wait_ready()
    assert agent.stop()[0] == 0
    assert json.loads(log_file.read_text().splitlines()[0])["msg"] == "starting web service"


def test_each_run_appends_to_the_file_and_never_truncates_it(
    agents: list[LoggingAgent], tmp_path: Path, upstream: Upstream
) -> None:
    log_file = tmp_path / "agent.log"
    log_file.write_text("t=2026-01-01T00:00:00+0000 lvl=info msg=earlier obj=test\n")
    for _ in range(2):
        agent = start(agents, tmp_path, log_file, "http", str(upstream.port), "--log", str(log_file))
        agent.wait_ready()
        assert agent.stop()[0] == 0
    lines = log_file.read_text().splitlines()
    assert lines[0].endswith("msg=earlier obj=test")
    assert sum('msg="agent stopped"' in line for line in lines) == 2


def test_after_logrotates_copytruncate_the_next_lines_start_the_file_again(
    agents: list[LoggingAgent], tmp_path: Path, upstream: Upstream
) -> None:
    log_file = tmp_path / "agent.log"
    agent = start(agents, tmp_path, log_file, "http", str(upstream.port), "--log", str(log_file))
    before = agent.wait_ready()
    # What copytruncate does: copy the file aside, then cut it to nothing while the agent runs.
    (tmp_path / "agent.log.1").write_text(before)
    with open(log_file, "r+") as handle:
        handle.truncate(0)
    assert agent.stop()[0] == 0
    after = log_file.read_bytes()
    # Appending writes land at the new end: no hole of NUL bytes where the old lines were.
    assert after.startswith(b"t=") and b"\0" not in after
    assert b'msg="received stop request"' in after and b"starting web service" not in after


def test_a_log_file_that_cannot_be_opened_is_one_start_up_error_line(
    agents: list[LoggingAgent], tmp_path: Path, upstream: Upstream
) -> None:
    missing = tmp_path / "no-such-dir" / "agent.log"
    agent = start(agents, tmp_path, missing, "http", str(upstream.port), "--log", str(missing))
    status, out, err = agent.wait()
    assert status == 1
    assert [line for line in err.splitlines() if line] == [
        f"ERROR:  cannot open log file {missing}: no such file or directory"
    ]
    assert "Traceback" not in out + err


def test_a_file_log_writes_lines_at_and_above_its_level_only(tmp_path: Path) -> None:
    log = open_log_target(str(tmp_path / "agent.log"), "logfmt", "warn")
    log.line("info", "started tunnel", obj="tunnels")
    log.line("warn", "upstream slow", obj="tunnels")
    log.line("eror", "agent failed to start", obj="agent")
    log.close()
    written = (tmp_path / "agent.log").read_text()
    assert "started tunnel" not in written
    assert 'lvl=warn msg="upstream slow"' in written and "lvl=eror" in written


def test_an_unknown_log_format_or_level_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LogTargetError, match=r"invalid log format 'xml': one of logfmt, json, term expected"):
        open_log_target(str(tmp_path / "a.log"), "xml")
    with pytest.raises(LogTargetError, match=r"invalid log level 'loud'"):
        open_log_target(str(tmp_path / "a.log"), "logfmt", "loud")
    assert not (tmp_path / "a.log").exists()


def test_a_directory_is_no_log_file(tmp_path: Path) -> None:
    with pytest.raises(LogTargetError, match=rf"^cannot open log file {re.escape(str(tmp_path))}: is a directory$"):
        open_log_target(str(tmp_path))
