"""compress-response (ngrok's docs, traffic-policy/actions/compress-response.mdx): Accept-Encoding
negotiation with q-values (RFC 9110 12.5.3), the responses it leaves alone, its config and what it
tells later rules."""

from __future__ import annotations

from typing import Any

import pytest

from agentapi.engine.policy import PolicyError, load_policy
from agentapi.engine.policy.actions.base import RESPONSE, Config, PhaseRun
from agentapi.engine.policy.actions.compress_response import CompressResponse, compressible_type, negotiate
from agentapi.engine.policy.facts import ConnFacts, EndpointFacts, RequestFacts, ResponseFacts
from agentapi.engine.policy.runner import run_phase
from agentapi.engine.policy.variables import Scope

WHERE = "on_http_response.rules[0].actions[0] (compress-response).config"
ALL = ("gzip", "deflate", "br", "compress")


def action(config: dict[str, Any] | None = None) -> CompressResponse:
    built = Config(config, where=WHERE)
    compress = CompressResponse(built, phase=RESPONSE)
    built.finish()
    return compress


def phase_run(
    *,
    accept: str | None = "gzip, deflate, br",
    method: str = "GET",
    status: int = 200,
    headers: list[tuple[str, str]] | None = None,
) -> PhaseRun:
    conn = ConnFacts(client_ip="203.0.113.7", client_port=50123, server_ip="127.0.0.1", server_port=8080, start=0.0)
    endpoint = EndpointFacts("ep_1", "web", "https://example.ngrok.app", "example.ngrok.app", 443, "https", "")
    scope = Scope(conn=conn, endpoint=endpoint)
    request_headers = [("Host", "example.ngrok.app")]
    if accept is not None:
        request_headers.append(("Accept-Encoding", accept))
    request = RequestFacts(method, "/api/posts", "1.1", "https", "example.ngrok.app", request_headers, 0.0)
    response = ResponseFacts(
        status, "OK", "1.1", headers if headers is not None else [("Content-Type", "application/json")]
    )
    scope.request, scope.response = request, response
    return PhaseRun(phase=RESPONSE, scope=scope, conn=conn, request=request, response=response)


# Negotiation


def test_the_docs_example_picks_gzip_for_its_highest_q_value() -> None:
    assert negotiate("gzip;q=1.0, br; q=0.5, *;q=0", ALL) == "gzip"


def test_the_highest_q_value_wins_whatever_the_configured_order() -> None:
    assert negotiate("gzip;q=0.5, br", ALL) == "br"


def test_equal_q_values_go_to_the_coding_configured_first() -> None:
    assert negotiate("br, gzip", ALL) == "gzip"
    assert negotiate("br, gzip", ("br", "gzip")) == "br"


def test_q_zero_makes_a_coding_unacceptable() -> None:
    assert negotiate("gzip;q=0, deflate", ALL) == "deflate"
    assert negotiate("gzip;q=0", ALL) is None


def test_a_star_gives_its_q_to_every_coding_not_named() -> None:
    assert negotiate("*", ("br", "gzip")) == "br"
    assert negotiate("gzip;q=0, *;q=0.3", ("gzip", "deflate")) == "deflate"
    assert negotiate("*;q=0", ALL) is None


def test_identity_preferred_over_every_coding_keeps_the_body_as_it_is() -> None:
    assert negotiate("identity;q=1, gzip;q=0.5", ALL) is None
    assert negotiate("identity;q=0.5, gzip", ALL) == "gzip"
    assert negotiate("identity", ALL) is None


def test_an_empty_header_wants_no_coding() -> None:
    assert negotiate("", ALL) is None


def test_names_are_case_insensitive_and_x_gzip_is_gzip() -> None:
    assert negotiate("GZIP", ALL) == "gzip"
    assert negotiate("x-gzip", ALL) == "gzip"
    assert negotiate("x-compress", ("compress",)) == "compress"


def test_a_coding_the_action_does_not_offer_is_never_chosen() -> None:
    assert negotiate("zstd, br", ("gzip",)) is None
    assert negotiate("zstd, gzip;q=0.1", ("zstd", "gzip")) == "zstd"


def test_a_member_whose_weight_does_not_parse_is_ignored() -> None:
    assert negotiate("br;q=2, gzip;q=0.1", ALL) == "gzip"
    assert negotiate("br;level=3, deflate;q=0.2", ALL) == "deflate"


def test_media_already_compressed_is_not_compressible() -> None:
    assert not compressible_type("image/png")
    assert not compressible_type("video/mp4")
    assert not compressible_type("application/zip")
    assert not compressible_type("font/woff2")
    assert compressible_type("image/svg+xml")
    assert compressible_type("application/json")
    assert compressible_type("text/event-stream")
    assert compressible_type("")


# The action


def test_it_chooses_the_coding_notes_it_and_tells_later_rules() -> None:
    run = phase_run(accept="br;q=0.9, gzip")
    assert action({"algorithms": ["gzip", "br", "deflate", "compress"]}).run(run) is None
    assert run.compress == "gzip"
    assert [(entry.action, entry.outcome, entry.terminal) for entry in run.trace] == [
        ("compress-response", "gzip", False)
    ]
    assert run.scope.actions["compress"] == {"already_compressed": False, "negotiated_algorithm": "gzip"}


def test_the_default_algorithms_are_the_docs_four() -> None:
    assert action().algorithms == ALL
    run = phase_run(accept="compress")
    action().run(run)
    assert run.compress == "compress"


@pytest.mark.parametrize(
    ("run_kwargs", "reason"),
    [
        ({"accept": None}, "no Accept-Encoding"),
        ({"accept": "zstd"}, "no acceptable coding"),
        ({"method": "HEAD"}, "no body"),
        ({"status": 204}, "no body"),
        ({"status": 304}, "no body"),
        ({"status": 101}, "no body"),
        ({"status": 206}, "a range"),
        ({"headers": [("Content-Length", "0")]}, "empty body"),
        ({"headers": [("Cache-Control", "public, no-transform")]}, "Cache-Control: no-transform"),
        ({"headers": [("Content-Type", "image/png")]}, "image/png is already compressed"),
    ],
)
def test_responses_it_leaves_alone_say_why(run_kwargs: dict[str, Any], reason: str) -> None:
    run = phase_run(**run_kwargs)
    action().run(run)
    assert run.compress is None
    assert run.trace[0].outcome == f"not compressed: {reason}"
    assert run.scope.actions["compress"] == {"already_compressed": False, "negotiated_algorithm": ""}


@pytest.mark.parametrize(
    "headers", [[("Content-Encoding", "gzip")], [("Content-Encoding", "br")], [("Transfer-Encoding", "gzip, chunked")]]
)
def test_a_body_already_encoded_is_not_compressed_again(headers: list[tuple[str, str]]) -> None:
    run = phase_run(headers=headers)
    action().run(run)
    assert run.compress is None
    assert run.trace[0].outcome == "not compressed: already encoded"
    assert run.scope.actions["compress"]["already_compressed"] is True


def test_an_identity_content_encoding_is_no_encoding() -> None:
    run = phase_run(headers=[("Content-Encoding", "identity"), ("Transfer-Encoding", "chunked")])
    action().run(run)
    assert run.compress == "gzip"


def test_a_second_action_does_not_undo_the_first_choice() -> None:
    run = phase_run(accept="gzip, br")
    action({"algorithms": ["br"]}).run(run)
    action({"algorithms": ["gzip"]}).run(run)
    assert run.compress == "br"
    assert run.trace[1].outcome == "not compressed: br already chosen"


def test_zstd_is_offered_only_when_configured() -> None:
    run = phase_run(accept="zstd")
    action({"algorithms": ["zstd", "gzip"]}).run(run)
    assert run.compress == "zstd"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"algorithms": ["gzip", "lzma"]}, "algorithms: contained an invalid algorithm: 'lzma'"),
        ({"algorithms": ["gzip", "gzip"]}, "algorithms: each algorithm must be unique: 'gzip' is listed twice"),
        ({"algorithms": []}, "algorithms: must be a list of at least one algorithm"),
        ({"algorithms": "gzip"}, "algorithms: must be a list of at least one algorithm"),
        ({"level": 9}, "level: unknown field"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        action(config)
    assert str(refused.value).startswith(f"{WHERE}.{message}")


DOCS_POLICY = """
on_http_response:
  - expressions:
      - "req.url.path.startsWith('/api/')"
    actions:
      - type: "compress-response"
        config:
          algorithms:
            - "gzip"
            - "br"
            - "deflate"
            - "compress"
"""


@pytest.mark.parametrize(("path", "coding"), [("/api/posts", "gzip"), ("/index.html", None)])
def test_the_docs_policy_compresses_api_paths_only(path: str, coding: str | None) -> None:
    policy = load_policy(DOCS_POLICY, proto="https")
    run = phase_run(accept="gzip, deflate, br")
    assert run.request is not None
    run.request.target = path
    assert run_phase(policy, run) is None
    assert run.compress == coding
