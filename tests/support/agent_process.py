"""Runs the real agent (`manage.py agent`) as a subprocess on loopback ports, for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
_ADDR = re.compile(r'msg="starting web service".* addr=(\S+)')
_STARTED = re.compile(r'msg="started tunnel".* name=(?:"([^"]*)"|(\S+)).* url=(\S+)')


class AgentProcess:
    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        inherited = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        # Each agent gets its own SQLite and in-memory layer unless a test asks for the services.
        # Heartbeats every half second: every test's tunnels live through many of the agent's
        # periodic checks, as they do in hours of real use.
        self.env = {**inherited, "AGENT_DATA_DIR": str(data_dir), "AGENT_HEARTBEAT_SECONDS": "0.5", **(env or {})}
        self.lines: list[str] = []
        self.public_urls: dict[str, str] = {}
        self.api_url = ""
        self._ready = threading.Event()
        self.proc: subprocess.Popen[str] | None = None
        self.session = requests.Session()

    def start(self, timeout: float = 30) -> AgentProcess:
        command = [sys.executable, "-u", str(ROOT / "manage.py"), "agent", *self.args]
        if "--web-addr" not in self.args:
            command += ["--web-addr", "127.0.0.1:0"]
        if "--log" not in self.args:
            command += ["--log", "stdout"]
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("agent did not start:\n" + "\n".join(self.lines))
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if match := _ADDR.search(line):
                self.api_url = "http://" + match.group(1)
            if match := _STARTED.search(line):
                self.public_urls[match.group(1) or match.group(2)] = match.group(3)
            if 'msg="agent ready"' in line:
                self._ready.set()

    def api(self, method: str, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.api_url + path, json=json, timeout=30, **kwargs)

    def start_tunnel(self, **definition: Any) -> dict[str, Any]:
        response = self.api("POST", "/api/tunnels", definition)
        assert response.status_code == 201, response.text
        return response.json()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def worker_pids(self, tunnel: str = "command_line") -> list[int]:
        """With --workers: the engine processes other than the main one, from `tunnel`'s
        per-process metrics; [] when the agent is not running or does not answer."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            workers = self.api("GET", f"/api/tunnels/{tunnel}").json()["metrics"]["workers"]
        except (requests.RequestException, ValueError, KeyError):
            return []
        return [w["pid"] for w in workers if w["pid"] != self.proc.pid]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
