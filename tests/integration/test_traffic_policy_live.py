"""Traffic Policy on live traffic: a real agent, a real two-write service (http.server), real
clients. The policies are ngrok's documentation examples where it gives them, run unchanged; each
action is seen passing one request and answering or changing another, and each capture keeps the
steps the policy took."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import http.client
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent_process import AgentProcess


class EchoHandler(BaseHTTPRequestHandler):
    """Answers with what it received, as JSON; head and body in two writes, like runserver."""

    protocol_version = "HTTP/1.1"
    status = 200

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/fail"):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body.decode("latin-1"),
                "pad": "x" * 2000,
            }
        ).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Internal-Secret", "s3cret")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = _echo

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def service() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def policy_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("policy-agent")).start()
    yield process
    process.stop()


_names = iter(range(10**6))


def _tunnel(agent: AgentProcess, service: ThreadingHTTPServer, policy: str, **extra: Any) -> str:
    name = f"tp-{next(_names)}"
    definition = {"name": name, "proto": "http", "addr": str(service.server_address[1]), "traffic_policy": policy}
    definition.update(extra)
    return str(agent.start_tunnel(**definition)["public_url"])


def _get(
    url: str, *, headers: dict[str, str] | None = None, data: bytes | None = None, method: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _captures(agent: AgentProcess, tunnel_url: str) -> list[dict[str, Any]]:
    """The captures of the tunnel at `tunnel_url`, oldest first (after the sink flushed them)."""
    tunnels = agent.api("GET", "/api/tunnels").json()["tunnels"]
    name = next(t["name"] for t in tunnels if t["public_url"] == tunnel_url)
    listed = agent.api("GET", f"/api/requests/http?limit=1000&tunnel_name={name}").json()["requests"]
    return list(reversed(listed))


def _trace(capture: dict[str, Any]) -> list[dict[str, Any]]:
    return capture.get("traffic_policy") or capture.get("policy") or []


def test_the_docs_custom_response_answers_without_the_service(
    policy_agent: AgentProcess, service: ThreadingHTTPServer
) -> None:
    url = _tunnel(
        policy_agent,
        service,
        """
on_http_request:
  - expressions:
      - req.url.path == '/hello'
    actions:
      - type: custom-response
        config:
          status_code: 200
          body: Hello, World!
          headers:
            content-type: text/plain
""",
    )
    status, headers, body = _get(url + "/hello")
    assert (status, body, headers["content-type"]) == (200, b"Hello, World!", "text/plain")
    status, _, body = _get(url + "/other")
    assert status == 200 and json.loads(body)["path"] == "/other"
    first = _captures(policy_agent, url)[0]
    assert first["response"]["status_code"] == 200
    assert [step["action"] for step in _trace(first)] == ["custom-response"]
    assert _trace(first)[0]["terminal"] is True


def test_basic_auth_refuses_with_401_then_passes_with_credentials(
    policy_agent: AgentProcess, service: ThreadingHTTPServer
) -> None:
    url = _tunnel(
        policy_agent,
        service,
        """
on_http_request:
  - actions:
      - type: basic-auth
        config:
          credentials:
            - user:password1
""",
    )
    status, headers, _ = _get(url + "/private")
    assert status == 401 and headers["www-authenticate"] == 'Basic realm="ngrok"'
    wrong = base64.b64encode(b"user:wrong-password").decode()
    assert _get(url + "/private", headers={"Authorization": f"Basic {wrong}"})[0] == 401
    good = base64.b64encode(b"user:password1").decode()
    status, _, body = _get(url + "/private", headers={"Authorization": f"Basic {good}"})
    assert status == 200 and json.loads(body)["path"] == "/private"
    captures = _captures(policy_agent, url)
    assert [c["response"]["status_code"] for c in captures] == [401, 401, 200]
    assert _trace(captures[0])[0]["action"] == "basic-auth" and _trace(captures[0])[0]["terminal"]
    assert not any(step["terminal"] for step in _trace(captures[2]))


def test_deny_and_restrict_ips_refuse_with_403(policy_agent: AgentProcess, service: ThreadingHTTPServer) -> None:
    url = _tunnel(
        policy_agent,
        service,
        """
on_http_request:
  - expressions: ["req.url.path.startsWith('/admin')"]
    actions:
      - type: deny
  - actions:
      - type: restrict-ips
        config:
          enforce: true
          allow: ["10.0.0.0/8"]
""",
    )
    assert _get(url + "/admin/x")[0] == 403
    assert _get(url + "/anything")[0] == 403  # 127.0.0.1 is not in 10.0.0.0/8
    allowed = _tunnel(
        policy_agent,
        service,
        "on_http_request:\n  - actions:\n      - type: restrict-ips\n        config:\n          allow: ['127.0.0.0/8']\n",
    )
    assert _get(allowed + "/anything")[0] == 200


def test_rate_limit_answers_429_after_capacity(policy_agent: AgentProcess, service: ThreadingHTTPServer) -> None:
    url = _tunnel(
        policy_agent,
        service,
        """
on_http_request:
  - actions:
      - type: rate-limit
        config:
          name: Only allow 3 requests per minute
          algorithm: sliding_window
          capacity: 3
          rate: 60s
          bucket_key:
            - conn.client_ip
""",
    )
    statuses = [_get(url + f"/r{i}")[0] for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    limited = _captures(policy_agent, url)[-1]
    assert limited["response"]["status_code"] == 429
    assert "rate-limit" in [step["action"] for step in _trace(limited)]


def test_redirect_and_url_rewrite(policy_agent: AgentProcess, service: ThreadingHTTPServer) -> None:
    url = _tunnel(
        policy_agent,
        service,
        """
on_http_request:
  - actions:
      - type: redirect
        config:
          from: /old/(.*)
          to: /new/$1
          status_code: 301
      - type: url-rewrite
        config:
          from: /v1/(.*)
          to: /api/$1
""",
    )
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as raised:
        opener.open(url + "/old/page", timeout=30)
    assert raised.value.code == 301 and raised.value.headers["Location"].endswith("/new/page")
    status, _, body = _get(url + "/v1/users?id=7")
    assert status == 200 and json.loads(body)["path"] == "/api/users?id=7"


def test_headers_are_added_and_removed_on_both_sides(policy_agent: AgentProcess, service: ThreadingHTTPServer) -> None:
    url = _tunnel(
        policy_agent,
        service,
        """
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-client-ip: "${conn.client_ip}"
            x-env: staging
      - type: remove-headers
        config:
          headers: [x-drop-me]
on_http_response:
  - actions:
      - type: remove-headers
        config:
          headers: [x-internal-secret]
      - type: add-headers
        config:
          headers:
            x-served-by: "${endpoint.protocol}"
""",
    )
    status, headers, body = _get(url + "/h", headers={"X-Drop-Me": "1"})
    seen = json.loads(body)["headers"]
    assert status == 200
    assert seen["x-client-ip"] == "127.0.0.1" and seen["x-env"] == "staging" and "x-drop-me" not in seen
    assert "x-internal-secret" not in headers and headers["x-served-by"] == "http"
    capture = _captures(policy_agent, url)[-1]
    assert {step["phase"] for step in _trace(capture)} == {"on_http_request", "on_http_response"}


def test_custom_response_in_the_response_phase_replaces_the_services_answer(
    policy_agent: AgentProcess, service: ThreadingHTTPServer
) -> None:
    url = _tunnel(
        policy_agent,
        service,
        """
on_http_response:
  - expressions: ["res.status_code >= 500"]
    actions:
      - type: custom-response
        config:
          status_code: 503
          body: '{"error": "the service is down"}'
""",
    )
    connection = http.client.HTTPConnection(url.split("://")[1], timeout=30)
    for _ in range(3):  # keep-alive survives the replaced answers
        connection.request("GET", "/fail")
        response = connection.getresponse()
        assert response.status == 503 and json.loads(response.read()) == {"error": "the service is down"}
        assert response.headers["Content-Type"] == "application/json"
        connection.request("GET", "/ok")
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["path"] == "/ok"
    connection.close()


def test_compress_response_gzips_for_clients_that_accept_it(
    policy_agent: AgentProcess, service: ThreadingHTTPServer
) -> None:
    url = _tunnel(
        policy_agent,
        service,
        "on_http_response:\n  - actions:\n      - type: compress-response\n        config:\n          algorithms: [gzip]\n",
    )
    status, headers, body = _get(url + "/big", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["path"] == "/big"
    status, headers, body = _get(url + "/plain")
    assert "content-encoding" not in headers and json.loads(body)["path"] == "/plain"


def test_verify_webhook_passes_a_signed_github_delivery_and_refuses_a_tampered_one(
    policy_agent: AgentProcess, service: ThreadingHTTPServer
) -> None:
    url = _tunnel(
        policy_agent,
        service,
        """
on_http_request:
  - actions:
      - type: verify-webhook
        config:
          provider: github
          secret: my-webhook-secret
""",
    )
    payload = json.dumps({"action": "opened", "number": 1}).encode()
    signature = "sha256=" + hmac.new(b"my-webhook-secret", payload, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": signature, "Content-Type": "application/json", "Connection": "close"}
    status, _, body = _get(url + "/hook", data=payload, headers=headers)
    assert status == 200 and json.loads(body)["body"] == payload.decode()
    status, _, _ = _get(url + "/hook", data=payload + b" ", headers=headers)
    assert status == 403
    refused = _captures(policy_agent, url)[-1]
    assert refused["response"]["status_code"] == 403
    assert base64.b64decode(refused["request"]["raw"]).endswith(payload + b" ")


def test_close_connection_closes_without_an_answer(policy_agent: AgentProcess, service: ThreadingHTTPServer) -> None:
    url = _tunnel(
        policy_agent,
        service,
        "on_http_request:\n  - expressions: [\"req.method == 'DELETE'\"]\n    actions:\n      - type: close-connection\n",
    )
    host, port = url.split("://")[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n")
        assert sock.recv(65536) == b""
    assert _get(url + "/still-up")[0] == 200


def test_a_runtime_failure_answers_500_with_an_ngrok_error_code(
    policy_agent: AgentProcess, service: ThreadingHTTPServer
) -> None:
    url = _tunnel(
        policy_agent,
        service,
        "on_http_request:\n  - expressions: [\"req.headers['x-missing'][0] == 'a'\"]\n    actions:\n      - type: deny\n",
    )
    status, headers, _ = _get(url + "/x")
    assert status == 500 and headers["ngrok-error-code"] == "ERR_NGROK_2300"
    capture = _captures(policy_agent, url)[-1]
    assert capture["response"]["status_code"] == 500 and _trace(capture)[-1]["action"] == "error"
    assert _get(url + "/y", headers={"X-Missing": "b"})[0] == 200  # the agent is fine


def test_forward_internal_reaches_an_internal_endpoint_only_through_the_policy(
    policy_agent: AgentProcess, service: ThreadingHTTPServer
) -> None:
    internal = policy_agent.api(
        "POST",
        "/api/endpoints",
        {
            "name": f"internal-{next(_names)}",
            "url": "https://api-svc.internal",
            "upstream": {"url": str(service.server_address[1])},
            "traffic_policy": "on_http_request:\n  - actions:\n      - type: add-headers\n        config:\n          headers:\n            x-via: internal\n",
        },
    )
    assert internal.status_code == 201, internal.text
    url = _tunnel(
        policy_agent,
        service,
        """
on_http_request:
  - expressions: ["req.url.path.startsWith('/api')"]
    actions:
      - type: forward-internal
        config:
          url: https://api-svc.internal
""",
    )
    status, _, body = _get(url + "/api/x")
    assert status == 200 and json.loads(body)["headers"]["x-via"] == "internal"
    status, _, body = _get(url + "/other")
    assert status == 200 and "x-via" not in json.loads(body)["headers"]


def test_a_bad_policy_is_refused_with_a_400_naming_where(
    policy_agent: AgentProcess, service: ThreadingHTTPServer
) -> None:
    response = policy_agent.api(
        "POST",
        "/api/tunnels",
        {
            "name": "bad-policy",
            "proto": "http",
            "addr": str(service.server_address[1]),
            "traffic_policy": "on_http_request:\n  - expressions: ['req.method ==']\n    actions: [{type: deny}]\n",
        },
    )
    assert response.status_code == 400
    assert "on_http_request.rules[0].expressions[0]" in response.text
    response = policy_agent.api(
        "POST",
        "/api/tunnels",
        {
            "name": "cloud-policy",
            "proto": "http",
            "addr": str(service.server_address[1]),
            "traffic_policy": "on_http_request:\n  - actions: [{type: oauth, config: {provider: google}}]\n",
        },
    )
    assert response.status_code == 400 and "ngrok's cloud" in response.text


def test_on_tcp_connect_closes_a_tcp_tunnels_refused_connections(
    policy_agent: AgentProcess, service: ThreadingHTTPServer
) -> None:
    name = f"tcp-{next(_names)}"
    refused = policy_agent.start_tunnel(
        name=name,
        proto="tcp",
        addr=str(service.server_address[1]),
        traffic_policy="on_tcp_connect:\n  - actions:\n      - type: restrict-ips\n        config:\n          allow: ['10.0.0.0/8']\n",
    )
    host, port = refused["public_url"].split("://")[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        # Closed unread: the client sees the end of the stream, or a reset if its bytes arrived.
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert sock.recv(65536) == b""
        except ConnectionResetError:
            pass


def test_replay_bypasses_the_policy_unless_asked(policy_agent: AgentProcess, service: ThreadingHTTPServer) -> None:
    url = _tunnel(
        policy_agent,
        service,
        """
on_http_request:
  - expressions: ["!hasReqHeader('x-token')"]
    actions:
      - type: custom-response
        config: {status_code: 418, body: no token}
""",
    )
    assert _get(url + "/t")[0] == 418
    original = _captures(policy_agent, url)[-1]
    tunnel_name = original["tunnel_name"]
    bypass = policy_agent.api("POST", "/api/requests/http", {"id": original["id"], "tunnel_name": tunnel_name})
    assert bypass.status_code == 204, bypass.text
    through = policy_agent.api(
        "POST", "/api/requests/http", {"id": original["id"], "tunnel_name": tunnel_name, "through_policy": True}
    )
    assert through.status_code == 204, through.text
    replays = _captures(policy_agent, url)[-2:]
    assert [c["response"]["status_code"] for c in replays] == [200, 418]
    assert _trace(replays[0]) == [] and _trace(replays[1])[0]["action"] == "custom-response"


def test_pyngroks_documented_circuit_breaker_example_works(tmp_path: Path, service: ThreadingHTTPServer) -> None:
    agent = AgentProcess(tmp_path / "agent").start()
    try:
        response = agent.api(
            "POST",
            "/api/tunnels",
            {
                "name": "pyngrok-example",
                "proto": "http",
                "addr": str(service.server_address[1]),
                "auth": "user:password",
                "circuit_breaker": 50,
            },
        )
        assert response.status_code == 201, response.text
        url = response.json()["public_url"]
        good = base64.b64encode(b"user:password").decode()
        assert _get(url + "/x")[0] == 401
        assert _get(url + "/x", headers={"Authorization": f"Basic {good}"})[0] == 200
    finally:
        agent.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_pooled_endpoints_share_one_url_in_turn(policy_agent: AgentProcess, service: ThreadingHTTPServer) -> None:
    port = _free_port()
    names = []
    for label in ("a", "b"):
        name = f"pool-{label}-{next(_names)}"
        names.append(name)
        response = policy_agent.api(
            "POST",
            "/api/endpoints",
            {
                "name": name,
                "url": f"http://127.0.0.1:{port}",
                "upstream": {"url": str(service.server_address[1])},
                "pooling_enabled": True,
                "traffic_policy": "on_http_response:\n  - actions:\n      - type: add-headers\n"
                f"        config:\n          headers:\n            x-member: {label}\n",
            },
        )
        assert response.status_code == 201, response.text
    members = [_get(f"http://127.0.0.1:{port}/p{i}", headers={"Connection": "close"})[1]["x-member"] for i in range(6)]
    assert sorted(members) == ["a", "a", "a", "b", "b", "b"]
    refused = policy_agent.api(
        "POST",
        "/api/endpoints",
        {"name": f"solo-{next(_names)}", "url": f"http://127.0.0.1:{port}", "upstream": {"url": "8080"}},
    )
    assert refused.status_code >= 400
    assert policy_agent.api("DELETE", f"/api/endpoints/{names[0]}").status_code == 204
    assert {_get(f"http://127.0.0.1:{port}/q{i}")[1]["x-member"] for i in range(3)} == {"b"}


def _put_labelled(agent: AgentProcess, name: str, upstream: str, label: str) -> dict[str, Any]:
    """PUT the endpoint `name` with a policy that labels each response `x-policy: <label>`."""
    response = agent.api(
        "PUT",
        f"/api/endpoints/{name}",
        {
            "upstream": {"url": upstream},
            "traffic_policy": "on_http_response:\n  - actions:\n      - type: add-headers\n"
            f"        config:\n          headers:\n            x-policy: {label}\n",
        },
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def test_a_new_policy_replaces_the_old_without_dropping_open_connections(
    policy_agent: AgentProcess, service: ThreadingHTTPServer
) -> None:
    name = f"swap-{next(_names)}"

    def put(label: str) -> dict[str, Any]:
        return _put_labelled(policy_agent, name, str(service.server_address[1]), label)

    url = put("one")["url"]
    connection = http.client.HTTPConnection(url.split("://")[1], timeout=30)
    connection.request("GET", "/a")
    first = connection.getresponse()
    first.read()
    assert first.headers["x-policy"] == "one"
    shown = put("two")
    assert shown["url"] == url and "x-policy: two" in shown["traffic_policy"]
    connection.request("GET", "/b")  # the same connection: it was not dropped
    second = connection.getresponse()
    second.read()
    assert second.status == 200 and second.headers["x-policy"] == "two"
    connection.close()


def test_a_file_tunnels_policy_is_swapped_without_dropping_connections(
    policy_agent: AgentProcess, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text("<h1>site</h1>")
    name = f"files-{next(_names)}"

    def put(label: str) -> dict[str, Any]:
        return _put_labelled(policy_agent, name, f"file://{tmp_path}", label)

    url = put("one")["url"]
    connection = http.client.HTTPConnection(url.split("://")[1], timeout=30)
    connection.request("GET", "/")
    first = connection.getresponse()
    assert first.read() == b"<h1>site</h1>" and first.headers["x-policy"] == "one"
    assert put("two")["url"] == url
    connection.request("GET", "/")  # the same connection: the file tunnel was not restarted
    second = connection.getresponse()
    assert second.read() == b"<h1>site</h1>" and second.headers["x-policy"] == "two"
    connection.close()
