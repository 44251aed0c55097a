"""A bad setting stops the agent at once with one line that names it, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.agent_process import ROOT


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AGENT_UPSTREAM_TIMEOUT", "abc", "AGENT_UPSTREAM_TIMEOUT must be an integer, got 'abc'"),
        ("AGENT_HEARTBEAT_SECONDS", "-1", "AGENT_HEARTBEAT_SECONDS must be a positive number of seconds, got '-1'"),
        ("AGENT_DEBUG", "maybe", "AGENT_DEBUG must be a boolean, got 'maybe'"),
        ("AGENT_TLS_CERT", "/x.pem", "AGENT_TLS_CERT and AGENT_TLS_KEY go together"),
    ],
)
def test_a_bad_setting_is_one_clear_line(tmp_path, variable: str, value: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "agent", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"AGENT_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin", variable: value},
    )
    assert result.returncode == 2
    assert result.stderr == f"error: {message}\n"
