"""Fixtures for driving the real clients (pyngrok, npm `ngrok`) against the agent via bin/ngrok.

The clients start the agent themselves, so the tests never hold its process handle. Each test gets
its own AGENT_DATA_DIR (inherited by the agent through the environment) and no DATABASE_URL or
REDIS_URL; afterwards any process
still running with that data directory is an orphan the client failed to stop: it is killed by
pid and the test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agent_process import ROOT
from tests.support.echo import echo_server

NGROK_BIN_DIR = ROOT / "bin"
NGROK_PATH = NGROK_BIN_DIR / "ngrok"


def agents_using(data_dir: Path) -> list[int]:
    """Pids of live processes started with AGENT_DATA_DIR=data_dir (Linux /proc; else none)."""
    marker = f"AGENT_DATA_DIR={data_dir}".encode()
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def agent_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """AGENT_DATA_DIR for every agent the clients start in this test; fails the test on orphans."""
    data_dir = tmp_path / "agent-data"
    monkeypatch.setenv("AGENT_DATA_DIR", str(data_dir))
    # Its own SQLite and in-memory layer, as tests/support/agent_process.py gives every agent: a
    # DATABASE_URL set for the services tests would share captures left by earlier runs.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    yield data_dir
    deadline = time.monotonic() + 5
    while (left := agents_using(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"agent processes left running after the client stopped: {left}"


def write_config(path: Path, version: str, web_port: int) -> Path:
    """A config file of the given version whose API listens on 127.0.0.1:web_port."""
    if version == "3":
        path.write_text(f'version: "3"\nagent:\n  web_addr: 127.0.0.1:{web_port}\n')
    else:
        path.write_text(f'version: "2"\nweb_addr: 127.0.0.1:{web_port}\n')
    return path


def port_is_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.fixture
def echo_port() -> Iterator[int]:
    with echo_server() as port:
        yield port
