"""What a person at the inspector sees, and how soon: capture visibility in the API, the
inspector's WebSocket push, and list pages over many stored captures.

Rules of this module:
- A probe is one GET with a unique path (`/probe/<run>/<n>`) on a new connection through an
  inspected tunnel; "after the response" is measured from its last byte.
- API visibility: `GET /api/requests/http?tunnel_name=T&limit=5` polled back to back on one
  keep-alive connection until a capture with the probe's `uri` and a status code is listed.
- WebSocket push: one client on the inspector's socket (`/ws/inspector`, dashboard/inspector/
  routing.py) sending the `Origin` of the page itself, as dashboard/websocket_origin.py requires;
  the push is the first `capture.created`/`capture.updated` message whose capture has the probe's
  `uri` and a status code (a summary, agentapi.captures.summary's shape). A push that arrives
  before the client has read the last byte counts as 0 ms.
- Seeding: captures are copied in SQLite from one real capture row (every column, so the schema
  is always the agent's own), with ids `airt_` + 27 characters that sort before any real KSUID,
  in one INSERT ... SELECT over a recursive counter; it takes a second for 100,000.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import websockets
from clients import percentile


def probe_get(port: int, path: str) -> float:
    """One GET on a new connection (Connection: close), read to EOF; perf_counter() at its end."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        while sock.recv(65536):
            pass
    return time.perf_counter()


def api_visibility(api_netloc: str, tunnel_port: int, tunnel: str, probes: int, tag: str) -> dict[str, Any]:
    """ms from each probe's response to the first API list that shows its capture completed:
    {"ms": [...], "p50_ms", "p99_ms", "polls"}. Raises RuntimeError after 10 s without it."""
    conn = http.client.HTTPConnection(api_netloc, timeout=30)
    delays: list[float] = []
    polls = 0
    for n in range(probes):
        uri = f"/probe/{tag}/{n}"
        done = probe_get(tunnel_port, uri)
        while True:
            conn.request("GET", f"/api/requests/http?tunnel_name={tunnel}&limit=5")
            rows = json.loads(conn.getresponse().read())["requests"]
            polls += 1
            if any(r["request"]["uri"] == uri and r["response"] is not None for r in rows):
                delays.append((time.perf_counter() - done) * 1000)
                break
            if time.perf_counter() - done > 10:
                raise RuntimeError(f"capture of {uri} not listed by the API after 10 s")
    conn.close()
    return {"ms": delays, "p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99), "polls": polls}


async def _ws_push(web_netloc: str, tunnel_port: int, probes: int, tag: str) -> list[float]:
    pushed: dict[str, float] = {}
    url = f"ws://{web_netloc}/ws/inspector"
    async with websockets.connect(url, origin=f"http://{web_netloc}", max_size=None) as ws:  # type: ignore[arg-type]

        async def read() -> None:
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") in ("capture.created", "capture.updated"):
                    capture = message["capture"]
                    if capture.get("status_code") is not None:
                        pushed.setdefault(capture["uri"], time.perf_counter())

        reader = asyncio.create_task(read())
        delays: list[float] = []
        loop = asyncio.get_running_loop()
        for n in range(probes):
            uri = f"/probe/{tag}/{n}"
            done = await loop.run_in_executor(None, probe_get, tunnel_port, uri)
            while uri not in pushed:
                if time.perf_counter() - done > 10:
                    raise RuntimeError(f"no WebSocket push for {uri} after 10 s")
                await asyncio.sleep(0.0005)
            delays.append(max(0.0, pushed[uri] - done) * 1000)
        reader.cancel()
    return delays


def ws_push(web_netloc: str, tunnel_port: int, probes: int, tag: str) -> dict[str, Any]:
    """ms from each probe's response to the inspector socket's message announcing it completed:
    {"ms": [...], "p50_ms", "p99_ms"}. Raises RuntimeError after 10 s without it."""
    delays = asyncio.run(_ws_push(web_netloc, tunnel_port, probes, tag))
    return {"ms": delays, "p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99)}


def capture_table(db: sqlite3.Connection) -> str:
    (table,) = db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%capture'").fetchone()
    return str(table)


def seed_captures(database: Path, count: int) -> int:
    """Copy the newest capture row `count` times (older ids, start one second apart going back);
    the rows in the table afterwards. The agent must be stopped. Raises RuntimeError when the
    table holds no row to copy."""
    db = sqlite3.connect(database, timeout=30)
    try:
        table = capture_table(db)
        columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]
        if db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] == 0:
            raise RuntimeError("no capture to copy: the seeding agent captured nothing")
        replaced = {
            "id": "'airt_0' || printf('%026d', n)",  # 27 characters after airt_, below any real KSUID
            "start": "strftime('%Y-%m-%d %H:%M:%f', t.start, printf('-%d seconds', n))",
            "uri": "'/seeded/' || n",
        }
        select = ", ".join(replaced.get(c, f't."{c}"') for c in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        db.execute(
            f"WITH RECURSIVE counter(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM counter WHERE n < ?) "
            f'INSERT INTO "{table}" ({names}) SELECT {select} FROM counter, '
            f'(SELECT * FROM "{table}" ORDER BY id DESC LIMIT 1) AS t',
            (count,),
        )
        db.commit()
        return int(db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])
    finally:
        db.close()


def page_latency(netloc: str, path: str, repeats: int, warmup: int = 5) -> dict[str, Any]:
    """GET `path` `repeats` times on one keep-alive connection: {"p50_ms", "p99_ms", "bytes",
    "status"} (the last response's status and size)."""
    conn = http.client.HTTPConnection(netloc, timeout=60)
    times: list[float] = []
    status, size = 0, 0
    for n in range(warmup + repeats):
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        size = len(response.read())
        status = response.status
        if n >= warmup:
            times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "bytes": size, "status": status}
