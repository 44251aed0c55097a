"""Replay with re-signing against a real agent whose tunnels run verify-webhook: a delivery the
policy refuses (stale, or an edited payload) passes it once the inspector re-signs it, and the
service gets the edited body with the new signature.
"""

from __future__ import annotations

import hmac
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream, start_upstream

SECRET = "whsec_live_secret"
PROVIDERS = ("stripe", "github", "slack", "hmac-sha256")
BODY = b'{"id": "evt_1", "type": "invoice.paid", "amount": 4200}'


@pytest.fixture(scope="module")
def service() -> Iterator[Upstream]:
    upstream = start_upstream()
    yield upstream
    upstream.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, service: Upstream) -> Iterator[AgentProcess]:
    process = AgentProcess(Path(tmp_path_factory.mktemp("resign-agent"))).start()
    for provider in PROVIDERS:
        policy = (
            "on_http_request:\n  - actions:\n      - type: verify-webhook\n"
            f"        config: {{provider: {provider}, secret: {SECRET}}}\n"
        )
        started = process.start_tunnel(name=provider, proto="http", addr=str(service.port), traffic_policy=policy)
        process.public_urls[provider] = started["public_url"]
    yield process
    process.stop()


def _mac(message: bytes, digest: str = "sha256") -> str:
    return hmac.new(SECRET.encode(), message, digest).hexdigest()


def signed_an_hour_ago(provider: str) -> dict[str, str]:
    """The signature headers a provider sent an hour ago (stale where the scheme has a timestamp)."""
    then = int(time.time()) - 3600
    return {
        "stripe": {"Stripe-Signature": f"t={then},v1=" + _mac(f"{then}.".encode() + BODY)},
        "github": {"X-Hub-Signature-256": "sha256=" + _mac(BODY)},
        "slack": {
            "X-Slack-Request-Timestamp": str(then),
            "X-Slack-Signature": "v0=" + _mac(f"v0:{then}:".encode() + BODY),
        },
        "hmac-sha256": {"X-Signature-256": "sha256=" + _mac(BODY)},
    }[provider]


def deliver(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url + "/hooks", data=BODY, headers={"Content-Type": "application/json", "Connection": "close", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def inspector_session(agent: AgentProcess) -> requests.Session:
    session = requests.Session()
    session.get(agent.api_url + "/", timeout=30).raise_for_status()  # sets the CSRF cookie
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


def replay(agent: AgentProcess, session: requests.Session, payload: dict[str, Any]) -> dict[str, Any]:
    response = session.post(agent.api_url + "/inspect/replay", json=payload, timeout=30)
    assert response.status_code == 201, response.text
    return dict(response.json())


def newest_capture(agent: AgentProcess, tunnel: str) -> dict[str, Any]:
    # The API stores the queued captures before it lists.
    listed = agent.api("GET", f"/api/requests/http?limit=1&tunnel_name={tunnel}").json()["requests"]
    return dict(listed[0])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_edited_delivery_passes_verify_webhook_only_once_re_signed(
    agent: AgentProcess, service: Upstream, provider: str
) -> None:
    first = deliver(agent.public_urls[provider], signed_an_hour_ago(provider))
    # Stripe and Slack sign a timestamp: an hour-old delivery is refused; GitHub's is not dated.
    assert first == (403 if provider in ("stripe", "slack") else 200)
    original = newest_capture(agent, provider)
    session = inspector_session(agent)
    seed = session.get(agent.api_url + f"/inspect/captures/{original['id']}/resign-seed.json", timeout=30).json()
    assert seed["provider"] == provider
    edited = {**seed, "body": seed["body"].replace("4200", "9900"), "through_policy": True}

    refused = replay(agent, session, edited)
    assert refused["status_code"] == 403

    service.received.clear()
    passed = replay(agent, session, {**edited, "resign": {"provider": provider, "secret": SECRET}})
    assert passed["status_code"] == 200
    (received,) = service.received
    assert received.body == BODY.replace(b"4200", b"9900")
    steps = session.get(agent.api_url + f"/inspect/captures/{passed['id']}.json", timeout=30).json()
    assert [step["outcome"] for step in steps["traffic_policy"]] == [f"verified {provider}"]
