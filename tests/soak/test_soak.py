"""The soak: the real agent under real-use traffic for SOAK_SECONDS (default 600), loopback only.

Not part of `make test` (marker `soak`); run it with `make soak` (SOAK_SECONDS=60 for a quick one).
Five services of different makes behind five tunnels created through the API (plus a sixth, `cycle`,
that the operator stops and starts again), five kinds of clients and an API operator run at once
(see traffic.py). It fails on any of:

- a request lost: not answered by its service's own answer (byte-equal, id echoed), or a request
  to the resetting path not answered by the agent's 502;
- a capture neither whole (request raw ends with the body sent, response raw with the answer) nor
  flagged incomplete;
- the API's tunnel list differing, at any of its many checks, from the tunnels the soak runs;
- the agent's open file descriptors growing by more than FD_MARGIN, or its RSS by RSS_MARGIN_MB,
  between the end of the warm-up and the end of the run; the agent dying.

The figures are printed on one line and written as JSON to SOAK_RESULT (default data/soak-result.json).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.soak.services import AsgiService, Service
from tests.soak.traffic import (
    Client,
    KeepAliveClient,
    Ledger,
    LongPollClient,
    OneShotClient,
    Operator,
    PipelinedClient,
    Target,
    WebhookClient,
)
from tests.support.agent_process import ROOT, AgentProcess
from tests.support.process_stats import open_fds, rss_kb

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
RESULT = Path(os.environ.get("SOAK_RESULT", str(ROOT / "data" / "soak-result.json")))
FD_MARGIN = 50
RSS_MARGIN_MB = 100
# Short periods so the agent's periodic work (the tunnel-row heartbeat and its clean-up) runs
# many times within even a one-minute soak. Settings the agent does not know are ignored.
AGENT_ENV = {"AGENT_HEARTBEAT_SECONDS": "1", "AGENT_LOG_LEVEL": "WARNING"}

pytestmark = [pytest.mark.soak, pytest.mark.timeout(SECONDS + 300)]


@pytest.fixture
def services() -> Iterator[dict[str, Any]]:
    started: dict[str, Any] = {}
    try:
        started["threaded"] = Service("threaded")
        started["ipv6"] = Service("ipv6", host="::1")
        started["longpoll"] = Service("longpoll")
        started["resetting"] = Service("resetting", resets=True)
        started["asgi"] = AsgiService()
        yield started
    finally:
        for service in started.values():
            service.close()


@pytest.fixture
def soak_agent(tmp_path: Path) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path / "agent", env=AGENT_ENV).start()
    yield process
    process.stop()


def tunnel_definitions(services: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each service's tunnel, with the addr forms people type."""
    return {
        "threaded": {"addr": str(services["threaded"].port)},  # `ngrok http 8000`
        "asgi": {"addr": f"127.0.0.1:{services['asgi'].port}"},
        "ipv6": {"addr": f"localhost:{services['ipv6'].port}"},  # the service is on ::1 only
        "longpoll": {"addr": f"http://127.0.0.1:{services['longpoll'].port}"},
        "resetting": {"addr": str(services["resetting"].port)},
        "cycle": {"addr": str(services["threaded"].port)},
    }


def test_the_agent_holds_up_under_real_use(soak_agent: AgentProcess, services: dict[str, Any]) -> None:
    agent = soak_agent
    assert agent.proc is not None
    pid = agent.proc.pid
    definitions = tunnel_definitions(services)
    running: dict[str, str] = {}
    targets: dict[str, Target] = {}
    for name, definition in definitions.items():
        tunnel = agent.start_tunnel(name=name, proto="http", **definition)
        running[name] = tunnel["public_url"]
        host, port = tunnel["public_url"].removeprefix("http://").rsplit(":", 1)
        targets[name] = Target(name, name if name != "cycle" else "threaded", host, int(port), name == "resetting")

    ledger = Ledger()
    stop = threading.Event()
    plain = [targets["threaded"], targets["asgi"], targets["ipv6"]]
    clients: list[Client] = [
        *(WebhookClient(i, ledger, stop, plain) for i in range(4)),
        *(OneShotClient(i, ledger, stop, [*plain, targets["resetting"]]) for i in range(2)),
        *(KeepAliveClient(i, ledger, stop, [*plain, targets["resetting"]]) for i in range(2)),
        PipelinedClient(0, ledger, stop, plain),
        *(LongPollClient(i, ledger, stop, [targets["longpoll"]]) for i in range(3)),
    ]
    operator = Operator(
        agent, ledger, stop, running, lambda: {"name": "cycle", "proto": "http", **definitions["cycle"]}
    )
    began = time.monotonic()
    for thread in [*clients, operator]:
        thread.start()

    warm_up = min(30.0, max(5.0, SECONDS / 10))
    time.sleep(warm_up)
    fds_start, rss_start = open_fds(pid), rss_kb(pid)
    samples = [{"t": round(time.monotonic() - began), "fds": fds_start, "rss_kb": rss_start}]
    while (left := SECONDS - (time.monotonic() - began)) > 0:
        time.sleep(min(10.0, left))
        if agent.proc.poll() is not None:
            break
        samples.append({"t": round(time.monotonic() - began), "fds": open_fds(pid), "rss_kb": rss_kb(pid)})
    stop.set()
    for thread in [*clients, operator]:
        thread.join(60)
    stuck = [thread.name for thread in [*clients, operator] if thread.is_alive()]
    alive = agent.proc.poll() is None

    fds_end = rss_end = rss_after_listing = -1
    if alive:
        operator.check_tunnel_list()
        time.sleep(2)  # let the agent close what the clients left (keep-alive sockets, pooled upstreams)
        fds_end, rss_end = open_fds(pid), rss_kb(pid)
        samples.append({"t": round(time.monotonic() - began), "fds": fds_end, "rss_kb": rss_end})
        # Last, as it costs memory of its own: one listing of up to 10000 captures, raw bodies included.
        final_captures(agent, ledger)
        rss_after_listing = rss_kb(pid)

    result = ledger.summary()
    result.update(
        seconds=SECONDS,
        agent_alive=alive,
        stuck_threads=stuck,
        fds_start=fds_start,
        fds_end=fds_end,
        rss_start_kb=rss_start,
        rss_end_kb=rss_end,
        rss_after_final_listing_kb=rss_after_listing,
        samples=samples,
        agent_error_lines=[line for line in agent.lines if "lvl=eror" in line or "Traceback" in line][:20],
    )
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nSOAK {SECONDS:g}s: sent {result['requests_sent']}, answered {result['answered']}, "
        f"lost {result['lost']}, reset->502 {result['reset_502']} (not 502: {result['reset_not_502']}), "
        f"captures checked {result['captures_checked']} (bad {result['captures_bad']}, "
        f"flagged {result['captures_flagged']}), tunnel list checks {result['tunnel_list_checks']} "
        f"(mismatches {result['tunnel_list_mismatches']}), api errors {result['api_errors']}, "
        f"fds {fds_start}->{fds_end}, RSS {rss_start // 1024}->{rss_end // 1024} MB; details in {RESULT}"
    )
    for kind, examples in result["examples"].items():
        print(f"  {kind}: " + "\n    ".join(examples[:5]))

    assert alive, "the agent died:\n" + "\n".join(agent.lines[-40:])
    assert not stuck, f"threads still running after 60 s: {stuck}"
    assert result["examples"].get("harness_crash") is None, result["examples"]["harness_crash"]
    assert result["requests_sent"] >= 10 * SECONDS, "far fewer requests than expected: the harness is broken"
    assert result["lost"] == 0, result["examples"]["lost"]
    assert result["reset_not_502"] == 0, result["examples"]["reset_not_502"]
    assert result["reset_502"] > 0
    assert result["tunnel_list_mismatches"] == 0, result["examples"]["tunnel_list_mismatch"]
    assert result["tunnel_list_checks"] >= SECONDS / 3
    assert result["api_errors"] == 0, result["examples"]["api_error"]
    assert result["captures_bad"] == 0, result["examples"]["captures_bad"]
    assert result["captures_unknown"] == 0, result["examples"]["captures_unknown"]
    assert result["captures_checked"] > 0
    assert fds_end <= fds_start + FD_MARGIN, samples
    assert rss_end - rss_start < RSS_MARGIN_MB * 1024, samples


def final_captures(agent: AgentProcess, ledger: Ledger) -> None:
    """Every capture still stored, once the in-flight ones had time to finish (bounded wait)."""
    deadline = time.monotonic() + 30
    while True:
        listed = agent.api("GET", "/api/requests/http", params={"limit": "10000"}).json()["requests"]
        pending = [c for c in listed if c["response"] is None]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    for capture in listed:
        ledger.check_capture(capture, final=True)
