"""The capture store's own cost (`make bench-store`): CPU per stored capture and per stored MiB,
written by `agentapi.capture_store.OrmCaptureStore` into the agent's SQLite schema, alone on an
otherwise idle core. Issue 11's inspected-CPU and inspected-1-MiB targets are judged against it:
whatever else the agent does, each persisted capture costs at least this much.

Rules of a run:
- Each case runs in a fresh process with a fresh database made by the agent's migrations and the
  agent's SQLite settings (WAL, 16 KiB pages, synchronous NORMAL, secure_delete FAST), so what is
  measured is the schema, the SQL and the pragmas the agent ships; the database is removed after.
- Rows have the sink's shape (engine/capture_sink.py `_snapshot`) and are built before the clock
  starts: the figure is the store's work (statements, commit, eviction), not building rows.
- Ids come from the agent's CaptureIdFactory (they sort by time, as the range delete needs).
- Cases with eviction first fill the store to 110% of `inspect_db_size` (50 MB, the default), so
  every measured batch is in the steady state where each new byte evicts an old one.
- Batches have as many rows as one 20 ms batch of the sink holds at the rates `make bench` sees:
  500 small captures (25,000 req/s), 20 of 64 KiB, 8 of 1 MiB.
- Cases alternate over `--rounds` rounds; the median is printed. CPU is the process's (one thread
  writes); wall time is printed beside it (the difference is waiting on the disk).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 50 * 1000 * 1000
SECONDARY_INDEXES = ("capture_tunnel_newest", "capture_status", "capture_method", "capture_policy_answered")

# name: (response body bytes, rows per batch, rows measured, budget, secondary indexes dropped)
CASES: dict[str, tuple[int, int, int, int, bool]] = {
    "small": (256, 500, 30_000, BUDGET, False),
    "small-no-eviction": (256, 500, 30_000, 0, False),
    "small-no-eviction-no-index": (256, 500, 30_000, 0, True),
    "64k": (64 * 1024, 20, 1_000, BUDGET, False),
    "1m": (1024 * 1024, 8, 160, BUDGET, False),
    "1m-no-eviction": (1024 * 1024, 8, 160, 0, False),
}

REQUEST = (
    b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:40000\r\nUser-Agent: wrk\r\n"
    b"X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: 127.0.0.1:40000\r\n\r\n"
)


def response(body_bytes: int) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 12:00:00 GMT\r\n"
        f"Content-Type: text/html\r\nContent-Length: {body_bytes}\r\n"
        'Last-Modified: Mon, 30 Nov 2026 12:00:00 GMT\r\nConnection: keep-alive\r\nETag: "abc-100"\r\n'
        "Accept-Ranges: bytes\r\n\r\n"
    )
    return head.encode() + bytes(range(256)) * (body_bytes // 256) + b"x" * (body_bytes % 256)


def one_case(name: str, pragmas: list[str], page_size: int) -> dict[str, Any]:
    """Run case `name` in this process (a fresh database); its figures. `pragmas`: statements
    run on the connection after the agent's own; `page_size`: bytes, 0 for the agent's."""
    with tempfile.TemporaryDirectory(prefix="store-bench-") as data_dir:
        return _measure(name, pragmas, page_size, data_dir)


def _measure(name: str, pragmas: list[str], page_size: int, data_dir: str) -> dict[str, Any]:
    body_bytes, per_batch, measured, budget, drop_indexes = CASES[name]
    os.environ["AGENT_DATA_DIR"] = data_dir
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    if page_size:
        options = settings.DATABASES["default"]["OPTIONS"]
        options["init_command"] = options["init_command"].replace("page_size=16384", f"page_size={page_size}")

    from agentapi.capture_store import OrmCaptureStore
    from agentapi.engine.capture_id import CaptureIdFactory

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        for pragma in pragmas:
            cursor.execute(pragma)
        if drop_indexes:
            for index in SECONDARY_INDEXES:
                cursor.execute(f"DROP INDEX {index}")
    ids = CaptureIdFactory()
    answer = response(body_bytes)

    def batch() -> list[dict[str, Any]]:
        now = time.time()
        return [
            {
                "id": ids.new(now),
                "tunnel_name": "command_line",
                "remote_addr": "127.0.0.1",
                "start": now,
                "duration_ns": 250_000,
                "method": "GET",
                "uri": "/index.html",
                "request_raw": REQUEST,
                "request_size": len(REQUEST),
                "response_raw": answer,
                "response_size": len(answer),
                "status_code": 200,
                "stored_size": len(REQUEST) + len(answer),
                "replay_of": "",
                "request_complete": True,
                "response_complete": True,
                "incomplete_reason": "",
                "policy_trace": [],
                "policy_action": "",
            }
            for _ in range(per_batch)
        ]

    store = OrmCaptureStore(budget)
    row_bytes = len(REQUEST) + len(answer)
    if budget > 0:
        for _ in range(int(budget * 1.1 / row_bytes / per_batch) + 1):
            store.write(batch(), [])
    batches = [batch() for _ in range(max(measured // per_batch, 1))]
    evicted = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for rows in batches:
        evicted += len(store.write(rows, []))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    count = len(batches) * per_batch
    connection.close()  # before the directory goes
    return {
        "rows": count,
        "evicted": evicted,
        "cpu_us_per_row": cpu / count * 1e6,
        "wall_us_per_row": wall / count * 1e6,
        "cpu_ms_per_mib": cpu / (count * row_bytes / 2**20) * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cases", nargs="*", default=list(CASES), help=f"of: {'; '.join(CASES)} (default: all)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument(
        "--pragma", action="append", default=[], help="a statement run after the agent's pragmas (what-if; repeatable)"
    )
    p.add_argument("--page-size", type=int, default=0, help="SQLite page size of the new databases (what-if)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case, print its JSON
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(one_case(a.one, a.pragma, a.page_size)))
        return 0
    unknown = [name for name in a.cases if name not in CASES]
    if unknown:
        p.error(f"unknown case(s): {', '.join(unknown)}")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in a.cases}
    for n in range(a.rounds):
        for name in a.cases:
            what_if = [f"--pragma={pragma}" for pragma in a.pragma] + [f"--page-size={a.page_size}"]
            # stderr to the terminal: a failing case shows its traceback
            done = subprocess.run(
                [sys.executable, __file__, "--one", name, *what_if],
                stdout=subprocess.PIPE,
                text=True,
                check=True,
                cwd=ROOT,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs[name].append(result)
            print(f"  round {n + 1}: {name}: {result['cpu_us_per_row']:.1f} us CPU/row", flush=True)
    print("\n| case | rows/batch | us CPU/row | us wall/row | ms CPU/MiB stored | rows evicted |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, results in runs.items():
        med = {key: statistics.median(r[key] for r in results) for key in results[0]}
        print(
            f"| {name} | {CASES[name][1]} | {med['cpu_us_per_row']:.1f} | {med['wall_us_per_row']:.1f} |"
            f" {med['cpu_ms_per_mib']:.2f} | {int(med['evicted']):,} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
