"""The console in a real terminal: `manage.py agent http PORT` inside tmux, as a person runs it.

tmux gives the agent a real pseudo-terminal of a fixed size (a detached session on a socket of the
test's own), `capture-pane` reads what the screen shows, `resize-window` resizes it and `send-keys
C-c` is the person's Ctrl-C. Every wait polls the screen, bounded.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.support.agent_process import ROOT
from tests.support.upstream import Upstream

ZONE = "Europe/Paris"  # not the machine's zone: the console must show the agent's local time
_FORWARDING = re.compile(r"Forwarding\s+(\S+)")


def row_pattern(path: str) -> str:
    """A request's line: `HH:MM:SS.mmm ZONE GET  /path  200 OK` (the time's parts as groups)."""
    return r"(\d\d):(\d\d):(\d\d)\.(\d{3}) (\S+) GET\s+" + re.escape(path) + r"\s+200 OK"


class Tmux:
    """One detached tmux session on a server of its own (`-L`), running one command."""

    def __init__(self, tmp_path: Path, width: int, height: int) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is needed for the console tests (apt-get install tmux)")
        self.socket = f"agent-console-{uuid.uuid4().hex[:8]}"
        self.width, self.height = width, height
        self.status_file = tmp_path / "exit-status"

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        # Each agent its own SQLite and in-memory layer, also where CI exports DATABASE_URL/REDIS_URL
        # (the tmux server passes the test's environment on), as tests/support/agent_process does.
        unset = ["-u", "DATABASE_URL", "-u", "REDIS_URL"]
        parts = ["env", *unset, *(f"{k}={v}" for k, v in env.items()), *command]
        shown = " ".join(shlex.quote(part) for part in parts)
        # The exit status goes to a file; the pane stays open meanwhile so its screen can be read.
        script = f"cd {shlex.quote(str(ROOT))} && {shown}; echo $? > {shlex.quote(str(self.status_file))}; sleep 60"
        self.tmux("new-session", "-d", "-s", "agent", "-x", str(self.width), "-y", str(self.height), script)

    def screen(self) -> list[str]:
        return self.tmux("capture-pane", "-p", "-t", "agent").split("\n")[: self.height]

    def wait_for(self, seen: Callable[[list[str]], bool], what: str, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if seen(lines):
                return lines
            if time.monotonic() > deadline:
                pytest.fail(f"the console never showed {what}; the screen:\n" + "\n".join(lines))
            time.sleep(0.05)

    def exit_status(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while not self.status_file.exists() or not self.status_file.read_text().strip():
            if time.monotonic() > deadline:
                pytest.fail("the agent did not exit; the screen:\n" + "\n".join(self.screen()))
            time.sleep(0.05)
        return int(self.status_file.read_text())

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Tmux]:
    tmux = Tmux(tmp_path, 100, 30)
    yield tmux
    tmux.close()


def agent_env(data_dir: Path) -> dict[str, str]:
    return {
        "AGENT_DATA_DIR": str(data_dir),
        "AGENT_HEARTBEAT_SECONDS": "0.5",
        "TZ": ZONE,
        "TERM": "xterm-256color",
        # Exported by some shells and stale after the first resize: the console asks the terminal.
        "COLUMNS": "80",
        "LINES": "24",
    }


def start_console(terminal: Tmux, tmp_path: Path, upstream: Upstream) -> str:
    """Start the agent in the terminal; its public URL, read from the console's Forwarding line."""
    command = [sys.executable, "manage.py", "agent", "http", str(upstream.port), "--web-addr", "127.0.0.1:0"]
    terminal.start(command, agent_env(tmp_path / "data"))
    lines = terminal.wait_for(lambda lines: any(_FORWARDING.search(line) for line in lines), "a Forwarding line")
    [url] = [m.group(1) for line in lines if (m := _FORWARDING.search(line))]
    return url


def stored_captures(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "agent.sqlite3") as db:
        return [uri for (uri,) in db.execute("SELECT uri FROM agentapi_capture ORDER BY start")]


def test_a_request_shows_in_the_console_with_its_time_and_the_layout_follows_resizes(
    terminal: Tmux, tmp_path: Path, upstream: Upstream
) -> None:
    url = start_console(terminal, tmp_path, upstream)
    first = terminal.screen()
    assert first[0].startswith("tunnel-agent") and first[0].rstrip().endswith("(Ctrl+C to quit)")
    assert any(re.fullmatch(r"Session Status {16}online\s*", line) for line in first)
    assert any(re.fullmatch(r"Connections {19}ttl {5}opn {5}rt1 {5}rt5 {5}p50 {5}p90\s*", line) for line in first)

    before = dt.datetime.now(ZoneInfo(ZONE))
    assert requests.get(url + "/console-check?n=1", timeout=10).status_code == 200
    after = dt.datetime.now(ZoneInfo(ZONE))
    row = re.compile(row_pattern("/console-check?n=1") + r"\s+127\.0\.0\.1")
    lines = terminal.wait_for(lambda lines: any(row.search(line) for line in lines), "the request's line", timeout=5)
    [match] = [m for line in lines if (m := row.search(line))]
    hour, minute, second, milli, zone = match.groups()
    shown = before.replace(hour=int(hour), minute=int(minute), second=int(second), microsecond=int(milli) * 1000)
    assert zone == before.tzname()
    assert before - dt.timedelta(milliseconds=1) <= shown <= after  # the exchange's start, in local time
    # The Connections row follows the metrics (taken every second): one connection, closed.
    terminal.wait_for(lambda lines: any(re.fullmatch(r" {30}1 {7}0 .*", line) for line in lines), "ttl 1, opn 0")

    # Narrow: the label gutter shrinks, the Forwarding line breaks after its arrow.
    terminal.tmux("resize-window", "-t", "agent", "-x", "60", "-y", "20")
    narrow = terminal.wait_for(
        lambda lines: any(line.startswith("Session Status  online") for line in lines), "the narrow layout"
    )
    assert any(re.fullmatch(rf"Forwarding {{6}}{re.escape(url)} ->\s*", line) for line in narrow)
    assert any(row.search(line) for line in narrow)
    assert all(len(line) <= 60 for line in narrow)

    # Wide again: the path and the client address side by side.
    terminal.tmux("resize-window", "-t", "agent", "-x", "120", "-y", "40")
    terminal.height = 40
    wide = terminal.wait_for(
        lambda lines: any("Session Status                online" in line for line in lines), "wide"
    )
    assert any(
        re.fullmatch(rf"Forwarding {{20}}{re.escape(url)} -> http://localhost:{upstream.port}\s*", line)
        for line in wide
    )

    terminal.tmux("send-keys", "-t", "agent", "C-c")
    assert terminal.exit_status() == 0
    # The full screen is given back: the shell's screen again, no console left on it.
    assert not any("Session Status" in line for line in terminal.screen())


def test_ctrl_c_right_after_a_burst_of_requests_writes_every_capture(
    terminal: Tmux, tmp_path: Path, upstream: Upstream
) -> None:
    url = start_console(terminal, tmp_path, upstream)
    paths = [f"/burst/{i}" for i in range(20)]
    with requests.Session() as session:
        for path in paths:
            assert session.get(url + path, timeout=10).status_code == 200
    terminal.tmux("send-keys", "-t", "agent", "C-c")
    assert terminal.exit_status() == 0
    assert stored_captures(tmp_path / "data") == paths


def test_with_log_stdout_a_terminal_gets_only_log_lines_and_no_console(
    terminal: Tmux, tmp_path: Path, upstream: Upstream
) -> None:
    command = [sys.executable, "manage.py", "agent", "http", str(upstream.port), "--web-addr", "127.0.0.1:0"]
    terminal.start([*command, "--log", "stdout"], agent_env(tmp_path / "data"))
    terminal.wait_for(lambda lines: any('msg="agent ready"' in line for line in lines), "agent ready", timeout=30)
    assert terminal.tmux("display-message", "-p", "-t", "agent", "#{alternate_on}").strip() == "0"
    started = terminal.tmux("capture-pane", "-p", "-J", "-t", "agent")  # -J: wrapped lines joined
    url = re.search(r'msg="started tunnel".* url=(\S+)', started)
    assert url is not None
    assert requests.get(url.group(1) + "/plain", timeout=10).status_code == 200
    terminal.tmux("send-keys", "-t", "agent", "C-c")
    assert terminal.exit_status() == 0
    screen = terminal.tmux("capture-pane", "-p", "-J", "-t", "agent")
    logged = [line.removeprefix("^C") for line in screen.splitlines() if line]  # ^C: the terminal's echo
    assert logged and all(re.match(r"t=\S+ lvl=(dbug|info|warn|eror|crit) msg=", line) for line in logged), logged
    assert not any("Session Status" in line or "HTTP Requests" in line for line in logged)


def test_without_a_terminal_the_agent_draws_no_console(tmp_path: Path, upstream: Upstream) -> None:
    # stdout a pipe (a service, a CI log, `| tee`): console_ui's default, iftty, shows nothing.
    command = [sys.executable, "manage.py", "agent", "http", str(upstream.port), "--web-addr", "127.0.0.1:0"]
    inherited = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env = {**inherited, **agent_env(tmp_path / "data")}
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as agent:
        assert agent.stdout is not None
        deadline = time.monotonic() + 30
        output = b""
        while b"Forwarding" not in output and b"started tunnel" not in output and time.monotonic() < deadline:
            output += agent.stdout.readline()
        agent.send_signal(signal.SIGINT)
        output += agent.stdout.read()
        assert agent.wait(30) == 0
    assert b"\x1b[" not in output and b"Session Status" not in output, output
    assert b"127.0.0.1" in output


def start_with(terminal: Tmux, tmp_path: Path, upstream: Upstream, *args: str) -> None:
    command = [sys.executable, "manage.py", "agent", "http", str(upstream.port), "--web-addr", "127.0.0.1:0", *args]
    terminal.start(command, agent_env(tmp_path / "data"))


def config_file(tmp_path: Path, **agent_keys: str) -> str:
    path = tmp_path / "ngrok.yml"
    path.write_text('version: "3"\nagent:\n' + "".join(f"  {key}: {value}\n" for key, value in agent_keys.items()))
    return str(path)


def test_with_a_log_file_the_console_is_shown_and_the_file_gets_every_line(
    terminal: Tmux, tmp_path: Path, upstream: Upstream
) -> None:
    log_file = tmp_path / "agent.log"
    start_with(terminal, tmp_path, upstream, "--log", str(log_file))
    terminal.wait_for(lambda lines: any(_FORWARDING.search(line) for line in lines), "a Forwarding line")
    assert terminal.tmux("display-message", "-p", "-t", "agent", "#{alternate_on}").strip() == "1"
    terminal.tmux("send-keys", "-t", "agent", "C-c")
    assert terminal.exit_status() == 0
    logged = log_file.read_text()
    for message in ('msg="started tunnel"', 'msg="agent ready"', 'msg="received stop request"', 'msg="agent stopped"'):
        assert message in logged
    assert not any("lvl=" in line for line in terminal.screen())  # none of it on the terminal


def test_console_ui_false_in_the_config_leaves_the_terminal_to_the_banner(
    terminal: Tmux, tmp_path: Path, upstream: Upstream
) -> None:
    start_with(terminal, tmp_path, upstream, "--config", config_file(tmp_path, console_ui="false"))
    terminal.wait_for(lambda lines: any("127.0.0.1" in line for line in lines), "the agent's first lines")
    assert terminal.tmux("display-message", "-p", "-t", "agent", "#{alternate_on}").strip() == "0"
    assert not any("Session Status" in line for line in terminal.screen())
    terminal.tmux("send-keys", "-t", "agent", "C-c")
    assert terminal.exit_status() == 0


@pytest.mark.parametrize(("color", "black_background"), [("", True), ("transparent", False)])
def test_console_ui_color_sets_the_consoles_background_as_ngrok_does(
    terminal: Tmux, tmp_path: Path, upstream: Upstream, color: str, black_background: bool
) -> None:
    keys = {"console_ui_color": color} if color else {}
    start_with(terminal, tmp_path, upstream, "--config", config_file(tmp_path, console_ui="true", **keys))
    terminal.wait_for(lambda lines: any(_FORWARDING.search(line) for line in lines), "a Forwarding line")
    painted = terminal.tmux("capture-pane", "-e", "-p", "-t", "agent")  # -e: with the colours
    assert ("\x1b[40m" in painted) is black_background
    terminal.tmux("send-keys", "-t", "agent", "C-c")
    assert terminal.exit_status() == 0
