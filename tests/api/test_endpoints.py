"""/api/endpoints (agent 3.30+, pyngrok 9's default): the same tunnels through the newer shape."""

from __future__ import annotations

import requests

from tests.api.helpers import CONNS_KEYS, HTTP_KEYS, assert_error, busy_port, wait_for_captures
from tests.support.upstream import Upstream

ENDPOINT_KEYS = ["name", "uri", "url", "upstream", "inspect", "traffic_policy", "pooling_enabled"]


def pyngrok_http(name: str, port: int) -> dict:
    return {"name": name, "upstream": {"url": f"http://localhost:{port}"}}


def pyngrok_tcp(name: str, port: int) -> dict:
    return {"name": name, "upstream": {"url": f"localhost:{port}"}, "url": "tcp://", "inspect": False}


def test_list_answers_200_when_there_are_none(agent) -> None:
    # pyngrok's start-up probe.
    response = agent.api("GET", "/api/endpoints", headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json()["endpoints"] == []


def test_pyngroks_http_body_creates_an_endpoint(agent, upstream: Upstream) -> None:
    response = agent.api("POST", "/api/endpoints", pyngrok_http("web", upstream.port))
    assert response.status_code == 201, response.text
    endpoint = response.json()
    assert list(endpoint) == [*ENDPOINT_KEYS, "metrics"]
    assert endpoint["name"] == "web"
    assert endpoint["uri"] == "/api/endpoints/web"
    assert endpoint["url"].startswith("http://")
    assert endpoint["upstream"] == {"url": f"http://localhost:{upstream.port}", "protocol": "http1"}
    assert endpoint["inspect"] is True
    assert endpoint["traffic_policy"] == ""
    assert endpoint["pooling_enabled"] is False
    assert "public_url" not in endpoint and "proto" not in endpoint
    assert list(endpoint["metrics"]["conns"]) == CONNS_KEYS
    assert list(endpoint["metrics"]["http"]) == HTTP_KEYS


def test_the_http_endpoint_forwards_and_is_captured_under_its_name(agent, upstream: Upstream) -> None:
    endpoint = agent.api("POST", "/api/endpoints", pyngrok_http("web", upstream.port)).json()
    assert requests.get(endpoint["url"] + "/hello", timeout=10).status_code == 200
    assert upstream.received[-1].path == "/hello"
    [capture] = wait_for_captures(agent, 1, tunnel_name="web")
    assert capture["request"]["uri"] == "/hello"


def test_pyngroks_tcp_body_creates_a_tcp_endpoint(agent, upstream: Upstream) -> None:
    response = agent.api("POST", "/api/endpoints", pyngrok_tcp("db", upstream.port))
    assert response.status_code == 201, response.text
    endpoint = response.json()
    assert endpoint["url"].startswith("tcp://")
    assert endpoint["url"] != "tcp://"
    assert endpoint["upstream"]["url"] == f"localhost:{upstream.port}"
    assert endpoint["inspect"] is False


def test_older_pyngroks_tcp_upstream_with_a_scheme_is_accepted(agent, upstream: Upstream) -> None:
    body = {"name": "db", "upstream": {"url": f"tcp://localhost:{upstream.port}"}, "url": "tcp://", "inspect": False}
    response = agent.api("POST", "/api/endpoints", body)
    assert response.status_code == 201, response.text
    assert response.json()["upstream"]["url"] == f"tcp://localhost:{upstream.port}"


def test_a_tls_endpoint_says_tls_in_its_url(agent) -> None:
    body = {"name": "sec", "upstream": {"url": "localhost:8443"}, "url": "tls://", "inspect": False}
    response = agent.api("POST", "/api/endpoints", body)
    assert response.status_code == 201, response.text
    assert response.json()["url"].startswith("tls://")


def test_the_upstream_url_is_echoed_as_sent(agent) -> None:
    response = agent.api("POST", "/api/endpoints", {"name": "web", "upstream": {"url": "http://127.0.0.1:3000/"}})
    assert response.json()["upstream"]["url"] == "http://127.0.0.1:3000/"
    assert agent.api("GET", "/api/endpoints/web").json()["upstream"]["url"] == "http://127.0.0.1:3000/"


def test_an_endpoint_is_also_a_tunnel(agent, upstream: Upstream) -> None:
    endpoint = agent.api("POST", "/api/endpoints", pyngrok_http("web", upstream.port)).json()
    tunnel = agent.api("GET", "/api/tunnels/web").json()
    assert tunnel["public_url"] == endpoint["url"]
    assert [t["name"] for t in agent.api("GET", "/api/tunnels").json()["tunnels"]] == ["web"]


def test_a_tunnel_is_also_an_endpoint(agent) -> None:
    tunnel = agent.start_tunnel(name="web", addr="8080")
    [endpoint] = agent.api("GET", "/api/endpoints").json()["endpoints"]
    assert list(endpoint) == ENDPOINT_KEYS
    assert (endpoint["name"], endpoint["url"]) == ("web", tunnel["public_url"])
    assert endpoint["upstream"]["url"] == "http://localhost:8080"


def test_detail_has_metrics(agent, upstream: Upstream) -> None:
    agent.api("POST", "/api/endpoints", pyngrok_http("web", upstream.port))
    response = agent.api("GET", "/api/endpoints/web")
    assert response.status_code == 200
    assert list(response.json()) == [*ENDPOINT_KEYS, "metrics"]
    assert response.json()["metrics"]["http"]["count"] == 0


def test_detail_of_an_unknown_endpoint_is_404(agent) -> None:
    assert_error(agent.api("GET", "/api/endpoints/nope"), 404, 100)


def test_uri_is_escaped_like_go(agent) -> None:
    endpoint = agent.api("POST", "/api/endpoints", {"name": "my app (1)", "upstream": {"url": "8080"}}).json()
    assert endpoint["uri"] == "/api/endpoints/my%20app%20%281%29"
    assert agent.api("GET", endpoint["uri"]).json()["name"] == "my app (1)"


def test_put_creates_a_missing_endpoint_with_201(agent, upstream: Upstream) -> None:
    response = agent.api("PUT", "/api/endpoints/web", pyngrok_http("web", upstream.port))
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "web"
    assert agent.api("GET", "/api/endpoints/web").status_code == 200


def test_put_replaces_an_existing_endpoint_with_200(agent, upstream: Upstream) -> None:
    agent.api("POST", "/api/endpoints", {"name": "web", "upstream": {"url": "http://localhost:1"}})
    response = agent.api("PUT", "/api/endpoints/web", pyngrok_http("web", upstream.port))
    assert response.status_code == 200, response.text
    assert response.json()["upstream"]["url"] == f"http://localhost:{upstream.port}"
    assert requests.get(response.json()["url"] + "/after", timeout=10).status_code == 200
    assert [e["name"] for e in agent.api("GET", "/api/endpoints").json()["endpoints"]] == ["web"]


def test_a_bad_put_leaves_the_old_endpoint_running(agent, upstream: Upstream) -> None:
    old = agent.api("POST", "/api/endpoints", pyngrok_http("web", upstream.port)).json()
    body = {**pyngrok_http("web", upstream.port), "foo": 1}
    assert_error(agent.api("PUT", "/api/endpoints/web", body), 400, 102)
    assert agent.api("GET", "/api/endpoints/web").json()["url"] == old["url"]
    assert requests.get(old["url"] + "/still", timeout=10).status_code == 200


def test_a_put_whose_listener_fails_puts_the_old_endpoint_back(agent, upstream: Upstream) -> None:
    agent.api("POST", "/api/endpoints", pyngrok_http("web", upstream.port))
    sock, port = busy_port()
    with sock:
        body = {**pyngrok_http("web", 9), "url": f"http://127.0.0.1:{port}"}
        assert_error(agent.api("PUT", "/api/endpoints/web", body), 502, 103)
    restored = agent.api("GET", "/api/endpoints/web")
    assert restored.status_code == 200
    assert restored.json()["upstream"]["url"] == f"http://localhost:{upstream.port}"
    assert requests.get(restored.json()["url"] + "/back", timeout=10).status_code == 200


def test_delete_answers_204_then_404(agent, upstream: Upstream) -> None:
    agent.api("POST", "/api/endpoints", pyngrok_http("web", upstream.port))
    response = agent.api("DELETE", "/api/endpoints/web")
    assert response.status_code == 204
    assert response.content == b""
    assert_error(agent.api("DELETE", "/api/endpoints/web"), 404, 100)
    assert agent.api("GET", "/api/tunnels").json()["tunnels"] == []


def test_a_duplicate_name_is_refused(agent, upstream: Upstream) -> None:
    agent.api("POST", "/api/endpoints", pyngrok_http("web", upstream.port))
    response = agent.api("POST", "/api/endpoints", pyngrok_http("web", upstream.port))
    assert_error(response, 400, 102, 'tunnel "web" already exists')


def test_a_missing_upstream_is_refused(agent) -> None:
    assert_error(agent.api("POST", "/api/endpoints", {"name": "web"}), 400, 102)


def test_an_unknown_key_is_refused(agent) -> None:
    body = {"name": "web", "upstream": {"url": "8080"}, "foo": 1}
    assert_error(agent.api("POST", "/api/endpoints", body), 400, 102)
    assert agent.api("GET", "/api/endpoints").json()["endpoints"] == []


def test_a_listener_failure_is_502(agent) -> None:
    sock, port = busy_port()
    with sock:
        body = {"name": "db", "upstream": {"url": "localhost:5432"}, "url": f"tcp://127.0.0.1:{port}"}
        assert_error(agent.api("POST", "/api/endpoints", body), 502, 103)
