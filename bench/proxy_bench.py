"""Throughput, latency and CPU cost of the agent's HTTP tunnel, against the same upstream directly.

What it measures, in one run on 127.0.0.1 only:

- req/s and p50/p99 latency of keep-alive GETs of a small static file (wrk) served by nginx
  directly ("direct"), through an agent tunnel with inspection on ("inspected": every exchange is
  captured and written to SQLite) and through one with inspection off ("uninspected"). As a
  calibration point, also through nginx itself as a reverse proxy ("nginx-proxy"), the best a
  proxy hop can do here.
- The agent's CPU time per request: utime+stime of the agent process (all its threads, the capture
  writer included) from /proc/<pid>/stat, over the measured window plus the moments after it until
  the agent is idle again (so batched capture writes that land after the last response count),
  divided by the requests wrk completed. Unlike req/s it does not depend on how the machine's two
  cores were shared between wrk, nginx and the agent, so it is the figure to compare across runs.
- Scenarios alternate within each round (direct, inspected, uninspected, nginx-proxy, direct, ...)
  so slow drifts of the machine hit all of them alike; ratios to direct are per round, then the
  median over rounds is reported.
- That captures were persisted: the inspected agent's capture table is emptied (DELETE
  /api/requests/http) before each measured window and its rows are counted after it (SQLite,
  read-only) and, at the end, through GET /api/requests/http?limit=10000.
- A large upload: a 1 GiB request body, generated on the fly and sent in 1 MiB slices over a raw
  socket with Content-Length, through the inspected tunnel to a discard server that reads it all
  and then answers 200. The agent's resident memory is sampled during the upload (VmRSS, plus
  VmHWM after resetting it through /proc/<pid>/clear_refs when allowed): growth must stay far below
  the body size, i.e. the body streams with back-pressure instead of being buffered.
- A service like Django's runserver ("two-write" rows): Python's http.server (ThreadingHTTPServer,
  HTTP/1.1 keep-alive, Nagle on) writing the response head and the body in two writes, fetched
  with one new connection per request (as curl or a browser's first visit: connect, GET, read,
  close) by Python clients (raw sockets; concurrency 1 and 4, 500 requests a window), directly and
  through an inspected tunnel, in the same alternating rounds. Median and p99 latency per request
  and the added median (tunnel minus direct, per round): the agent once added ~40 ms here (delayed
  ACKs on its pooled upstream connection holding the service's second, Nagle-delayed write), fixed
  with TCP_QUICKACK. `--only two-write` runs these rows alone (~15 s; no nginx or wrk needed).
- The cost of a Traffic Policy ("policy" rows): on each agent, two tunnels to the same nginx with
  the same definition, one without a policy ("plain") and one with a five-rule policy (restrict-ips
  allowing 127.0.0.0/8, basic-auth, a rate-limit that never trips, add-headers, a CEL match with
  set-vars), loaded by wrk with the same requests (a correct Authorization header on every one),
  alternating plain/policy within each round. Reported per round as ratios policy/plain of the
  agent's CPU per request, p50 and p99, then the median over rounds; inspection off (the
  uninspected agent) and on (the inspected agent, where each capture also stores the trace).
  `--only policy` runs these rows alone (~1 min).

Why these choices: wrk is a C load generator (one thread, 32 keep-alive connections) cheap enough
not to be the bottleneck; nginx with one worker serves the static file so fast that the direct run
shows what the machine can do; the agent is one event loop (plus a capture-writer thread), so its
CPU per request is its real cost. Pinning (taskset): wrk and the upstream nginx share CPU 0, the
proxy under test (agent, or the calibration nginx) has CPU 1 to itself. So in every scenario the
client and the service get the same core, and the proxy hop gets the other, as it would on a
machine of its own; direct is then what the client/service pair does on one core (~61k req/s on
the reference machine). Other work on the machine (other test runs) is measured per window from
/proc/stat and flagged ("other load"): figures from a disturbed window are less trustworthy.

Run: .venv/bin/python bench/proxy_bench.py [--rounds 3 --duration 5] [--only wrk|two-write|policy]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

INSTALL_HINT = "apt-get update && apt-get install -y nginx wrk"

# Targets from the issue.
TARGET_UNINSPECTED_RATIO = 0.40
TARGET_INSPECTED_RATIO = 0.20
TARGET_INSPECTED_CPU_US = 80.0
TARGET_UPLOAD_GROWTH_MB = 64.0
# A service writing head and body separately, new connection per request: what the tunnel adds to the
# median (was ~40 ms before TCP_QUICKACK on the agent's pooled upstream connections).
TARGET_TWO_WRITE_ADDED_MS = 1.0

# A window during which other work used more than this many cores is flagged as disturbed.
NOISY_CORES = 0.15
# nginx as a reverse proxy on the reference machine: CPU us/request, to express the agent's CPU at that speed.
REFERENCE_NGINX_PROXY_US = 18.0

# wrk prints this line from the Lua done() hook: exact counts and latency percentiles in microseconds.
WRK_SCRIPT = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"mean_us":%.1f,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""

# The policy rows: five rules of ngrok's documented actions, every one running on every request and
# none answering (the client is on 127.0.0.1 and sends the credentials; the rate limit's capacity
# is ngrok's maximum, far above what a window sends). YAML as ngrok's docs write it.
POLICY_USER, POLICY_PASSWORD = "bench", "bench-password"
POLICY = f"""on_http_request:
  - name: loopback only
    actions:
      - type: restrict-ips
        config:
          enforce: true
          allow:
            - 127.0.0.0/8
  - name: basic auth
    actions:
      - type: basic-auth
        config:
          credentials:
            - {POLICY_USER}:{POLICY_PASSWORD}
  - name: rate limit
    actions:
      - type: rate-limit
        config:
          name: never trips in a benchmark
          algorithm: sliding_window
          capacity: 2000000000
          rate: 60s
          bucket_key:
            - conn.client_ip
  - name: add headers
    actions:
      - type: add-headers
        config:
          headers:
            x-client-ip: ${{conn.client_ip}}
  - name: CEL match
    expressions:
      - req.url.path.startsWith('/')
    actions:
      - type: set-vars
        config:
          vars:
            - path: ${{req.url.path}}
"""
POLICY_ACTIONS = ["restrict-ips", "basic-auth", "rate-limit", "add-headers", "set-vars"]
AUTHORIZATION = "Basic " + base64.b64encode(f"{POLICY_USER}:{POLICY_PASSWORD}".encode()).decode()

_WEB_ADDR = re.compile(r'msg="starting web service".* addr=(\S+)')
_STARTED = re.compile(r'msg="started tunnel".* url=(\S+)')


# --- small helpers ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")


def cpu_ticks(pid: int) -> int:
    """utime+stime of the process and its live descendants (all threads: an agent with `--workers`
    runs its engine in child processes), in clock ticks."""
    return sum(_own_cpu_ticks(p) for p in process_tree(pid))


def _own_cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # a child that exited between the scan and the read
        return 0
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted after "(comm)"


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants, from /proc/*/stat's parent pids."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def main_thread_ticks(pid: int) -> int:
    """utime+stime of the process's main thread alone: the agent's event loop."""
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def busy_ticks() -> int:
    """Non-idle CPU time of the whole machine (all CPUs), in clock ticks."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return user + nice + system + irq + softirq + steal


def children_cpu_s() -> float:
    """CPU seconds of the children reaped so far (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_idle(pid: int, settle: float = 0.2, limit: float = 5.0) -> int:
    """CPU ticks once the process has stopped using CPU (trailing capture writes included)."""
    deadline = time.monotonic() + limit
    last = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(settle)
        now = cpu_ticks(pid)
        if now == last:
            return now
        last = now
    return last


def status_kb(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def taskset(cpus: str) -> list[str]:
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def http(method: str, url: str, timeout: float = 60) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def stop_process(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --- the processes under test -----------------------------------------------------------------


def nginx_conf(tmp: Path, name: str, server: str) -> Path:
    """A self-contained nginx config: one process (master_process off), everything under tmp."""
    base = tmp / name
    base.mkdir()
    conf = base / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process off;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {base}/client_body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    {server}
}}
"""
    )
    return conf


class Nginx:
    def __init__(self, conf: Path, port: int, cpus: str, what: str) -> None:
        self.port = port
        assert NGINX is not None, "main() refuses to run without nginx"
        self.proc = subprocess.Popen(
            [*taskset(cpus), NGINX, "-p", str(conf.parent), "-c", str(conf), "-e", str(conf.parent / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_port(port, self.proc, what)

    @property
    def pid(self) -> int:
        return self.proc.pid  # with taskset, exec keeps the pid

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGQUIT)


def static_upstream(tmp: Path, cpus: str, page: bytes) -> Nginx:
    """nginx serving `page` at every path but /1m.bin (1 MiB of bytes 0-255 repeated), from
    `tmp`/www, pinned to `cpus`: the upstream of `make bench`, `make flame` and `make sched-trace`."""
    www = tmp / "www"
    www.mkdir()
    (www / "index.html").write_bytes(page)
    (www / "1m.bin").write_bytes(bytes(range(256)) * 4096)
    for path in (www, www / "index.html", www / "1m.bin"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    port = free_port()
    server = f"server {{ listen 127.0.0.1:{port}; root {www}; location / {{ try_files $uri /index.html; }} }}"
    return Nginx(nginx_conf(tmp, "upstream", server), port, cpus, "nginx upstream")


@dataclass
class Agent:
    """`manage.py agent http ...` as a subprocess with its own data directory."""

    name: str
    data_dir: Path
    upstream_port: int
    inspect: bool
    cpus: str
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)  # e.g. ["--workers", "2"]
    # Pin the event loop's thread alone to `cpus` once the agent is ready (its capture writer
    # thread, made at start, stays free to run on another core); False: the whole process.
    loop_only: bool = False
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    api: str = ""
    url: str = ""

    def start(self, timeout: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # SQLite in data_dir, always
        env["AGENT_DATA_DIR"] = str(self.data_dir)
        env.update(self.extra_env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        command = [
            *taskset("" if self.loop_only else self.cpus),
            sys.executable,
            "-u",
            str(ROOT / "manage.py"),
            "agent",
            "http",
            f"127.0.0.1:{self.upstream_port}",
            "--web-addr",
            "127.0.0.1:0",
            "--log",
            "stdout",
            f"--inspect={'true' if self.inspect else 'false'}",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if m := _WEB_ADDR.search(line):
                    self.api = f"http://{m.group(1)}/api"
                if m := _STARTED.search(line):
                    self.url = self.url or m.group(1)
                if 'msg="agent ready"' in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agent {self.name} did not start:\n" + "\n".join(self.lines[-30:]))
        if self.loop_only and self.cpus:
            # The thread whose id is the pid: the main thread, which runs the event loop.
            os.sched_setaffinity(self.proc.pid, {int(cpu) for cpu in self.cpus.split(",")})

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def clear_captures(self) -> None:
        http("DELETE", self.api + "/requests/http")

    def stored(self) -> tuple[int, int]:
        """Rows in the capture table and their stored bytes, read straight from SQLite (read-only)."""
        db = sqlite3.connect(f"file:{self.data_dir / 'agent.sqlite3'}?mode=ro", uri=True, timeout=30)
        try:
            (table,) = db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%capture'"
            ).fetchone()
            rows, size = db.execute(f'SELECT COUNT(*), COALESCE(SUM(stored_size), 0) FROM "{table}"').fetchone()
            return int(rows), int(size)
        finally:
            db.close()

    def last_capture(self, tunnel: str) -> tuple[int, int | None, int] | None:
        """(request_size, status_code, stored_size) of the tunnel's newest capture in SQLite."""
        db = sqlite3.connect(f"file:{self.data_dir / 'agent.sqlite3'}?mode=ro", uri=True, timeout=30)
        try:
            (table,) = db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%capture'"
            ).fetchone()
            return db.execute(
                f'SELECT request_size, status_code, stored_size FROM "{table}" WHERE tunnel_name = ? '
                "ORDER BY id DESC LIMIT 1",
                (tunnel,),
            ).fetchone()
        finally:
            db.close()

    def whole_share(self, uri: str) -> float:
        """Of the stored captures of `uri`, the share that kept their response up to the capture
        limit (AGENT_CAPTURE_LIMIT, 1 MiB: the sink cuts new captures to 64 KiB a message while its
        queue is over half full); NaN when none."""
        db = sqlite3.connect(f"file:{self.data_dir / 'agent.sqlite3'}?mode=ro", uri=True, timeout=30)
        try:
            (table,) = db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%capture'"
            ).fetchone()
            rows, whole = db.execute(
                f'SELECT COUNT(*), SUM(length(response_raw) >= MIN(response_size, 1048576)) FROM "{table}" WHERE uri = ?',
                (uri,),
            ).fetchone()
            return whole / rows if rows else math.nan
        finally:
            db.close()

    def captures_dropped(self) -> float:
        """Captures the agent did not keep since it started (the storage line's `dropped`: the
        database was not keeping up); NaN when the agent does not say."""
        web = self.api.removesuffix("/api")
        _, body = http("GET", web + "/inspect/storage.json")
        return float(json.loads(body).get("dropped", math.nan))

    def dropped_warnings(self) -> list[str]:
        """The capture sink's warnings about captures dropped because its queue was full."""
        return [line for line in self.lines if "capture queue full" in line]

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, timeout=30)


# --- load ---------------------------------------------------------------------------------------


def run_wrk(args: argparse.Namespace, port: int, duration: float, script: Path) -> dict[str, Any]:
    assert WRK is not None, "main() refuses to run without wrk"
    command = [
        *taskset(args.wrk_cpus),
        WRK,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/index.html",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result = json.loads(line[len("WRKJSON ") :])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
            return result
    raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@dataclass
class Scenario:
    name: str
    port: int
    agent: Agent | None = None  # whose CPU is "the proxy's CPU"
    proxy_pid: int | None = None  # nginx-proxy: the proxy's pid
    runs: list[dict[str, Any]] = field(default_factory=list)
    script: Path | None = None  # wrk's Lua script for this scenario (default: the run's)


def measure(args: argparse.Namespace, scenario: Scenario, upstream: Nginx, script: Path) -> dict[str, Any]:
    script = scenario.script or script
    if args.warmup > 0:
        run_wrk(args, scenario.port, args.warmup, script)
    proxy_pid = scenario.agent.pid if scenario.agent is not None else scenario.proxy_pid
    if proxy_pid is not None:
        wait_idle(proxy_pid)  # the warm-up's captures are written before the table is emptied
    if scenario.agent is not None and scenario.agent.inspect:
        scenario.agent.clear_captures()
        wait_idle(scenario.agent.pid)
    proxy0 = cpu_ticks(proxy_pid) if proxy_pid is not None else 0
    loop0 = main_thread_ticks(proxy_pid) if proxy_pid is not None else 0
    upstream0 = cpu_ticks(upstream.pid)
    busy0, wrk0 = busy_ticks(), children_cpu_s()
    result = run_wrk(args, scenario.port, args.duration, script)
    busy1, wrk1 = busy_ticks(), children_cpu_s()
    upstream1 = cpu_ticks(upstream.pid)
    proxy_end = cpu_ticks(proxy_pid) if proxy_pid is not None else 0
    proxy1 = wait_idle(proxy_pid) if proxy_pid is not None else 0
    loop1 = main_thread_ticks(proxy_pid) if proxy_pid is not None else 0
    requests = max(result["requests"], 1)
    result["upstream_cpu_us"] = (upstream1 - upstream0) / CLK_TCK * 1e6 / requests
    result["wrk_cpu_us"] = (wrk1 - wrk0) * 1e6 / requests
    # Whatever else kept the machine's CPUs busy during the window (other processes, and kernel
    # softirq time not charged to any process), in cores: a check that the run was undisturbed.
    ours = (upstream1 - upstream0) / CLK_TCK + (wrk1 - wrk0) + (proxy_end - proxy0) / CLK_TCK
    result["other_cores"] = max(0.0, ((busy1 - busy0) / CLK_TCK - ours) / (result["duration_us"] / 1e6))
    if proxy_pid is not None:
        result["proxy_cpu_us"] = (proxy1 - proxy0) / CLK_TCK * 1e6 / requests
        # Of which the event loop (main thread); the rest is other threads (the capture writer).
        result["loop_cpu_us"] = (loop1 - loop0) / CLK_TCK * 1e6 / requests
        # CPU the proxy used during the window, in cores (1.0 = one core busy all the time).
        result["proxy_cores"] = (proxy_end - proxy0) / CLK_TCK / (result["duration_us"] / 1e6)
        # Trailing work after the last response (captures still being written), in seconds.
        result["proxy_tail_s"] = (proxy1 - proxy_end) / CLK_TCK
    if scenario.agent is not None and scenario.agent.inspect:
        result["stored_rows"], result["stored_bytes"] = scenario.agent.stored()
    return result


# --- the large upload -----------------------------------------------------------------------------


def discard_server(port: int) -> None:
    """Hidden mode (--discard-server PORT): read each request body fully, then answer 200."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while True:
        conn, _ = listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    break
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            received = len(rest)
            while received < length:
                n = conn.recv_into(view)
                if not n:
                    break
                received += n
            body = b"received %d\n" % received
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body)
            )


def upload(port: int, size: int, pid: int, timeout: float) -> dict[str, Any]:
    """Stream `size` bytes through 127.0.0.1:port while sampling the agent's resident memory."""
    # Reset the agent's peak-RSS counter so VmHWM covers the upload only (root or same user, Linux >= 4.0).
    hwm_reset = False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
        hwm_reset = True
    before = status_kb(pid)
    peak_rss = before["VmRSS"]
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_rss
        while not stop.is_set():
            with contextlib.suppress(OSError):
                peak_rss = max(peak_rss, status_kb(pid)["VmRSS"])
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # The body: one 1 MiB slice of varied bytes, sent again and again (never the whole body in memory).
    piece = bytes(range(256)) * 4096
    cpu0 = cpu_ticks(pid)
    started = time.perf_counter()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % (port, size)
        )
        view = memoryview(piece)
        while sent < size:
            n = min(len(piece), size - sent)
            sock.sendall(view[:n])
            sent += n
        sent_at = time.perf_counter()
        response = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            response += data
            _, sep, body = response.partition(b"\r\n\r\n")
            if sep and b"\n" in body:
                break
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    after = status_kb(pid)
    cpu1 = wait_idle(pid)
    peak = max(peak_rss, after["VmHWM"] if hwm_reset else 0)
    status_line = response.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    echoed = re.search(rb"received (\d+)", response)
    return {
        "bytes": size,
        "status": status_line,
        "received_by_upstream": int(echoed.group(1)) if echoed else None,
        "seconds": elapsed,
        "send_seconds": sent_at - started,
        "mb_per_s": size / elapsed / 1e6,
        "rss_before_mb": before["VmRSS"] / 1024,
        "rss_peak_mb": peak / 1024,
        "rss_growth_mb": (peak - before["VmRSS"]) / 1024,
        "hwm_reset": hwm_reset,
        "agent_cpu_s": (cpu1 - cpu0) / CLK_TCK,
    }


# --- a two-write service, one new connection per request ----------------------------------------


def two_write_server(port: int, body_bytes: int) -> None:
    """Hidden mode (--two-write-server PORT): a local service like Django's runserver.

    Python's http.server (ThreadingHTTPServer, HTTP/1.1 keep-alive) whose handler writes the
    response head (send_response/send_header/end_headers: one write) and then the body
    (wfile.write: a second write), with Nagle's algorithm on, as runserver does. The body is held
    until the head is acknowledged, so a peer that delays its ACK (the agent's pooled, reused
    upstream connection in "pingpong" mode) adds up to 40 ms per response.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = (b"two-write payload " * (body_bytes // 18 + 1))[: max(body_bytes - 1, 0)] + b"\n"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()  # write 1: the head
            self.wfile.write(body)  # write 2: the body (wbufsize 0: straight to the socket)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128

    with Server(("127.0.0.1", port), Handler) as server:
        server.serve_forever()


def one_request(host: str, port: int, request: bytes) -> tuple[int, bool]:
    """Connect, send, read the head and Content-Length bytes of body, close:
    (microseconds from before connect to the last byte, whether it was a whole 200)."""
    started = time.perf_counter_ns()
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return (time.perf_counter_ns() - started) // 1000, False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = -1
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        received = len(body)
        while received < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += len(chunk)
        elapsed = (time.perf_counter_ns() - started) // 1000
    return elapsed, head.startswith(b"HTTP/1.1 200 ") and received == length


def two_write_client(port: int, count: int, warmup: int) -> None:
    """Hidden mode (--two-write-client PORT COUNT WARMUP): `warmup` requests, then "ready" on stdout;
    on "go" from stdin, `count` requests one after the other, each on a new connection (as curl or
    a browser's first visit: connect, GET, read, close); prints their latencies as JSON."""
    request = b"GET /page HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: proxy-bench\r\nAccept: */*\r\n\r\n" % port
    for _ in range(warmup):
        one_request("127.0.0.1", port, request)
    print("ready", flush=True)
    sys.stdin.readline()
    latencies, errors = [], 0
    for _ in range(count):
        try:
            us, ok = one_request("127.0.0.1", port, request)
        except OSError:
            errors += 1
            continue
        latencies.append(us)
        errors += not ok
    print(json.dumps({"latencies_us": latencies, "errors": errors}), flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)] if ordered else float("nan")


@dataclass
class TwoWriteScenario:
    name: str  # "direct" or "inspected"
    port: int
    concurrency: int
    agent: Agent | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def latencies_us(self) -> list[int]:
        """Every round's latencies (of the attempts that count), pooled."""
        return [us for r in self.runs for us in r["latencies_us"]]


def measure_two_write(args: argparse.Namespace, scenario: TwoWriteScenario, server_pid: int) -> dict[str, Any]:
    """One window: `--two-write-requests` new-connection GETs split over `concurrency` client processes."""
    if scenario.agent is not None:
        wait_idle(scenario.agent.pid)  # the previous window's captures are written first
    conc = scenario.concurrency
    per_client = [args.two_write_requests // conc + (i < args.two_write_requests % conc) for i in range(conc)]
    clients = [
        subprocess.Popen(
            [*taskset(args.wrk_cpus), sys.executable, __file__, "--two-write-client", str(scenario.port), str(n), "20"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in per_client
    ]
    try:
        for client in clients:  # start-up and warm-up done, in every client
            assert client.stdout is not None
            if client.stdout.readline().strip() != "ready":
                raise RuntimeError(f"two-write client exited with {client.wait()}")
        agent_pid = scenario.agent.pid if scenario.agent is not None else None
        agent0 = cpu_ticks(agent_pid) if agent_pid is not None else 0
        server0, busy0, clients0 = cpu_ticks(server_pid), busy_ticks(), children_cpu_s()
        started = time.perf_counter()
        for client in clients:
            assert client.stdin is not None
            client.stdin.write("go\n")
            client.stdin.flush()
        outputs = [json.loads(client.communicate(timeout=300)[0]) for client in clients]
        elapsed = time.perf_counter() - started
        busy1, clients1, server1 = busy_ticks(), children_cpu_s(), cpu_ticks(server_pid)
        agent1 = cpu_ticks(agent_pid) if agent_pid is not None else 0
    finally:
        for client in clients:
            stop_process(client, signal.SIGTERM, timeout=5)
    latencies = [us for out in outputs for us in out["latencies_us"]]
    ours = (server1 - server0 + agent1 - agent0) / CLK_TCK + (clients1 - clients0)
    requests = max(len(latencies), 1)
    result = {
        "requests": len(latencies),
        "errors": sum(out["errors"] for out in outputs),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_us": percentile(latencies, 50),
        "p90_us": percentile(latencies, 90),
        "p99_us": percentile(latencies, 99),
        "max_us": max(latencies, default=float("nan")),
        "mean_us": statistics.fmean(latencies) if latencies else float("nan"),
        "slow_20ms": sum(us >= 20_000 for us in latencies),
        "other_cores": max(0.0, ((busy1 - busy0) / CLK_TCK - ours) / elapsed),
        "service_cpu_us": (server1 - server0) / CLK_TCK * 1e6 / requests,
        "latencies_us": latencies,  # left out of --json
    }
    if agent_pid is not None:
        result["proxy_cpu_us"] = (agent1 - agent0) / CLK_TCK * 1e6 / requests
    return result


def print_two_write_window(rnd: int, s: TwoWriteScenario, r: dict[str, Any], *, retry: bool) -> None:
    label = f"two-write {s.name} c{s.concurrency}" + (" (again)" if retry else "")
    extra = f" agent {r['proxy_cpu_us']:6.1f} us/req" if "proxy_cpu_us" in r else ""
    if r["slow_20ms"]:
        extra += f" {r['slow_20ms']} requests >= 20 ms"
    if r["other_cores"] > NOISY_CORES:
        extra += f" [other load {r['other_cores']:.2f} cores]"
    if r["errors"]:
        extra += f" ERRORS {r['errors']}"
    print(
        f"round {rnd} {label:<28} {r['rps']:6.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms  p99 "
        f"{r['p99_us'] / 1000:6.2f} ms  max {r['max_us'] / 1000:6.2f} ms  service {r['service_cpu_us']:5.0f} "
        f"us/req{extra}",
        flush=True,
    )


def two_write_summary(scenarios: list[TwoWriteScenario]) -> dict[str, dict[str, Any]]:
    """Per concurrency: pooled p50/p99 of each path, and the added median latency (tunnel minus
    direct, per round, then the median over rounds)."""
    out: dict[str, dict[str, Any]] = {}
    for conc in sorted({s.concurrency for s in scenarios}):
        direct = next(s for s in scenarios if s.concurrency == conc and s.name == "direct")
        tunnel = next(s for s in scenarios if s.concurrency == conc and s.name == "inspected")
        added = [(t["p50_us"] - d["p50_us"]) / 1000 for t, d in zip(tunnel.runs, direct.runs, strict=True)]
        row: dict[str, Any] = {
            "added_p50_ms": median(added),
            "added_p50_ms_min": min(added),
            "added_p50_ms_max": max(added),
            "added_p50_ms_pooled": (percentile(tunnel.latencies_us, 50) - percentile(direct.latencies_us, 50)) / 1000,
        }
        for s in (direct, tunnel):
            row[s.name] = {
                "requests": len(s.latencies_us),
                "errors": sum(r["errors"] for r in s.runs),
                "p50_ms": percentile(s.latencies_us, 50) / 1000,
                "p99_ms": percentile(s.latencies_us, 99) / 1000,
                "max_ms": max(s.latencies_us, default=float("nan")) / 1000,
                "slow_20ms": sum(us >= 20_000 for us in s.latencies_us),
                "rps": median([r["rps"] for r in s.runs]),
                "agent_cpu_us": median([r["proxy_cpu_us"] for r in s.runs if "proxy_cpu_us" in r]),
                "other_cores": max(r["other_cores"] for r in s.runs),
            }
        out[f"c{conc}"] = row
    return out


def two_write_verdicts(scenarios: list[TwoWriteScenario]) -> list[bool]:
    rows = two_write_summary(scenarios).values()
    return [
        row["added_p50_ms"] < TARGET_TWO_WRITE_ADDED_MS
        and not row["direct"]["errors"]
        and not row["inspected"]["errors"]
        for row in rows
    ]


def report_two_write(args: argparse.Namespace, scenarios: list[TwoWriteScenario]) -> None:
    print()
    print(
        f"two-write service (http.server, head and body in two writes, Nagle on), one new connection per "
        f"request, {args.two_write_requests} requests per window, {args.rounds} rounds; p50/p99 over every "
        f"round's requests, added = tunnel p50 - direct p50 per round, then the median (min-max)"
    )
    print(
        f"{'path':<22} {'conc':>4} {'requests':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'>=20ms':>6} "
        f"{'req/s':>6} {'agent us':>8} {'added p50 ms':>13} {'(min-max)':>13}"
    )
    for key, row in two_write_summary(scenarios).items():
        for name, label in (("direct", "direct"), ("inspected", "tunnel, inspection on")):
            r = row[name]
            added = f"{row['added_p50_ms']:+13.3f} {row['added_p50_ms_min']:+.3f}..{row['added_p50_ms_max']:+.3f}"
            print(
                f"{label:<22} {key[1:]:>4} {r['requests']:8d} {r['p50_ms']:7.3f} {r['p99_ms']:7.3f} "
                f"{r['max_ms']:7.2f} {r['slow_20ms']:6d} {r['rps']:6.0f} {fmt(r['agent_cpu_us']):>8} "
                + (added if name == "inspected" else "")
            )
            if r["errors"]:
                print(f"  {r['errors']} failed requests ({label}, c{key[1:]})")
            if r["other_cores"] > NOISY_CORES:
                print(f"  disturbed: other work used up to {r['other_cores']:.2f} cores ({label}, c{key[1:]})")
    print(
        "  agent us: the agent's CPU per request, all threads (coarse: clock ticks over a short window); >=20ms:\n"
        "  requests that took 20 ms or more (a delayed ACK costs ~40 ms); the tunnel reuses its upstream\n"
        "  connection, so the service neither accepts a connection nor starts a thread per request there"
    )


# --- the cost of a Traffic Policy -------------------------------------------------------------


def start_policy_pairs(
    tmp: Path, agents: list[Agent], upstream_port: int, expected: bytes
) -> list[tuple[Scenario, Scenario]]:
    """On each agent, a tunnel without a policy and the same tunnel with POLICY (inspection as
    the agent's), both loaded with the Authorization header; checked before any window: the
    policy refuses a request without credentials, passes one with them, and (inspected) its
    capture shows the five actions run and none answering."""
    script = tmp / "report-with-authorization.lua"
    script.write_text(f'wrk.headers["Authorization"] = "{AUTHORIZATION}"\n' + WRK_SCRIPT)
    pairs = []
    for agent in agents:
        suffix = "inspection on" if agent.inspect else "inspection off"
        ports = {
            kind: add_tunnel(
                agent,
                f"{kind}-{'on' if agent.inspect else 'off'}",
                upstream_port,
                inspect=agent.inspect,
                traffic_policy=POLICY if kind == "policy" else "",
            )
            for kind in ("plain", "policy")
        }
        status, _ = http_with(f"http://127.0.0.1:{ports['policy']}/index.html", {})
        if status != 401:
            raise RuntimeError(f"the policy tunnel answered {status} to a request without credentials, not 401")
        for kind, port in ports.items():
            status, body = http_with(f"http://127.0.0.1:{port}/index.html", {"Authorization": AUTHORIZATION})
            if status != 200 or body != expected:
                raise RuntimeError(f"{kind} tunnel :{port} answered {status} with {len(body)} bytes")
        if agent.inspect:
            wait_idle(agent.pid)
            _, listed = http("GET", agent.api + "/requests/http?tunnel_name=policy-on&limit=1")
            [capture] = json.loads(listed)["requests"]
            steps = capture.get("traffic_policy") or []
            if [step["action"] for step in steps] != POLICY_ACTIONS or any(step["terminal"] for step in steps):
                raise RuntimeError(f"the policy's trace is not the five actions passing: {steps}")
        pairs.append(
            (
                Scenario(f"plain, {suffix}", ports["plain"], agent=agent, script=script),
                Scenario(f"policy, {suffix}", ports["policy"], agent=agent, script=script),
            )
        )
    return pairs


def http_with(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET `url` with these headers: (status, body), an error status included."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def policy_summary(
    pairs: list[tuple[Scenario, Scenario]], calibration: Scenario | None = None
) -> dict[str, dict[str, Any]]:
    """Per pair: medians of each tunnel, and the policy/plain ratios taken per round, then the
    median (min, max) over rounds; `added_cpu_us` is policy minus plain CPU per request, and with
    the nginx-proxy calibration measured in the same rounds, `added_cpu_us_reference` is that
    figure at the reference machine's speed (relative to nginx-proxy's CPU, times its 18 us)."""
    out: dict[str, dict[str, Any]] = {}
    for plain, policy in pairs:
        row: dict[str, Any] = {}
        for key, field_name in (("cpu", "proxy_cpu_us"), ("p50", "p50_us"), ("p99", "p99_us"), ("rps", "rps")):
            ratios = [p[field_name] / b[field_name] for p, b in zip(policy.runs, plain.runs, strict=True)]
            row[key] = {
                "plain": median([b[field_name] for b in plain.runs]),
                "policy": median([p[field_name] for p in policy.runs]),
                "ratio": median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
            }
        added = [p["proxy_cpu_us"] - b["proxy_cpu_us"] for p, b in zip(policy.runs, plain.runs, strict=True)]
        row["added_cpu_us"] = median(added)
        row["added_cpu_us_reference"] = float("nan")
        if calibration is not None and len(calibration.runs) == len(added):
            row["added_cpu_us_reference"] = median(
                [a / c["proxy_cpu_us"] * REFERENCE_NGINX_PROXY_US for a, c in zip(added, calibration.runs, strict=True)]
            )
        row["errors"] = sum(r["errors"] for r in plain.runs + policy.runs)
        row["other_cores"] = max(r["other_cores"] for r in plain.runs + policy.runs)
        row["requests"] = sum(r["requests"] for r in policy.runs)
        out[policy.name.removeprefix("policy, ")] = row
    return out


def report_policy(
    args: argparse.Namespace, pairs: list[tuple[Scenario, Scenario]], calibration: Scenario | None
) -> None:
    print()
    print(
        f"Traffic Policy cost: the same tunnel without and with the five-rule policy ({', '.join(POLICY_ACTIONS)};\n"
        f"every rule runs, none answers), wrk -c{args.connections} with an Authorization header, {args.rounds} "
        "rounds alternating plain/policy; ratios policy/plain per round, then the median (min-max)"
    )
    print(
        f"{'tunnel':<15} {'CPU us/req plain':>16} {'policy':>7} {'x plain (min-max)':>19} {'+us/req':>8} {'(ref)':>6} "
        f"{'p50 ms plain':>12} {'policy':>7} {'x plain':>8} {'p99 ms plain':>12} {'policy':>7} {'x plain':>8} "
        f"{'req/s x plain':>13}"
    )
    for name, row in policy_summary(pairs, calibration).items():
        cpu, p50, p99, rps = row["cpu"], row["p50"], row["p99"], row["rps"]
        print(
            f"{name:<15} {cpu['plain']:16.1f} {cpu['policy']:7.1f} {cpu['ratio']:7.2f} "
            f"({cpu['ratio_min']:.2f}-{cpu['ratio_max']:.2f}) {row['added_cpu_us']:+8.1f} "
            f"{fmt(row['added_cpu_us_reference'], '+.0f'):>6} "
            f"{p50['plain'] / 1000:12.2f} {p50['policy'] / 1000:7.2f} {p50['ratio']:8.2f} "
            f"{p99['plain'] / 1000:12.2f} {p99['policy'] / 1000:7.2f} {p99['ratio']:8.2f} {rps['ratio']:13.2f}"
        )
        if row["errors"]:
            print(f"  {row['errors']} wrk errors or non-2xx answers ({name}): the policy refused requests?")
        if row["other_cores"] > NOISY_CORES:
            print(f"  disturbed: other work used up to {row['other_cores']:.2f} cores ({name})")
    print(
        "  CPU us/req: the agent's, all threads; +us/req: policy minus plain per round, then the median;\n"
        f"  (ref): that at the reference speed (x nginx-proxy's CPU in the same round x {REFERENCE_NGINX_PROXY_US:g} us).\n"
        "  With inspection on, each capture also stores the policy's trace (the capture writer's share)."
    )


# --- the run ------------------------------------------------------------------------------------


def check_tools() -> None:
    missing = [name for name, path in (("nginx", NGINX), ("wrk", WRK)) if not path]
    if missing:
        print(f"missing: {', '.join(missing)}. Install them with:\n    {INSTALL_HINT}", file=sys.stderr)
        raise SystemExit(2)
    if not shutil.which("taskset"):
        print("note: taskset not found (util-linux); running unpinned", file=sys.stderr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--only",
        choices=("wrk", "two-write", "policy"),
        help="run only these rows: 'wrk' (nginx upstream: direct, inspected, uninspected, nginx-proxy, upload),\n"
        "'two-write' (an http.server service, new connection per request, direct and inspected;\n"
        "needs neither nginx nor wrk) or 'policy' (the same tunnel without and with a five-rule\n"
        "Traffic Policy, inspection off and on). Default: all",
    )
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--duration", type=float, default=5, help="seconds of load per measurement (default 5)")
    p.add_argument("--warmup", type=float, default=1, help="unmeasured seconds of load before each (default 1)")
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help=f"re-measure a window during which other work used > {NOISY_CORES} cores (default 1)",
    )
    p.add_argument("--connections", type=int, default=32, help="wrk keep-alive connections (default 32)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--body-bytes", type=int, default=256, help="size of the response body served (default 256)")
    p.add_argument(
        "--two-write-requests",
        type=int,
        default=500,
        help="two-write row: requests per window, each on a new connection (default 500)",
    )
    p.add_argument(
        "--two-write-concurrency",
        default="1,4",
        help="two-write row: client processes per window, comma-separated (default 1,4)",
    )
    p.add_argument("--wrk-cpus", default="0", help="taskset CPU list for wrk ('' = unpinned; default 0)")
    p.add_argument(
        "--nginx-cpus",
        default="0",
        help="taskset CPU list for the nginx upstream and the two-write service (default 0)",
    )
    p.add_argument(
        "--agent-cpus", default="1", help="taskset CPU list for the proxies under test: agents, nginx proxy (default 1)"
    )
    p.add_argument("--upload-mib", type=int, default=1024, help="size of the upload check in MiB (0 = skip)")
    p.add_argument(
        "--db-size", type=int, help="AGENT_INSPECT_DB_SIZE for the inspected agent, bytes (default: the agent's)"
    )
    p.add_argument("--no-nginx-proxy", action="store_true", help="skip the nginx reverse-proxy calibration")
    p.add_argument("--json", type=Path, help="also write every measurement to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, databases, logs)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--discard-server", type=int, help=argparse.SUPPRESS)
    p.add_argument("--two-write-server", type=int, help=argparse.SUPPRESS)
    p.add_argument("--two-write-client", type=int, nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.concurrencies = [int(c) for c in args.two_write_concurrency.split(",") if c.strip()]
    if any(c < 1 for c in args.concurrencies) or args.two_write_requests < 1:
        p.error("--two-write-concurrency and --two-write-requests must be positive")
    return args


def add_tunnel(
    agent: Agent, name: str, port: int = 0, *, addr: str = "", inspect: bool = True, traffic_policy: str = ""
) -> int:
    """Start an HTTP tunnel to 127.0.0.1:port (or `addr`) on a running agent (inspected unless
    told, with the Traffic Policy given as YAML text, if any); its public port. RuntimeError with
    the API's answer when refused."""
    definition: dict[str, Any] = {
        "name": name,
        "proto": "http",
        "addr": addr or f"127.0.0.1:{port}",
        "inspect": inspect,
    }
    if traffic_policy:
        definition["traffic_policy"] = traffic_policy
    request = urllib.request.Request(
        agent.api + "/tunnels",
        data=json.dumps(definition).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(json.loads(response.read())["public_url"].rsplit(":", 1)[1])
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"adding tunnel {name}: {error.code} {error.read()[:2000]!r}") from None


def measure_with_retries(
    args: argparse.Namespace, rnd: int, measure_once: Any, show: Any, runs: list[dict[str, Any]]
) -> None:
    """A window disturbed by other work on the machine is measured again (--retries times at most);
    the least disturbed attempt counts."""
    attempts: list[dict[str, Any]] = []
    for attempt in range(args.retries + 1):
        r = measure_once()
        attempts.append(r)
        show(rnd, r, retry=attempt > 0)
        if r["other_cores"] <= NOISY_CORES:
            break
    runs.append(min(attempts, key=lambda a: a["other_cores"]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.discard_server:
        discard_server(args.discard_server)
        return 0
    if args.two_write_server:
        two_write_server(args.two_write_server, args.body_bytes)
        return 0
    if args.two_write_client:
        two_write_client(*args.two_write_client)
        return 0
    run_wrk_rows = args.only in (None, "wrk")
    run_two_write = args.only in (None, "two-write")
    run_policy = args.only in (None, "policy")
    if run_wrk_rows or run_policy:
        check_tools()
    if (os.cpu_count() or 1) < 2:
        print("note: fewer than 2 CPUs; running unpinned", file=sys.stderr)
        args.wrk_cpus = args.nginx_cpus = args.agent_cpus = ""
    tmp = Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    tmp.chmod(0o755)  # the nginx worker may run as nobody: it must reach the static file
    upstream: Nginx | None = None
    proxy: Nginx | None = None
    discard: subprocess.Popen[bytes] | None = None
    two_write: subprocess.Popen[bytes] | None = None
    agents: list[Agent] = []
    scenarios: list[Scenario] = []
    tw_scenarios: list[TwoWriteScenario] = []
    policy_pairs: list[tuple[Scenario, Scenario]] = []  # (plain, policy) on one agent
    calibration: Scenario | None = None  # nginx as a proxy, measured in every round
    inspected: Agent | None = None
    started = time.monotonic()
    try:
        db_env = {"AGENT_INSPECT_DB_SIZE": str(args.db_size)} if args.db_size else {}
        if run_wrk_rows or run_policy:
            # Upstream: nginx serving one small static file.
            www = tmp / "www"
            www.mkdir()
            (www / "index.html").write_bytes((b"benchmark payload " * 64)[: args.body_bytes - 1] + b"\n")
            for path in (www, www / "index.html"):
                path.chmod(0o755 if path.is_dir() else 0o644)
            up_port = free_port()
            upstream = Nginx(
                nginx_conf(tmp, "upstream", f"server {{ listen 127.0.0.1:{up_port}; root {www}; }}"),
                up_port,
                args.nginx_cpus,
                "nginx upstream",
            )
            if not args.no_nginx_proxy:
                px_port = free_port()
                proxy = Nginx(
                    nginx_conf(
                        tmp,
                        "proxy",
                        f"upstream backend {{ server 127.0.0.1:{up_port}; keepalive 64; }}\n"
                        f"    server {{ listen 127.0.0.1:{px_port}; location / {{ proxy_pass http://backend;"
                        ' proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering on; } }',
                    ),
                    px_port,
                    args.agent_cpus,
                    "nginx proxy",
                )
            inspected = Agent("inspected", tmp / "agent-inspected", up_port, True, args.agent_cpus, db_env)
            uninspected = Agent("uninspected", tmp / "agent-uninspected", up_port, False, args.agent_cpus)
            agents = [inspected, uninspected]
            for agent in agents:
                agent.start()
            script = tmp / "report.lua"
            script.write_text(WRK_SCRIPT)

            # Sanity: every path answers 200 with the file.
            expected = (www / "index.html").read_bytes()
            for port in [up_port, inspected.port(), uninspected.port()] + ([proxy.port] if proxy else []):
                status, body = http("GET", f"http://127.0.0.1:{port}/index.html")
                if status != 200 or body != expected:
                    raise RuntimeError(f"127.0.0.1:{port} answered {status} with {len(body)} bytes")

            if run_wrk_rows:
                scenarios = [
                    Scenario("direct", up_port),
                    Scenario("inspected", inspected.port(), agent=inspected),
                    Scenario("uninspected", uninspected.port(), agent=uninspected),
                ]
            if proxy is not None:
                calibration = Scenario("nginx-proxy", proxy.port, proxy_pid=proxy.pid)
                if run_wrk_rows:
                    scenarios.append(calibration)
            if run_policy:
                policy_pairs = start_policy_pairs(tmp, [uninspected, inspected], up_port, expected)
            print(
                f"nginx upstream pid {upstream.pid} on :{up_port}; agents: inspected pid {inspected.pid} "
                f"({inspected.url}), uninspected pid {uninspected.pid} ({uninspected.url})"
                + (f"; nginx proxy pid {proxy.pid}" if proxy else ""),
                flush=True,
            )
            print(
                f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s (warm-up {args.warmup:g}s), "
                f"{args.body_bytes}-byte file; pinning: wrk={args.wrk_cpus or '-'} nginx={args.nginx_cpus or '-'} "
                f"agent={args.agent_cpus or '-'}; {args.rounds} rounds",
                flush=True,
            )

        if run_two_write:
            # A runserver-like service (head and body in two writes); through the inspected agent when
            # there is one (a second tunnel on it), else through an agent of its own.
            tw_port = free_port()
            two_write = subprocess.Popen(
                [
                    *taskset(args.nginx_cpus),
                    sys.executable,
                    __file__,
                    "--two-write-server",
                    str(tw_port),
                    "--body-bytes",
                    str(args.body_bytes),
                ]
            )
            wait_port(tw_port, two_write, "two-write service")
            if inspected is not None:
                tw_agent, tw_tunnel_port = inspected, add_tunnel(inspected, "two-write", tw_port)
            else:
                tw_agent = Agent("two-write", tmp / "agent-two-write", tw_port, True, args.agent_cpus, db_env)
                agents.append(tw_agent)
                tw_agent.start()
                tw_tunnel_port = tw_agent.port()
            for port in (tw_port, tw_tunnel_port):
                status, body = http("GET", f"http://127.0.0.1:{port}/page")
                if status != 200 or len(body) != args.body_bytes:
                    raise RuntimeError(f"127.0.0.1:{port} answered {status} with {len(body)} bytes")
            for conc in args.concurrencies:
                tw_scenarios.append(TwoWriteScenario("direct", tw_port, conc))
                tw_scenarios.append(TwoWriteScenario("inspected", tw_tunnel_port, conc, agent=tw_agent))
            print(
                f"two-write service pid {two_write.pid} on :{tw_port}, through agent pid {tw_agent.pid} "
                f"(:{tw_tunnel_port}, inspection on); {args.two_write_requests} requests per window on new "
                f"connections, concurrency {args.two_write_concurrency}; pinning: clients={args.wrk_cpus or '-'} "
                f"service={args.nginx_cpus or '-'} agent={args.agent_cpus or '-'}; {args.rounds} rounds",
                flush=True,
            )

        for rnd in range(1, args.rounds + 1):
            # The policy pairs alternate plain/policy, in turn first, so neither always follows the other.
            paired = [s for pair in policy_pairs for s in (pair if rnd % 2 else pair[::-1])]
            if not run_wrk_rows and calibration is not None:
                paired.append(calibration)  # --only policy: the calibration, for figures at reference speed
            for scenario in scenarios + paired:
                assert upstream is not None
                measure_with_retries(
                    args,
                    rnd,
                    lambda scenario=scenario: measure(args, scenario, upstream, script),
                    lambda rnd, r, retry, scenario=scenario: print_window(rnd, scenario.name, r, retry=retry),
                    scenario.runs,
                )
            for tw in tw_scenarios:
                assert two_write is not None
                measure_with_retries(
                    args,
                    rnd,
                    lambda tw=tw: measure_two_write(args, tw, two_write.pid),
                    lambda rnd, r, retry, tw=tw: print_two_write_window(rnd, tw, r, retry=retry),
                    tw.runs,
                )

        api_rows = api_ok = 0
        upload_result = None
        dropped: list[str] = []
        if inspected is not None and run_wrk_rows:
            # Captures persisted, as the API shows them.
            _, body = http("GET", inspected.api + "/requests/http?limit=10000")
            listed = json.loads(body)["requests"]
            api_rows = len(listed)
            api_ok = sum(1 for c in listed if c.get("response") and c["response"].get("status_code") == 200)

            if args.upload_mib > 0:
                discard_port = free_port()
                discard = subprocess.Popen([sys.executable, __file__, "--discard-server", str(discard_port)])
                wait_port(discard_port, discard, "discard server")
                upload_port = add_tunnel(inspected, "upload", discard_port)
                print(
                    f"upload: {args.upload_mib} MiB through the inspected agent (http://127.0.0.1:{upload_port})...",
                    flush=True,
                )
                upload_result = upload(upload_port, args.upload_mib << 20, inspected.pid, timeout=600)
                wait_idle(inspected.pid)
                upload_result["capture"] = inspected.last_capture("upload")
            dropped = inspected.dropped_warnings()

        if scenarios:
            report(args, scenarios, api_rows, api_ok, upload_result, dropped)
        if policy_pairs:
            report_policy(args, policy_pairs, calibration)
        if tw_scenarios:
            report_two_write(args, tw_scenarios)
            print(
                f"  target: the tunnel adds < {TARGET_TWO_WRITE_ADDED_MS:g} ms to the median (TCP_QUICKACK on the "
                "agent's pooled upstream connections; it was ~40 ms): "
                + ", ".join(
                    f"c{c} {['MISSED', 'MET'][ok]}"
                    for c, ok in zip(args.concurrencies, two_write_verdicts(tw_scenarios), strict=True)
                )
            )
        print(f"total {time.monotonic() - started:.0f}s")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "scenarios": {s.name: s.runs for s in scenarios},
                        "api_rows": api_rows,
                        "upload": upload_result,
                        "dropped_warnings": dropped,
                        "policy": {
                            "summary": policy_summary(policy_pairs, calibration),
                            "windows": {s.name: s.runs for pair in policy_pairs for s in pair},
                        },
                        "two_write": {
                            "summary": two_write_summary(tw_scenarios) if tw_scenarios else {},
                            "windows": {
                                f"{s.name}-c{s.concurrency}": [
                                    {k: v for k, v in r.items() if k != "latencies_us"} for r in s.runs
                                ]
                                for s in tw_scenarios
                            },
                        },
                    },
                    indent=2,
                )
            )
        met = True
        if scenarios:
            met = targets_met(scenarios, api_rows, upload_result)
        if tw_scenarios:
            met = met and all(two_write_verdicts(tw_scenarios))
        return 1 if args.strict and not met else 0
    finally:
        for agent in agents:
            stop_process(agent.proc, signal.SIGTERM, timeout=30)
        stop_process(discard, signal.SIGTERM, timeout=5)
        stop_process(two_write, signal.SIGTERM, timeout=5)
        if proxy is not None:
            proxy.stop()
        if upstream is not None:
            upstream.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def print_window(rnd: int, name: str, r: dict[str, Any], *, retry: bool) -> None:
    extra = ""
    if "proxy_cpu_us" in r:
        extra += f" proxy {r['proxy_cpu_us']:6.1f} us/req (loop {r['loop_cpu_us']:.1f}, {r['proxy_cores']:.2f} cores)"
    if "stored_rows" in r:
        extra += f" stored {r['stored_rows']} rows ({r['stored_bytes'] / 1e6:.0f} MB)"
    if r["other_cores"] > NOISY_CORES:
        extra += f" [other load {r['other_cores']:.2f} cores]"
    if r["errors"]:
        extra += f" ERRORS {r['errors']}"
    label = f"{name} (again)" if retry else name
    print(
        f"round {rnd} {label:<20} {r['rps']:9.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms"
        f"  p99 {r['p99_us'] / 1000:6.2f} ms  upstream {r['upstream_cpu_us']:5.1f} us/req{extra}",
        flush=True,
    )


def summary(scenarios: list[Scenario]) -> dict[str, dict[str, float]]:
    direct = next(s for s in scenarios if s.name == "direct")
    calibration = next((s for s in scenarios if s.name == "nginx-proxy"), None)
    out = {}
    for s in scenarios:
        ratios = [r["rps"] / d["rps"] for r, d in zip(s.runs, direct.runs, strict=True)]
        cpu = [r["proxy_cpu_us"] for r in s.runs if "proxy_cpu_us" in r]
        # CPU per request relative to nginx-as-a-proxy's in the same round: a machine-speed-neutral figure.
        vs_nginx = (
            [r["proxy_cpu_us"] / c["proxy_cpu_us"] for r, c in zip(s.runs, calibration.runs, strict=True)]
            if calibration is not None and cpu
            else []
        )
        out[s.name] = {
            "rps": median([r["rps"] for r in s.runs]),
            "ratio": median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "p50_ms": median([r["p50_us"] / 1000 for r in s.runs]),
            "p99_ms": median([r["p99_us"] / 1000 for r in s.runs]),
            "cpu_us": median(cpu),
            "loop_cpu_us": median([r["loop_cpu_us"] for r in s.runs if "loop_cpu_us" in r]),
            "cpu_vs_nginx": median(vs_nginx),
            "cores": median([r["proxy_cores"] for r in s.runs if "proxy_cores" in r]),
            "upstream_cpu_us": median([r["upstream_cpu_us"] for r in s.runs]),
            "wrk_cpu_us": median([r["wrk_cpu_us"] for r in s.runs]),
            "other_cores": max(r["other_cores"] for r in s.runs),
            "errors": sum(r["errors"] for r in s.runs),
            "requests": sum(r["requests"] for r in s.runs),
            "stored": sum(r.get("stored_rows", 0) for r in s.runs),
        }
    return out


def verdicts(s: dict[str, dict[str, float]], api_rows: int, upload_result: dict[str, Any] | None) -> list[bool]:
    ins, uni = s["inspected"], s["uninspected"]
    out = [
        uni["ratio"] >= TARGET_UNINSPECTED_RATIO,
        ins["ratio"] >= TARGET_INSPECTED_RATIO and api_rows > 0,
        ins["cpu_us"] <= TARGET_INSPECTED_CPU_US,
    ]
    if upload_result is not None:
        out.append(
            upload_result["rss_growth_mb"] < TARGET_UPLOAD_GROWTH_MB and upload_result["status"].endswith(" 200 OK")
        )
    return out


def targets_met(scenarios: list[Scenario], api_rows: int, upload_result: dict[str, Any] | None) -> bool:
    return all(verdicts(summary(scenarios), api_rows, upload_result))


def fmt(value: float, spec: str = ".1f") -> str:
    return "-" if value != value else format(value, spec)  # NaN: not measured for this scenario


def report(
    args: argparse.Namespace,
    scenarios: list[Scenario],
    api_rows: int,
    api_ok: int,
    upload_result: dict[str, Any] | None,
    dropped: list[str],
) -> None:
    s = summary(scenarios)
    print()
    print(f"medians over {args.rounds} rounds of {args.duration:g}s (ratios are per round, then the median)")
    print(
        f"{'scenario':<12} {'req/s':>8} {'x direct':>8} {'(min-max)':>10} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'CPU us/req':>10} {'loop us':>8} {'x nginx':>8} {'cores':>6} {'upstream':>8} {'wrk':>6}"
    )
    for name, row in s.items():
        print(
            f"{name:<12} {row['rps']:8.0f} {row['ratio']:8.2f} {row['ratio_min']:.2f}-{row['ratio_max']:.2f} "
            f"{row['p50_ms']:7.2f} {row['p99_ms']:7.2f} {fmt(row['cpu_us']):>10} {fmt(row['loop_cpu_us']):>8} "
            f"{fmt(row['cpu_vs_nginx'], '.2f'):>8} {fmt(row['cores'], '.2f'):>6} {row['upstream_cpu_us']:8.1f} "
            f"{row['wrk_cpu_us']:6.1f}"
        )
    print(
        "  CPU us/req: the proxy's (agent: all threads; loop us: its event-loop thread alone); x nginx: that CPU\n"
        "  relative to nginx-as-a-proxy's in the same round; cores: how busy the proxy was during the window\n"
        "  (well below 1.0: the proxy was not the bottleneck); upstream, wrk: their CPU us/req"
    )
    noisy = [f"{name} {row['other_cores']:.2f}" for name, row in s.items() if row["other_cores"] > NOISY_CORES]
    if noisy:
        print(f"  disturbed: other work used up to {', '.join(noisy)} cores during some windows")
    errors = {name: row["errors"] for name, row in s.items() if row["errors"]}
    if errors:
        print(f"  wrk errors (connect/read/write/status/timeout): {errors}")
    ins, uni = s["inspected"], s["uninspected"]
    print(
        f"captures: {ins['stored']} rows stored in SQLite for {ins['requests']} requests counted by wrk over the "
        f"inspected runs (wrk leaves up to {args.connections} in flight uncounted; past the agent's capture size "
        f"budget, AGENT_INSPECT_DB_SIZE, the oldest rows are evicted); GET /api/requests/http?limit=10000 "
        f"listed {api_rows} ({api_ok} with a 200 response); "
        + (f"{len(dropped)} 'capture queue full' warnings, last: {dropped[-1]}" if dropped else "no capture dropped")
    )

    ok = verdicts(s, api_rows, upload_result)
    word = ["MISSED", "MET"]
    print()
    print("targets:")
    print(f"  inspection off >= {TARGET_UNINSPECTED_RATIO:.2f} x direct: {uni['ratio']:.2f}  {word[ok[0]]}")
    print(
        f"  inspection on  >= {TARGET_INSPECTED_RATIO:.2f} x direct with captures persisted: {ins['ratio']:.2f}, "
        f"{api_rows} listed  {word[ok[1]]}"
    )
    scaled = ""
    if ins["cpu_vs_nginx"] == ins["cpu_vs_nginx"]:
        scaled = f" (x{ins['cpu_vs_nginx']:.1f} nginx-proxy's; {ins['cpu_vs_nginx'] * REFERENCE_NGINX_PROXY_US:.0f} us at reference speed)"
    print(
        f"  inspection on  <= {TARGET_INSPECTED_CPU_US:.0f} us agent CPU/request: {ins['cpu_us']:.1f}{scaled}  {word[ok[2]]}"
    )
    if upload_result is not None:
        u = upload_result
        print(
            f"  {u['bytes'] >> 20} MiB upload, agent RSS growth < {TARGET_UPLOAD_GROWTH_MB:.0f} MB: "
            f"{u['rss_growth_mb']:.1f} MB ({u['rss_before_mb']:.0f} -> {u['rss_peak_mb']:.0f} MB peak"
            f"{', VmHWM reset' if u['hwm_reset'] else ', sampled VmRSS only'}); {u['status']!r}, upstream read "
            f"{u['received_by_upstream']} bytes in {u['seconds']:.1f}s ({u['mb_per_s']:.0f} MB/s, agent CPU "
            f"{u['agent_cpu_s']:.1f}s)  {word[ok[3]]}"
        )
        if u.get("capture"):
            size, status, stored = u["capture"]
            print(f"    its capture: request_size {size} (body + head), status {status}, {stored} bytes kept")
        else:
            print("    its capture: NOT FOUND in the database")


NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
WRK = shutil.which("wrk")

if __name__ == "__main__":
    sys.exit(main())
