"""The benchmark of the traffic people really send through the agent (`make bench`; issue 11).

Rules of this run (all on this machine, everything stopped at the end):
- Services: nginx static (256-byte page, 1 MiB file); a two-write Python http.server (head and body
  in two writes, Nagle on, like Django's runserver: proxy_bench.py's hidden mode); a uvicorn ASGI
  app (services.app); a Node-style service on `::1` only (services.py ipv6), tunnelled as
  `localhost:PORT`, when the machine has IPv6 loopback.
- Paths to each: direct; an agent with inspection off; an agent with inspection on (captures
  persisted to its SQLite database, default capture budget, so eviction is its steady state);
  and nginx as a reverse proxy to nginx (the calibration: what a C proxy hop costs here).
- Clients (clients.py): wrk keep-alive c=32 and c=1 (256-byte page), wrk c=4 on the 1 MiB file,
  wrk c=32 on the uvicorn app; one new connection per request (c=1, every service); 1 KB JSON
  webhook POSTs with `Connection: close` at c=4 (uvicorn); one 1 GiB streamed upload
  (proxy_bench.upload: RSS sampled from /proc every 20 ms).
- Alternation: every round runs every block in the same order, and in each block the paths one
  after the other (direct, off, on, nginx-proxy); ratios are taken within a round, the median
  over rounds is reported.
- Agent CPU per request: utime+stime of the agent (all threads) from /proc/<pid>/stat, from the
  window's start until the agent is idle again, over the requests served; the same for nginx-proxy.
- Pinning: clients and services on CPU 0; the proxy hop on CPU 1: nginx-as-a-proxy's one process,
  and the agents' event-loop thread (`--pin-agent loop`, the default). The agent's capture writer
  thread, made when the agent starts, is left to the scheduler: the capture writer off the loop's
  core is issue 11's lever, and on any machine with a spare core that is where it runs. Its CPU
  counts in the agent's CPU per request all the same. `--pin-agent process` pins the whole agent
  to CPU 1 (the writer then shares the loop's core).
- Then the inspector's view (probes.py): capture visible in the API, WebSocket push, and an
  agent seeded with 100,000 captures for the API list of 50 and the inspector's first page.
- Results go to bench/results/latest.json (no per-request latencies) and a Markdown summary is
  printed, the targets (targets.py) with MET/MISSED. The machine's load average before and after
  is part of the result: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clients import run_fresh, run_wrk, write_wrk_script
from probes import api_visibility, page_latency, probe_get, seed_captures, ws_push
from proxy_bench import (
    CLK_TCK,
    INSTALL_HINT,
    NGINX,
    WRK,
    Agent,
    Nginx,
    add_tunnel,
    busy_ticks,
    cpu_ticks,
    free_port,
    nginx_conf,
    process_tree,
    static_upstream,
    status_kb,
    stop_process,
    upload,
    wait_idle,
)
from services import ipv6_available
from targets import Target, table

HERE = Path(__file__).resolve().parent
MIB = 1 << 20
PATHS = ("direct", "off", "on", "nginx-proxy")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def wait_listening(host: str, port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 20) -> None:
    """Wait until host:port accepts a connection; RuntimeError when the process exits or time runs out."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {host}:{port}")


def measured(
    pid: int | None, run: Callable[[], dict[str, Any]], count: Callable[[dict[str, Any]], int]
) -> dict[str, Any]:
    """Run one window; add the proxy's CPU per request (`proxy_cpu_us`, until it is idle again) and
    the whole machine's busy cores during it (`machine_cores`)."""
    if pid is not None:
        wait_idle(pid)
    cpu0 = cpu_ticks(pid) if pid is not None else 0
    busy0, t0 = busy_ticks(), time.perf_counter()
    result = run()
    busy1, t1 = busy_ticks(), time.perf_counter()
    result["machine_cores"] = (busy1 - busy0) / CLK_TCK / (t1 - t0)
    if pid is not None:
        cpu1 = wait_idle(pid)
        result["proxy_cpu_us"] = (cpu1 - cpu0) / CLK_TCK * 1e6 / max(count(result), 1)
    return result


def med(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 round, 2 s windows, 256 MiB upload, fewer probes (~3 min)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3; --quick 1)")
    p.add_argument("--seconds", type=int, default=3, help="seconds of wrk load per window (default 3; --quick 2)")
    p.add_argument("--fresh-requests", type=int, default=300, help="new-connection requests per window (default 300)")
    p.add_argument("--upload-mib", type=int, default=1024, help="upload size in MiB (default 1024; --quick 256)")
    p.add_argument("--probes", type=int, default=100, help="capture-visibility and push probes (default 100)")
    p.add_argument("--seed", type=int, default=100_000, help="stored captures for the list pages (default 100,000)")
    p.add_argument("--json", type=Path, default=HERE / "results" / "latest.json", help="results file")
    p.add_argument("--client-cpus", default="0", help="taskset CPUs of clients and services ('' = unpinned)")
    p.add_argument("--proxy-cpus", default="1", help="taskset CPUs of the agents and nginx-proxy ('' = unpinned)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument(
        "--pin-agent",
        choices=("loop", "process"),
        default="loop",
        help="pin the agents' event-loop thread to --proxy-cpus (default; the capture writer thread runs "
        "where the scheduler puts it) or the whole process",
    )
    p.add_argument("--max-workers", type=int, default=2, help="the workers block: 1..N engine processes (0: skip)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.upload_mib, args.probes = 1, 2, 256, 50
        args.fresh_requests = min(args.fresh_requests, 150)
    if (os.cpu_count() or 1) < 2:
        args.client_cpus = args.proxy_cpus = ""
    return args


class Run:
    """The processes of one benchmark run and what they measured."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.procs: list[subprocess.Popen[Any]] = []
        self.nginxes: list[Nginx] = []
        self.agents: list[Agent] = []
        self.ports: dict[str, dict[str, tuple[str, int]]] = {}  # service -> path -> (host, port)
        self.rounds: list[dict[str, Any]] = []
        self.out: dict[str, Any] = {}

    # --- start-up ---------------------------------------------------------------------------

    def spawn(self, command: list[str], host: str, port: int, what: str) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(
            [*pin(self.args.client_cpus), *command], cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.procs.append(proc)
        wait_listening(host, port, proc, what)
        return proc

    def start(self) -> None:
        a, tmp = self.args, self.tmp
        from services import PAGE

        upstream = static_upstream(tmp, a.client_cpus, PAGE)
        self.nginxes.append(upstream)
        up = upstream.port
        px = free_port()
        proxy = Nginx(
            nginx_conf(
                tmp,
                "proxy",
                f"upstream backend {{ server 127.0.0.1:{up}; keepalive 64; }}\n"
                f"    server {{ listen 127.0.0.1:{px}; location / {{ proxy_pass http://backend;"
                ' proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering on; } }',
            ),
            px,
            a.proxy_cpus,
            "nginx proxy",
        )
        self.nginxes.append(proxy)
        self.proxy_pid = proxy.pid
        tw, uv, v6, discard = free_port(), free_port(), free_port(), free_port()
        py = sys.executable
        self.spawn([py, "proxy_bench.py", "--two-write-server", str(tw)], "127.0.0.1", tw, "two-write service")
        self.spawn(
            [py, "-m", "uvicorn", "services:app", "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(uv),
             "--no-access-log", "--log-level", "warning"],
            "127.0.0.1", uv, "uvicorn",
        )  # fmt: skip
        self.spawn([py, "proxy_bench.py", "--discard-server", str(discard)], "127.0.0.1", discard, "discard server")
        services: dict[str, tuple[str, int, str]] = {
            "nginx": ("127.0.0.1", up, f"127.0.0.1:{up}"),
            "two-write": ("127.0.0.1", tw, f"127.0.0.1:{tw}"),
            "uvicorn": ("127.0.0.1", uv, f"127.0.0.1:{uv}"),
        }
        if ipv6_available():
            self.spawn([py, "services.py", "ipv6", str(v6)], "::1", v6, "::1 service")
            services["node-style ::1"] = ("::1", v6, f"localhost:{v6}")
        loop_only = a.pin_agent == "loop"
        self.off = Agent("off", tmp / "agent-off", up, False, a.proxy_cpus, loop_only=loop_only)
        self.on = Agent("on", tmp / "agent-on", up, True, a.proxy_cpus, loop_only=loop_only)
        self.agents += [self.off, self.on]
        for agent in (self.off, self.on):
            agent.start()
        for name, (host, port, addr) in services.items():
            self.ports[name] = {"direct": (host, port)}
            for agent in (self.off, self.on):
                tunnel = (
                    agent.port()
                    if name == "nginx"
                    else add_tunnel(agent, name.split()[0], addr=addr, inspect=agent.inspect)
                )
                self.ports[name][agent.name] = ("127.0.0.1", tunnel)
        self.ports["nginx"]["nginx-proxy"] = ("127.0.0.1", px)
        self.upload_port = add_tunnel(self.on, "upload", discard, inspect=self.on.inspect)
        self.probe_port = add_tunnel(self.on, "probe", up, inspect=self.on.inspect)
        for agent in (self.off, self.on):
            wait_idle(agent.pid)
        self.rss_start = {agent.name: status_kb(agent.pid)["VmRSS"] / 1024 for agent in self.agents}
        self.script = write_wrk_script(tmp)

    def pid_of(self, path: str) -> int | None:
        return {"off": self.off.pid, "on": self.on.pid, "nginx-proxy": self.proxy_pid}.get(path)

    # --- one round --------------------------------------------------------------------------

    def wrk_block(self, service: str, urlpath: str, connections: int, paths: tuple[str, ...]) -> dict[str, Any]:
        out = {}
        for path in paths:
            host, port = self.ports[service][path]
            url = f"http://{host}:{port}{urlpath}"
            run_wrk(url, connections, 1, self.script, self.args.client_cpus)  # warm-up
            dropped = self.on.captures_dropped() if path == "on" else math.nan
            out[path] = measured(
                self.pid_of(path),
                functools.partial(run_wrk, url, connections, self.args.seconds, self.script, self.args.client_cpus),
                lambda r: int(r["requests"]),
            )
            if path == "on":
                out[path]["stored_rows"] = self.on.stored()[0]
                # Captures of this window's requests that were not kept (the sink's bounds).
                out[path]["captures_dropped"] = self.on.captures_dropped() - dropped
                out[path]["whole_share"] = self.on.whole_share(urlpath)
        return out

    def fresh_block(self, service: str, method: str, concurrency: int, close: bool) -> dict[str, Any]:
        out = {}
        for path in ("direct", "off", "on"):
            host, port = self.ports[service][path]
            r = measured(
                self.pid_of(path),
                functools.partial(
                    run_fresh, host, port, requests=self.args.fresh_requests, concurrency=concurrency, method=method,
                    close=close, cpus=self.args.client_cpus,
                ),
                lambda r: len(r["latencies_us"]),
            )  # fmt: skip
            del r["latencies_us"]
            out[path] = r
        return out

    def round(self, n: int) -> None:
        r: dict[str, Any] = {"load_average": load_average()}
        step = lambda what: print(f"  round {n + 1}: {what}", flush=True)  # noqa: E731
        step("wrk keep-alive c=32, 256-byte page (nginx)")
        r["c32"] = self.wrk_block("nginx", "/index.html", 32, PATHS)
        step("wrk keep-alive c=1")
        r["c1"] = self.wrk_block("nginx", "/index.html", 1, PATHS)
        step("wrk c=4, 1 MiB file")
        r["1mib"] = self.wrk_block("nginx", "/1m.bin", 4, PATHS)
        step("wrk keep-alive c=32, uvicorn")
        r["uvicorn_c32"] = self.wrk_block("uvicorn", "/", 32, ("direct", "off", "on"))
        r["fresh"] = {}
        for service in self.ports:
            step(f"one connection per request, {service}")
            r["fresh"][service] = self.fresh_block(service, "GET", 1, close=False)
        step("1 KB JSON webhooks, Connection: close, c=4 (uvicorn)")
        r["webhooks"] = self.fresh_block("uvicorn", "POST", 4, close=True)
        self.rounds.append(r)

    # --- after the rounds -------------------------------------------------------------------

    def inspector_view(self) -> None:
        a = self.args
        web = self.on.api.removeprefix("http://").removesuffix("/api")
        print("  capture visible in the API / WebSocket push", flush=True)
        self.out["api_visible"] = api_visibility(web, self.probe_port, "probe", a.probes, "api")
        self.out["ws_push"] = ws_push(web, self.probe_port, a.probes, "ws")
        for key in ("api_visible", "ws_push"):
            self.out[key]["ms"] = [round(x, 3) for x in self.out[key]["ms"]]
        if a.upload_mib:
            print(f"  upload of {a.upload_mib} MiB through the inspected tunnel", flush=True)
            self.out["upload"] = upload(self.upload_port, a.upload_mib * MIB, self.on.pid, timeout=600)
        self.out["rss_mb"] = {
            agent.name: {
                "start": self.rss_start[agent.name],
                "end": status_kb(agent.pid)["VmRSS"] / 1024,
                "peak": status_kb(agent.pid)["VmHWM"] / 1024,
            }
            for agent in self.agents
        }
        for agent in self.agents:
            self.out.setdefault("capture_queue_full_warnings", {})[agent.name] = len(agent.dropped_warnings())

    def workers_block(self) -> None:
        """Throughput with 1..max_workers engine processes (`--workers N`, SO_REUSEPORT), inspection
        off and on, wrk keep-alive c=32 to the nginx page. These agents are not pinned (the point is
        to use more than one core); wrk and the services stay on the client CPUs, so on this 2-core
        machine the workers share a core with the client and the service."""
        a = self.args
        if a.max_workers < 1:
            return
        print(f"  workers 1..{a.max_workers}, wrk keep-alive c=32 (agents unpinned)", flush=True)
        for agent in (self.off, self.on):
            agent.stop()  # free their memory and CPU
        out: dict[str, Any] = {}
        for inspect in (False, True):
            for workers in range(1, a.max_workers + 1):
                name = f"w{workers}-{'on' if inspect else 'off'}"
                agent = Agent(name, self.tmp / f"agent-{name}", self.nginxes[0].port, inspect, "",
                              extra_args=["--workers", str(workers)])  # fmt: skip
                self.agents.append(agent)
                try:
                    agent.start()
                except RuntimeError as error:
                    out[name] = {"error": str(error).splitlines()[0]}
                    continue
                url = f"http://127.0.0.1:{agent.port()}/index.html"
                run_wrk(url, 32, 1, self.script, a.client_cpus)  # warm-up: every worker has accepted
                rows = []
                for _ in range(a.rounds):
                    rows.append(measured(
                        agent.pid,
                        functools.partial(run_wrk, url, 32, a.seconds, self.script, a.client_cpus),
                        lambda r: int(r["requests"]),
                    ))  # fmt: skip
                out[name] = {
                    "workers": workers,
                    "inspect": inspect,
                    "processes": len(process_tree(agent.pid)),
                    "rps": med([r["rps"] for r in rows]),
                    "p99_us": med([r["p99_us"] for r in rows]),
                    "proxy_cpu_us": med([r["proxy_cpu_us"] for r in rows]),
                    "machine_cores": med([r["machine_cores"] for r in rows]),
                    "stored_rows": agent.stored()[0] if inspect else None,
                }
                agent.stop()
        self.out["workers"] = out

    def stored_lists(self) -> None:
        a = self.args
        print(f"  seeding {a.seed:,} captures", flush=True)
        for agent in (self.off, self.on):
            agent.stop()  # free their memory and CPU for the list measurements
        seeded = Agent("seeded", self.tmp / "agent-seeded", self.nginxes[0].port, True, a.proxy_cpus,
                       {"AGENT_INSPECT_DB_SIZE": str(4 * 10**9)})  # fmt: skip
        self.agents.append(seeded)
        seeded.start()
        probe_get(seeded.port(), "/seed-template")
        wait_idle(seeded.pid)
        urllib.request.urlopen(seeded.api + "/requests/http?limit=1", timeout=30).read()  # flushes captures
        seeded.stop()
        seeded.lines.clear()
        rows = seed_captures(seeded.data_dir / "agent.sqlite3", a.seed)
        seeded.url = ""
        seeded.start(timeout=180)
        web = seeded.api.removeprefix("http://").removesuffix("/api")
        print(f"  list pages over {rows:,} stored captures", flush=True)
        self.out["stored_captures"] = rows
        self.out["api_list_50"] = page_latency(web, "/api/requests/http?limit=50", 100)
        self.out["inspector_first_page"] = page_latency(web, "/inspect/http", 50)
        self.out["inspector_captures_json"] = page_latency(web, "/inspect/captures.json", 50)
        # Issue 9: the page stays usable with 100,000 captures: a filter's first page too.
        self.out["inspector_path_filter"] = page_latency(web, "/inspect/captures.json?path=nowhere-to-be-found", 10)
        self.out["inspector_body_filter"] = page_latency(web, "/inspect/captures.json?body=nowhere-to-be-found", 10)

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
        for nginx in self.nginxes:
            nginx.stop()
        for proc in self.procs:
            stop_process(proc)


def pin(cpus: str) -> list[str]:
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


# --- summary --------------------------------------------------------------------------------------


def summarise(rounds: list[dict[str, Any]], out: dict[str, Any]) -> tuple[str, list[Target]]:
    """The Markdown report of a run and its targets."""
    lines: list[str] = []

    def per_round(block: str, path: str, key: str, ref_path: str | None = None, ref_key: str | None = None) -> float:
        values = []
        for r in rounds:
            value = r[block][path].get(key, math.nan)
            if ref_path is not None:
                value = value / r[block][ref_path].get(ref_key or key, math.nan)
            values.append(value)
        return med(values)

    lines.append("**Keep-alive (wrk)**: medians over rounds; ratios taken within each round.\n")
    lines.append(
        "| load | path | req/s | x direct | MB/s | p50 ms | p99 ms | p99 x direct | proxy CPU us/req "
        "| x nginx-proxy CPU | ms CPU/MiB | captures kept |"
    )
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    names = {"c32": "nginx 256 B, c=32", "c1": "nginx 256 B, c=1", "1mib": "nginx 1 MiB, c=4",
             "uvicorn_c32": "uvicorn, c=32"}  # fmt: skip
    for block, label in names.items():
        for path in rounds[0][block]:
            cpu = per_round(block, path, "proxy_cpu_us")
            has_px = "nginx-proxy" in rounds[0][block]
            x_px = per_round(block, path, "proxy_cpu_us", "nginx-proxy") if has_px and path != "direct" else math.nan
            mib_ms = med([r[block][path].get("proxy_cpu_us", math.nan) / 1000 / (r[block][path]["bytes"] /
                          max(r[block][path]["requests"], 1) / MIB) for r in rounds]) if block == "1mib" else math.nan  # fmt: skip
            lines.append(
                f"| {label} | {path} | {per_round(block, path, 'rps'):,.0f} | {per_round(block, path, 'rps', 'direct'):.2f} "
                f"| {per_round(block, path, 'mb_per_s'):,.1f} | {per_round(block, path, 'p50_us') / 1000:.2f} "
                f"| {per_round(block, path, 'p99_us') / 1000:.2f} | {per_round(block, path, 'p99_us', 'direct'):.2f} "
                f"| {fmt(cpu, '.1f')} | {fmt(x_px, '.2f')} | {fmt(mib_ms, '.2f')} | {kept(rounds, block, path)} |"
            )
    lines.append("\n**One connection per request** (GET, c=1; webhooks: 1 KB JSON POST, `Connection: close`, c=4)\n")
    lines.append("| service | path | req/s | p50 ms | p99 ms | added p50 ms (median of rounds) | agent CPU us/req |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    added: dict[str, float] = {}
    groups = [(s, lambda r, s=s: r["fresh"][s]) for s in rounds[0]["fresh"]] + [
        ("webhooks (uvicorn)", lambda r: r["webhooks"])
    ]
    for service, get in groups:
        for path in ("direct", "off", "on"):
            diff = med([get(r)[path]["p50_ms"] - get(r)["direct"]["p50_ms"] for r in rounds])
            if path == "on" and not service.startswith("webhooks"):
                added[service] = diff
            lines.append(
                f"| {service} | {path} | {med([get(r)[path]['rps'] for r in rounds]):,.0f} "
                f"| {med([get(r)[path]['p50_ms'] for r in rounds]):.2f} | {med([get(r)[path]['p99_ms'] for r in rounds]):.2f} "
                f"| {'-' if path == 'direct' else f'{diff:+.2f}'} "
                f"| {fmt(med([get(r)[path].get('proxy_cpu_us', math.nan) for r in rounds]), '.0f')} |"
            )
    lines.append("\n**Inspector**\n")
    lines.append("| figure | p50 ms | p99 ms |")
    lines.append("|---|---:|---:|")
    for key, label in (
        ("api_visible", "capture visible in the API after the response"),
        ("ws_push", "inspector WebSocket push after the response"),
        ("api_list_50", f"API list of 50, {out.get('stored_captures', 0):,} stored"),
        ("inspector_first_page", "inspector first page (HTML, 100 rows)"),
        ("inspector_captures_json", "inspector captures.json (first page)"),
        ("inspector_path_filter", "inspector captures.json, a path filter matching nothing"),
        ("inspector_body_filter", "inspector captures.json, a body filter matching nothing"),
    ):
        if key in out:
            lines.append(f"| {label} | {out[key]['p50_ms']:.2f} | {out[key]['p99_ms']:.2f} |")
    workers = out.get("workers") or {}
    if workers:
        lines.append("\n**Workers** (`--workers N`, SO_REUSEPORT; wrk keep-alive c=32, nginx page; agents unpinned, "
                     "wrk and nginx on the client CPUs)\n")  # fmt: skip
        lines.append(
            "| inspection | workers | processes | req/s | x 1 worker | p99 ms | agent CPU us/req | machine cores busy |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, w in workers.items():
            if "error" in w:
                lines.append(f"| {name} | - | - | - | - | - | - | {w['error']} |")
                continue
            one = workers.get(f"w1-{'on' if w['inspect'] else 'off'}", {})
            ratio = w["rps"] / one["rps"] if one.get("rps") else math.nan
            lines.append(
                f"| {'on' if w['inspect'] else 'off'} | {w['workers']} | {w['processes']} | {w['rps']:,.0f} "
                f"| {fmt(ratio, '.2f')} | {w['p99_us'] / 1000:.2f} | {w['proxy_cpu_us']:.1f} | {w['machine_cores']:.2f} |"
            )
    up = out.get("upload")
    if up:
        lines.append(
            f"\nUpload of {up['bytes'] / MIB:,.0f} MiB (inspected): {up['status']}, upstream read "
            f"{up['received_by_upstream']:,} bytes, {up['mb_per_s']:.0f} MB/s, agent CPU {up['agent_cpu_s']:.2f} s "
            f"({up['agent_cpu_s'] * 1000 / (up['bytes'] / MIB):.2f} ms/MiB), RSS {up['rss_before_mb']:.0f} -> "
            f"{up['rss_peak_mb']:.0f} MB (growth {up['rss_growth_mb']:.1f} MB)."
        )
    rss = out.get("rss_mb", {})
    if rss:
        lines.append(
            "Agent RSS over the run: "
            + "; ".join(f"{n}: {v['start']:.0f} -> {v['end']:.0f} MB (peak {v['peak']:.0f})" for n, v in rss.items())
            + "."
        )
    rows = [r["c32"]["on"].get("stored_rows", 0) for r in rounds]
    lines.append(f"Captures stored by the inspected agent after each c=32 window: {rows}; capture-queue-full "
                 f"warnings: {out.get('capture_queue_full_warnings')}.")  # fmt: skip

    targets = [
        Target("inspection off: CPU/req x nginx-proxy (c=32)", per_round("c32", "off", "proxy_cpu_us", "nginx-proxy"), 1.3),
        Target("inspection on, persisted: CPU/req x nginx-proxy (c=32)", per_round("c32", "on", "proxy_cpu_us", "nginx-proxy") if all(rows) else math.nan, 2.0),
        Target("inspected p99 x direct p99 (c=32)", per_round("c32", "on", "p99_us", "direct"), 2.0),
        *[Target(f"fresh connection added p50, {s} (inspected)", v, 1.0, " ms", strict=True) for s, v in added.items()],
        Target("1 MiB MB/s x nginx-proxy, inspection off", per_round("1mib", "off", "mb_per_s", "nginx-proxy"), 0.9, at_most=False),
        Target(f"1 MiB MB/s x nginx-proxy, inspection on (captures kept: {kept(rounds, '1mib', 'on')})", per_round("1mib", "on", "mb_per_s", "nginx-proxy"), 0.9, at_most=False),
        Target("upload RSS growth", up["rss_growth_mb"] if up and up["received_by_upstream"] == up["bytes"] else math.nan, 64, " MB", strict=True),
        Target("capture visible in the API p99", out.get("api_visible", {}).get("p99_ms", math.nan), 50, " ms", strict=True),
        Target("WebSocket push p99", out.get("ws_push", {}).get("p99_ms", math.nan), 50, " ms", strict=True),
        Target("API list of 50 of 100,000 p50", out.get("api_list_50", {}).get("p50_ms", math.nan), 10, " ms", strict=True),
    ]  # fmt: skip
    return "\n".join(lines), targets


def kept(rounds: list[dict[str, Any]], block: str, path: str) -> str:
    """The share of an inspected window's requests whose captures were kept ("-" elsewhere)."""
    if path != "on":
        return "-"
    shares = [1 - r[block][path].get("captures_dropped", math.nan) / max(r[block][path]["requests"], 1) for r in rounds]
    text = fmt(med(shares) * 100, ".0f") + ("%" if not math.isnan(med(shares)) else "")
    whole = med([r[block][path].get("whole_share", math.nan) for r in rounds])
    if block == "1mib" and not math.isnan(whole):
        text += f", {whole * 100:.0f}% to the 1 MiB limit"  # the others cut to 64 KiB, and marked so
    return text


def fmt(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if NGINX is None or WRK is None:
        print(f"nginx and wrk are needed: {INSTALL_HINT}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="real-traffic-"))
    tmp.chmod(0o755)  # the nginx worker may run as nobody
    run = Run(args, tmp)
    started = time.monotonic()
    load_before = load_average()
    print(f"load average before: {load_before} ({os.cpu_count()} CPUs); temp dir {tmp}", flush=True)
    try:
        run.start()
        print(f"paths: {json.dumps(run.ports)}", flush=True)
        for n in range(args.rounds):
            run.round(n)
        run.inspector_view()
        run.workers_block()
        run.stored_lists()
    finally:
        run.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report, targets = summarise(run.rounds, run.out)
    result = {
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE, check=False
        ).stdout.strip(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "seconds": round(time.monotonic() - started, 1),
        "rounds": run.rounds,
        **run.out,
        "targets": [{"name": t.name, "measured": t.measured, "bound": t.bound, "verdict": t.verdict} for t in targets],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print()
    print(report)
    print()
    print(table(targets))
    print(
        f"\nload average before {load_before}, after {result['load_average_after']} ({os.cpu_count()} CPUs); "
        f"{result['seconds']:.0f} s; results in {args.json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
