"""A DELETE landing between the runtime's start of a tunnel and the view's answer (H5 probe_api.py).

The views run in this process against a stand-in runtime whose start returns what the real one
returns while the tunnel's row is already gone, as a concurrent DELETE of the same name leaves it.
The answer used to be a 500 `DoesNotExist`.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

import agentapi.runtime
from agentapi.models import Tunnel
from agentapi.runtime import Replacement, TunnelInfo
from agentapi.serializers import ZERO_METRICS
from tests.api.helpers import assert_error

pytestmark = [pytest.mark.django_db]

LOCAL: dict[str, Any] = {"HTTP_HOST": "127.0.0.1:4040"}


def started(name: str) -> TunnelInfo:
    return TunnelInfo(
        name=name,
        public_url="http://127.0.0.1:41234",
        proto="http",
        addr="http://localhost:8080",
        inspect=True,
        upstream_host="localhost:8080",
        metrics=ZERO_METRICS,
    )


class StoppedAtOnce:
    """A runtime whose tunnels are stopped (their rows deleted) as soon as they have started."""

    web_allow_hosts = ()

    async def start_tunnel(self, definition: dict[str, Any], name: str | None = None, **_: Any) -> list[TunnelInfo]:
        return [started(name or definition["name"])]

    async def replace_tunnel(self, name: str, definition: dict[str, Any], **_: Any) -> Replacement:
        return Replacement(tunnels=[started(name)], replaced=True)

    async def tunnels(self) -> list[TunnelInfo]:
        return []


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.setattr(agentapi.runtime, "_current", StoppedAtOnce())
    return Client(**LOCAL)


def test_a_tunnel_stopped_before_its_answer_is_a_404_not_a_500(api: Client) -> None:
    response = api.post("/api/tunnels", {"name": "web", "addr": "8080"}, content_type="application/json")
    assert_error(response, 404, 100, 'tunnel "web" not found')  # type: ignore[arg-type]
    assert not Tunnel.objects.exists()


def test_an_endpoint_stopped_before_its_answer_is_answered_as_started(api: Client) -> None:
    body = {"name": "web", "upstream": {"url": "http://localhost:8080"}}
    response = api.post("/api/endpoints", body, content_type="application/json")
    assert response.status_code == 201, response.content
    endpoint = response.json()
    assert endpoint["name"] == "web"
    assert endpoint["url"] == "http://127.0.0.1:41234"
    assert endpoint["upstream"] == {"url": "http://localhost:8080", "protocol": "http1"}
    assert endpoint["metrics"] == ZERO_METRICS


def test_an_endpoint_replaced_then_stopped_before_its_answer_is_answered_as_replaced(api: Client) -> None:
    body = {"name": "web", "upstream": {"url": "http://localhost:8080"}}
    response = api.put("/api/endpoints/web", body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["url"] == "http://127.0.0.1:41234"
    assert response.json()["upstream"]["url"] == "http://localhost:8080"
