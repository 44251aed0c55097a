"""Load generators of the real-traffic benchmark: wrk for keep-alive load, Python processes for
one connection per request.

Rules of this module:
- Keep-alive load is wrk (a C client, a few us of CPU per request, so never the bottleneck); its
  Lua `done()` hook prints one `WRKJSON {...}` line with exact counts and latency percentiles (us).
- One connection per request is what curl, a browser's first visit and webhook senders do:
  connect, send the request, read the head and Content-Length bytes of body, close. Each client is
  its own process (`python bench/clients.py fresh ...`, no GIL shared between clients); latency runs
  from before connect() to the last byte. Webhooks are 1 KB JSON POSTs with `Connection: close`
  (RFC 9112 section 9.6), as Stripe's and GitHub's senders send them.
- Client processes warm up, print "ready", wait for "go" on stdin, so all start together and the
  window's wall time gives requests per second.
- Percentiles are nearest-rank over every latency of the window.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proxy_bench import WRK, WRK_SCRIPT, one_request, taskset

HERE = Path(__file__).resolve().parent
WEBHOOK = json.dumps(
    {"id": "evt_bench", "type": "invoice.paid", "data": {"object": {"note": "x" * 920, "amount": 4200}}}
).encode()[:1024]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100); NaN for no values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)] if ordered else float("nan")


def write_wrk_script(directory: Path) -> Path:
    """wrk's Lua report script in `directory`; its path."""
    script = directory / "report.lua"
    script.write_text(WRK_SCRIPT)
    return script


def run_wrk(url: str, connections: int, seconds: int, script: Path, cpus: str) -> dict[str, Any]:
    """wrk -t1 -cN -dSs on `url` (keep-alive GETs): the WRKJSON counts plus rps, errors and
    MB/s (response bytes, headers included). Raises RuntimeError when wrk prints no report."""
    assert WRK is not None, "the caller checks that wrk is installed"
    command = [*taskset(cpus), WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
            seconds_run = result["duration_us"] / 1e6
            result["rps"] = result["requests"] / seconds_run
            result["mb_per_s"] = result["bytes"] / seconds_run / 1e6
            result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
            return result
    raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def request_bytes(host: str, port: int, method: str, path: str, close: bool) -> bytes:
    """The raw request a fresh-connection client sends: GET, or POST of the 1 KB JSON webhook."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: bench-client\r\nAccept: */*\r\n"
    if close:
        head += "Connection: close\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(WEBHOOK)}\r\n"
        return head.encode() + b"\r\n" + WEBHOOK
    return head.encode() + b"\r\n"


def fresh_client(host: str, port: int, count: int, warmup: int, method: str, close: bool) -> None:
    """Client process body: `warmup` requests, "ready", wait for "go", `count` requests each on a
    new connection; prints {"latencies_us": [...], "errors": n} as JSON."""
    request = request_bytes(host, port, method, "/hook" if method == "POST" else "/page", close)
    for _ in range(warmup):
        one_request(host, port, request)
    print("ready", flush=True)
    sys.stdin.readline()
    latencies: list[int] = []
    errors = 0
    for _ in range(count):
        try:
            us, ok = one_request(host, port, request)
        except OSError:
            errors += 1
            continue
        latencies.append(us)
        errors += not ok
    print(json.dumps({"latencies_us": latencies, "errors": errors}), flush=True)


def run_fresh(
    host: str, port: int, *, requests: int, concurrency: int, method: str, close: bool, cpus: str, warmup: int = 10
) -> dict[str, Any]:
    """`requests` requests split over `concurrency` client processes started together:
    {"latencies_us", "errors", "rps", "p50_ms", "p99_ms", "seconds"}. Raises RuntimeError when a
    client fails."""
    per_client = max(1, requests // concurrency)
    command = [
        *taskset(cpus),
        sys.executable,
        str(HERE / "clients.py"),
        "fresh",
        host,
        str(port),
        str(per_client),
        str(warmup),
        method,
        "close" if close else "keep",
    ]
    procs = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(concurrency)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"fresh-connection client to {host}:{port} failed to warm up")
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=300)[0] for proc in procs]
        seconds = time.perf_counter() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    latencies: list[int] = []
    errors = 0
    for out in outputs:
        result = json.loads(out.strip().splitlines()[-1])
        latencies += result["latencies_us"]
        errors += result["errors"]
    return {
        "latencies_us": latencies,
        "errors": errors,
        "seconds": seconds,
        "rps": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 50) / 1000,
        "p99_ms": percentile(latencies, 99) / 1000,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["fresh"]:
        host, port, count, warmup, method, close = sys.argv[2:8]
        fresh_client(host, int(port), int(count), int(warmup), method, close == "close")
    else:
        sys.exit("usage: clients.py fresh HOST PORT COUNT WARMUP GET|POST close|keep")
