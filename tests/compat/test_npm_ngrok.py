"""The npm `ngrok` package (v4, the real client) driving our agent through bin/ngrok, as its binPath.

tests/compat/npm_client.js does what an application does (connect, HTTP through the URL, the
client API, disconnect, kill) and prints a JSON summary checked here. The package must be installed:
`npm ci --ignore-scripts --prefix tests/compat` (no ngrok binary is downloaded: bin/ngrok stands in).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.compat.conftest import NGROK_BIN_DIR, port_is_closed, write_config
from tests.support.upstream import Upstream, free_port

pytestmark = pytest.mark.compat

COMPAT_DIR = Path(__file__).resolve().parent
SCRIPT = COMPAT_DIR / "npm_client.js"
NPM_PACKAGE_VERSION = "4.3.3"
INSTALL_HINT = "run `npm ci --ignore-scripts --prefix tests/compat` (needs node and npm)"


def node() -> str:
    """node, and the pinned npm package; a missing one fails the test (never skips it)."""
    executable = shutil.which("node")
    if executable is None:
        pytest.fail(f"node is not installed: the npm ngrok compatibility test needs it; {INSTALL_HINT}")
    manifest = COMPAT_DIR / "node_modules" / "ngrok" / "package.json"
    if not manifest.exists():
        pytest.fail(f"the npm package ngrok@{NPM_PACKAGE_VERSION} is not installed: {INSTALL_HINT}")
    installed = json.loads(manifest.read_text())["version"]
    if installed != NPM_PACKAGE_VERSION:
        pytest.fail(f"ngrok@{installed} is installed, the test pins {NPM_PACKAGE_VERSION}: {INSTALL_HINT}")
    return executable


def run_client(config_path: Path, env: dict[str, str], timeout: float = 60) -> tuple[dict[str, Any], str]:
    completed = subprocess.run(
        [node(), str(SCRIPT)],
        cwd=COMPAT_DIR,
        env={**os.environ, **env, "NGROK_BIN_DIR": str(NGROK_BIN_DIR), "NGROK_CONFIG": str(config_path)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = f"exit {completed.returncode}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    lines = completed.stdout.strip().splitlines()
    assert lines, output
    summary = json.loads(lines[-1])
    assert "error" not in summary, output
    assert completed.returncode == 0, output
    return summary, output


def test_npm_client_round_trip(tmp_path: Path, agent_data_dir: Path, upstream: Upstream) -> None:
    web_port = free_port()
    config_path = write_config(tmp_path / "ngrok.yml", "2", web_port)

    summary, output = run_client(config_path, {"UPSTREAM_PORT": str(upstream.port)})

    assert summary["version"] == settings.AGENT_VERSION, output
    assert summary["apiUrl"] == f"http://127.0.0.1:{web_port}", output
    assert summary["statuses"] == ["connected"], output
    url = summary["url"]
    assert url.startswith("http://127.0.0.1:"), output
    assert summary["response"] == {"status": 200, "body": "hello from npm"}, output

    [tunnel] = summary["tunnels"]
    assert tunnel["public_url"] == url
    assert tunnel["proto"] == "http"
    assert tunnel["config"] == {"addr": f"http://localhost:{upstream.port}", "inspect": True}

    assert len(summary["requestsBefore"]) == 1, summary["requestsBefore"]
    [original] = summary["requestsBefore"]
    assert original["tunnel_name"] == tunnel["name"]
    assert original["uri"] == "/from-npm?x=1"
    assert summary["replayed"] is True, output
    replayed, listed_original = summary["requestsAfterReplay"]
    assert listed_original["id"] == original["id"]
    assert replayed["id"] > original["id"]
    assert (replayed["tunnel_name"], replayed["method"], replayed["uri"], replayed["status_code"]) == (
        tunnel["name"],
        "POST",
        "/from-npm?x=1",
        200,
    )
    assert summary["detail"] == {
        "id": original["id"],
        "method": "POST",
        "uri": "/from-npm?x=1",
        "body": "hello from npm",
        "status_code": 200,
    }
    assert summary["deletedAll"] is True, output
    assert summary["requestsAfterDelete"] == 0
    assert summary["disconnected"] is True, output
    assert summary["tunnelsAfterDisconnect"] == 0

    # kill() sent SIGTERM and waited for the exit: prompt, clean, and the API is gone.
    assert summary["killMs"] < 5000, output
    assert summary["terminated"] is True
    assert any('msg="agent stopped"' in line for line in summary["logs"]), output
    assert port_is_closed(web_port)

    # The original request and its replay both reached the local service, byte for byte.
    assert [(r.method, r.path, r.body) for r in upstream.received] == [
        ("POST", "/from-npm?x=1", b"hello from npm"),
        ("POST", "/from-npm?x=1", b"hello from npm"),
    ]


@pytest.mark.parametrize("failure", ["web port in use", "missing config file"])
def test_npm_connect_rejects_when_the_agent_cannot_start(failure: str, tmp_path: Path, agent_data_dir: Path) -> None:
    """npm settles connect() only on the agent's output (the `address already in use` log line, or
    anything on stderr): a start-up failure must reach it, never leave connect() pending."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        if failure == "web port in use":
            config_path = write_config(tmp_path / "ngrok.yml", "2", busy.getsockname()[1])
            expected = "address already in use"
        else:
            config_path = tmp_path / "missing.yml"
            expected = f"config file {config_path} does not exist"
        completed = subprocess.run(
            [
                node(),
                "-e",
                "require('ngrok').connect({addr: 8080, binPath: () => process.env.NGROK_BIN_DIR,"
                " configPath: process.env.NGROK_CONFIG})"
                ".then(url => console.log('connected', url), error => console.log('rejected:', error.message))",
            ],
            cwd=COMPAT_DIR,
            env={**os.environ, "NGROK_BIN_DIR": str(NGROK_BIN_DIR), "NGROK_CONFIG": str(config_path)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert completed.stdout.startswith("rejected:"), completed
    assert expected in completed.stdout, completed
