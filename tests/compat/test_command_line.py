"""bin/ngrok, the launcher the clients start in place of the ngrok binary, on the command lines they use.

pyngrok: `start --none --log stdout --config F --authtoken T --region R`, `config add-authtoken T`,
`config add-api-key K`, `--version`. npm `ngrok` 4: `start --none --log=stdout --region=R --config=F`
(it rejects on any stderr output before the API address is logged), `authtoken T --config=F`
(it waits for any stdout), SIGTERM to stop (it waits for the exit).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.compat.conftest import NGROK_PATH, port_is_closed, write_config
from tests.support.upstream import free_port

pytestmark = pytest.mark.compat


def run_ngrok(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NGROK_PATH), *args], capture_output=True, text=True, timeout=timeout, check=False, env=os.environ
    )


def test_npm_start_line_logs_only_to_stdout_and_stops_promptly_on_sigterm(tmp_path: Path, agent_data_dir: Path) -> None:
    web_port = free_port()
    config = write_config(tmp_path / "ngrok.yml", "2", web_port)
    proc = subprocess.Popen(
        [str(NGROK_PATH), "start", "--none", "--log=stdout", "--region=eu", f"--config={config}", "--authtoken=x"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if "tunnel session started" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(30), lines
        # npm's own pattern for the API address (IPv4 only).
        addresses = [m.group(1) for line in lines if (m := re.search(r"starting web service.*addr=(\S+)", line))]
        assert addresses == [f"127.0.0.1:{web_port}"]
        assert requests.get(f"http://127.0.0.1:{web_port}/api/tunnels", timeout=5).json()["tunnels"] == []

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        assert proc.stderr is not None
        assert proc.stderr.read() == ""
        assert port_is_closed(web_port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["authtoken", "TOKEN", "--config={config}"], "Authtoken saved"),  # npm ngrok
        (["config", "add-authtoken", "TOKEN", "--log", "stdout", "--config", "{config}"], "Authtoken saved"),
        (["config", "add-api-key", "KEY", "--log", "stdout", "--config", "{config}"], "API key saved"),
        (["config", "check", "--config", "{config}"], "Valid configuration file at {config}"),
        (["--version"], f"ngrok version {settings.AGENT_VERSION}"),
    ],
    ids=["authtoken", "add-authtoken", "add-api-key", "check", "version"],
)
def test_account_and_version_commands(args: list[str], expected: str, tmp_path: Path, agent_data_dir: Path) -> None:
    config = write_config(tmp_path / "ngrok.yml", "3", free_port())
    completed = run_ngrok(*(arg.format(config=config) for arg in args))
    assert completed.returncode == 0, completed
    assert expected.format(config=config) in completed.stdout, completed
    assert completed.stderr == ""


def test_a_missing_config_file_is_a_clear_error_in_the_log_and_on_stderr(tmp_path: Path, agent_data_dir: Path) -> None:
    missing = tmp_path / "nowhere" / "ngrok.yml"
    completed = run_ngrok("start", "--none", "--log", "stdout", "--config", str(missing))
    assert completed.returncode == 1, completed
    [line] = completed.stdout.splitlines()
    assert "lvl=eror" in line
    assert f'err="config file {missing} does not exist' in line
    assert completed.stderr.startswith(f"ERROR:  config file {missing} does not exist"), completed


def test_an_unknown_config_subcommand_fails(agent_data_dir: Path) -> None:
    completed = run_ngrok("config", "frobnicate")
    assert completed.returncode == 1
    assert "unsupported: config frobnicate" in completed.stderr
