"""Flame graphs of the agent under load (`make flame`): py-spy records the agent while wrk drives
it, and writes an SVG per case under docs/perf/ (issue 11: the profiles behind the figures).

Rules of a run:
- One nginx serves the 256-byte page and the 1 MiB file (CPU 0, with wrk); the agent is pinned to
  CPU 1 as in real_traffic.py, started fresh for each case (its own SQLite database).
- Each case warms up for 2 s, then py-spy samples every thread of the agent (`--threads`,
  `--gil` off: the writer thread's time in SQLite counts) at 200 Hz for `--seconds` while wrk runs.
- Cases: `off-c32` (inspection off, keep-alive c=32), `on-c32` (inspection on, captures
  persisted), `on-1mib` (inspection on, 1 MiB downloads at c=4).
- Needs nginx, wrk and py-spy (requirements-dev.txt pins it); py-spy needs ptrace (root here).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from clients import run_wrk, write_wrk_script
from proxy_bench import NGINX, WRK, Agent, static_upstream

HERE = Path(__file__).resolve().parent
CASES = {
    "off-c32": (False, "/index.html", 32),
    "on-c32": (True, "/index.html", 32),
    "on-1mib": (True, "/1m.bin", 4),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cases", nargs="*", default=list(CASES), help=f"of {', '.join(CASES)} (default: all)")
    p.add_argument("--seconds", type=int, default=8, help="seconds sampled per case (default 8)")
    p.add_argument("--out", type=Path, default=HERE.parent / "docs" / "perf", help="where the SVGs go")
    p.add_argument("--raw", action="store_true", help="collapsed stacks (.txt) instead of SVGs, to aggregate")
    p.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL (py-spy --gil)")
    p.add_argument(
        "--native",
        action="store_true",
        help="C frames too (py-spy --native: uvloop, llhttp, libc's system calls); pauses the agent at"
        " each sample, so it runs slower while recorded; writes CASE-native.svg",
    )
    args = p.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if NGINX is None or WRK is None or not Path(py_spy).exists():
        print("nginx, wrk and py-spy are needed", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="flame-"))
    tmp.chmod(0o755)
    nginx = static_upstream(tmp, "0", b"x" * 256)
    up = nginx.port
    script = write_wrk_script(tmp)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for case in args.cases:
            inspect, urlpath, connections = CASES[case]
            agent = Agent(case, tmp / f"agent-{case}", up, inspect, "1")
            agent.start()
            try:
                url = f"http://127.0.0.1:{agent.port()}{urlpath}"
                run_wrk(url, connections, 2, script, "0")  # warm-up
                load = threading.Thread(target=run_wrk, args=(url, connections, args.seconds + 2, script, "0"))
                load.start()
                name = f"{case}-native" if args.native else case
                svg_path = args.out / f"{name}.{'txt' if args.raw else 'svg'}"
                subprocess.run(
                    [py_spy, "record", "--pid", str(agent.pid), "--threads", "--rate", "200",
                     "--duration", str(args.seconds), *(["--native"] if args.native else ["--nonblocking"]),
                     "--output", str(svg_path), "--format", "raw" if args.raw else "flamegraph",
                     *(["--gil"] if args.gil else [])],
                    check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                load.join()
                print(f"{case}: {svg_path}", flush=True)
            finally:
                agent.stop()
    finally:
        nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
