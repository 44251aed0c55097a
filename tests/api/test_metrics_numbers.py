"""Metrics are written as Go writes numbers: `0` not `0.0`, integral floats without `.0`."""

from __future__ import annotations

import re

import requests

from tests.api.helpers import CONNS_KEYS, HTTP_KEYS, wait_for

PYTHON_FLOAT = re.compile(r'"\w+":-?\d+\.0[,}]|e[+-]0\d')


def test_an_idle_tunnel_writes_every_metric_as_0(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    text = agent.api("GET", "/api/tunnels/web").text
    metrics = text.partition('"metrics":')[2]
    assert metrics == (
        '{"conns":{' + ",".join(f'"{k}":0' for k in CONNS_KEYS) + "},"
        '"http":{' + ",".join(f'"{k}":0' for k in HTTP_KEYS) + "}}}\n"
    )


def test_a_busy_tunnel_writes_no_python_style_floats(agent, upstream) -> None:
    tunnel = agent.start_tunnel(name="web", addr=str(upstream.port))
    with requests.Session() as session:
        for _ in range(5):
            session.get(tunnel["public_url"] + "/x", timeout=10)

    def counted() -> dict | None:
        metrics = agent.api("GET", "/api/tunnels/web").json()["metrics"]
        return metrics if metrics["http"]["count"] == 5 and metrics["conns"]["gauge"] == 0 else None

    metrics = wait_for(counted)
    assert metrics["conns"]["count"] == 1
    assert metrics["http"]["p50"] > 0
    assert isinstance(metrics["http"]["count"], int)
    for path in ("/api/tunnels/web", "/api/tunnels", "/api/endpoints/web"):
        text = agent.api("GET", path).text
        assert not PYTHON_FLOAT.search(text), text


def test_durations_are_nanoseconds(agent, upstream) -> None:
    tunnel = agent.start_tunnel(name="web", addr=str(upstream.port))
    requests.get(tunnel["public_url"] + "/slow/0.2", timeout=10)
    p50 = wait_for(lambda: agent.api("GET", "/api/tunnels/web").json()["metrics"]["http"]["p50"])
    assert 0.2e9 <= p50 < 5e9
