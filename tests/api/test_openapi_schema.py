"""GET /api/schema, and schemathesis over it against a running agent.

schemathesis reads the agent's own OpenAPI description and sends generated requests, valid and
invalid ones, to every operation. No answer may be a server error (the one 5xx of the wire format,
502 with error_code 103 for a listener that could not open, excepted), and every answer must be
one the description lists, in the shape it gives. Bounded: a fixed number of examples per
operation, derandomized, no deadline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.helpers import assert_error, wait_for_captures
from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream, start_upstream

EXAMPLES_PER_OPERATION = 30


def test_the_schema_is_openapi_3_json_listing_every_resource(agent) -> None:
    response = agent.api("GET", "/api/schema")
    assert response.status_code == 200
    assert "json" in response.headers["Content-Type"]
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert sorted(schema["paths"]) == [
        "/api/",
        "/api/endpoints",
        "/api/endpoints/{name}",
        "/api/requests/http",
        "/api/requests/http/{id}",
        "/api/requests/http/{id}/websocket",
        "/api/status",
        "/api/tunnels",
        "/api/tunnels/{name}",
    ]
    assert schema["paths"]["/api/tunnels"]["post"]["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def test_the_error_shape_has_its_four_keys_in_order(agent) -> None:
    error = agent.api("GET", "/api/schema").json()["components"]["schemas"]["Error"]
    assert list(error["properties"]) == ["error_code", "status_code", "msg", "details"]
    assert error["required"] == ["error_code", "status_code", "msg", "details"]
    assert error["additionalProperties"] is False


def test_the_schema_is_also_served_as_yaml(agent) -> None:
    response = agent.api("GET", "/api/schema", params={"format": "yaml"})
    assert response.status_code == 200
    assert response.text.startswith("openapi: 3.")


def test_the_root_index_lists_the_schema(agent) -> None:
    assert agent.api("GET", "/api/").json()["schema"] == {"uri": "/api/schema"}


def test_other_methods_on_the_schema_get_the_error_shape(agent) -> None:
    response = agent.api("POST", "/api/schema", {})
    assert_error(response, 405, 100)
    assert "POST" not in response.headers["Allow"]


# --- schemathesis ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzed_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """An agent of its own (fuzzing leaves tunnels behind), with a tunnel and captures to list."""
    upstream: Upstream = start_upstream()
    agent = AgentProcess(tmp_path_factory.mktemp("fuzzed")).start()
    try:
        tunnel = agent.start_tunnel(name="web", addr=str(upstream.port))
        for path in ("/", "/status/404", "/bytes/10"):
            requests.get(tunnel["public_url"] + path, timeout=10)
        wait_for_captures(agent, 3)
        yield agent
    finally:
        agent.stop()
        upstream.close()


@pytest.fixture(scope="module")
def api_schema(fuzzed_agent: AgentProcess) -> Any:
    schema = schemathesis.openapi.from_url(fuzzed_agent.api_url + "/api/schema")
    schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION, deterministic=True, database="none")
    return schema


def not_a_server_error(ctx: Any, response: Any, case: Any) -> None:
    """No 5xx, except the wire format's 502/103: the listener asked for could not be opened."""
    if response.status_code < 500:
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if response.status_code == 502 and isinstance(body, dict) and body.get("error_code") == 103:
        return
    raise AssertionError(
        f"{case.method} {case.formatted_path} answered {response.status_code}: {response.content[:500]!r}"
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here reproduces
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_to_its_description(case: Any, fuzzed_agent: AgentProcess) -> None:
    case.call_and_validate(
        base_url=fuzzed_agent.api_url,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )


def test_the_fuzzed_agent_still_answers(fuzzed_agent: AgentProcess) -> None:
    assert fuzzed_agent.api("GET", "/api/status").json()["status"] == "online"
    assert fuzzed_agent.proc is not None and fuzzed_agent.proc.poll() is None
    assert not [line for line in fuzzed_agent.lines if "Traceback" in line or "lvl=eror" in line]
