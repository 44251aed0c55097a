"""jwt-validation (ngrok's docs, traffic-policy/actions/jwt-validation.mdx): tokens signed with locally
made RSA and EC keys, checked against a JWKS served by a real HTTP server on 127.0.0.1 or read from a
local file; every way a token is refused, with RFC 6750's challenge; key rotation; the config it
refuses. Token times are judged by the exchange's clock, which the test sets."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from agentapi.engine.policy import PolicyError, load_policy
from agentapi.engine.policy.actions.base import REQUEST, Config, PhaseRun
from agentapi.engine.policy.actions.jwt_validation import JwtValidation
from agentapi.engine.policy.facts import ConnFacts, EndpointFacts, RequestFacts
from agentapi.engine.policy.outcomes import Respond
from agentapi.engine.policy.runner import run_phase
from agentapi.engine.policy.variables import Scope

WHERE = "on_http_request.rules[0].actions[0] (jwt-validation).config"
ISSUER = "https://example.com/issuer"
AUDIENCE = "urn:example:api"
NOW = 1_800_000_000.0


@dataclass
class Keys:
    rsa: RSAPrivateKey
    ec: EllipticCurvePrivateKey
    other_rsa: RSAPrivateKey

    def jwk(self, key: RSAPrivateKey | EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
        if isinstance(key, RSAPrivateKey):
            data = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        else:
            data = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**data, "kid": kid, "use": "sig"}


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        other_rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@dataclass
class JwksServer:
    """A JWKS served over real HTTP on 127.0.0.1; `document` can be changed (key rotation)."""

    document: dict[str, Any]
    fetches: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture(scope="module")
def module_jwks_server() -> Iterator[JwksServer]:
    served = JwksServer({})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.fetches.append(self.path)
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            body = json.dumps(served.document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    yield served
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def jwks_server(module_jwks_server: JwksServer, keys: Keys) -> JwksServer:
    """The module's server, serving the RSA and EC keys and with no fetches counted yet."""
    module_jwks_server.document = {"keys": [keys.jwk(keys.rsa, "rsa-1"), keys.jwk(keys.ec, "ec-1")]}
    module_jwks_server.fetches.clear()
    return module_jwks_server


def config(jku: str, **changes: Any) -> dict[str, Any]:
    """The docs' basic example, with one header token and the test's JWKS URL."""
    base: dict[str, Any] = {
        "issuer": {"allow_list": [{"value": ISSUER}]},
        "audience": {"allow_list": [{"value": AUDIENCE}]},
        "http": {
            "tokens": [{"type": "access_token", "method": "header", "name": "Authorization", "prefix": "Bearer "}]
        },
        "jws": {"allowed_algorithms": ["RS256", "ES256"], "keys": {"sources": {"additional_jkus": [jku]}}},
    }
    return {**base, **changes}


def action(raw: dict[str, Any]) -> JwtValidation:
    built = Config(raw, where=WHERE)
    validation = JwtValidation(built, phase=REQUEST)
    built.finish()
    return validation


async def ready(raw: dict[str, Any]) -> JwtValidation:
    validation = action(raw)
    await validation.prepare()
    return validation


def token(key: Any, kid: str | None = "rsa-1", alg: str = "RS256", **claims: Any) -> str:
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "exp": NOW + 300, **claims}
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=alg, headers=headers)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def phase_run(
    headers: list[tuple[str, str]] | None = None,
    *,
    method: str = "GET",
    body: bytes | None = None,
    clock: Clock | None = None,
) -> PhaseRun:
    conn = ConnFacts(client_ip="203.0.113.7", client_port=50123, server_ip="127.0.0.1", server_port=8080, start=0.0)
    endpoint = EndpointFacts("ep_1", "api", "https://example-api.ngrok.app", "example-api.ngrok.app", 443, "https", "")
    scope = Scope(conn=conn, endpoint=endpoint)
    request = RequestFacts(
        method, "/", "1.1", "https", "example-api.ngrok.app", [("Host", "example-api.ngrok.app"), *(headers or [])], 0.0
    )
    request.body = body
    scope.request = request
    return PhaseRun(phase=REQUEST, scope=scope, conn=conn, request=request, clock=clock or Clock(NOW))


def bearer(value: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {value}")]


def refused(outcome: Any) -> tuple[str, str]:
    """(the WWW-Authenticate challenge, the ngrok error code) of a 401."""
    assert isinstance(outcome, Respond)
    assert outcome.status == 401
    fields = dict(outcome.headers)
    return fields["WWW-Authenticate"], fields["ngrok-error-code"]


# Valid tokens


async def test_a_token_signed_by_a_key_of_the_jwks_url_passes_and_is_shown_to_later_rules(
    keys: Keys, jwks_server: JwksServer
) -> None:
    validation = await ready(config(jwks_server.url))
    run = phase_run(bearer(token(keys.rsa)))
    assert validation.run(run) is None
    assert run.trace[-1].outcome == "valid (1 token)"
    result = run.scope.actions["jwt_validation"]
    assert result["error"] == {"code": "", "message": ""}
    [shown] = result["tokens"]
    assert shown["verified"] is True
    assert shown["payload"]["sub"] == "user-1"
    assert shown["header"]["kid"] == "rsa-1"
    assert (shown["location"], shown["location_property"]) == ("header", "Authorization")
    assert jwks_server.fetches == ["/.well-known/jwks.json"]


async def test_an_ec_token_passes_and_a_token_without_kid_is_tried_on_every_key(
    keys: Keys, jwks_server: JwksServer
) -> None:
    validation = await ready(config(jwks_server.url))
    assert validation.run(phase_run(bearer(token(keys.ec, kid="ec-1", alg="ES256")))) is None
    assert validation.run(phase_run(bearer(token(keys.ec, kid=None, alg="ES256")))) is None


async def test_keys_can_come_from_a_local_jwks_file(keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [keys.jwk(keys.ec, "ec-1")]}))
    raw = config("unused")
    raw["jws"] = {"allowed_algorithms": ["ES256"], "keys": {"sources": {"local_jwks_files": [str(path)]}}}
    validation = await ready(raw)
    assert validation.run(phase_run(bearer(token(keys.ec, kid="ec-1", alg="ES256")))) is None


async def test_the_token_is_judged_by_the_exchanges_clock(keys: Keys, jwks_server: JwksServer) -> None:
    validation = await ready(config(jwks_server.url))
    signed = token(keys.rsa, exp=NOW + 60, nbf=NOW - 60)
    assert validation.run(phase_run(bearer(signed), clock=Clock(NOW + 59))) is None
    assert refused(validation.run(phase_run(bearer(signed), clock=Clock(NOW + 60))))[1] == "ERR_NGROK_3401"
    assert refused(validation.run(phase_run(bearer(signed), clock=Clock(NOW - 61))))[1] == "ERR_NGROK_3401"


async def test_without_an_audience_list_any_token_without_aud_passes(keys: Keys, jwks_server: JwksServer) -> None:
    raw = config(jwks_server.url)
    del raw["audience"]
    validation = await ready(raw)
    assert validation.run(phase_run(bearer(token(keys.rsa, aud=None)))) is None
    run = phase_run(bearer(token(keys.rsa)))
    refused(validation.run(run))
    assert run.trace[-1].outcome == "refused 401, the audience is not allowed"


# Refused tokens


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://example.com/issuer/"}, "the issuer is not allowed"),
        ({"iss": None}, "the token has no issuer"),
        ({"aud": "urn:other:api"}, "the audience is not allowed"),
        ({"aud": None}, "the token has no audience"),
        ({"exp": NOW - 1}, "the token has expired"),
        ({"nbf": NOW + 30}, "the token is not valid yet"),
    ],
)
async def test_a_token_whose_claims_do_not_match_is_refused_with_rfc_6750s_challenge(
    keys: Keys, jwks_server: JwksServer, claims: dict[str, Any], reason: str
) -> None:
    validation = await ready(config(jwks_server.url))
    run = phase_run(bearer(token(keys.rsa, **claims)))
    challenge, code = refused(validation.run(run))
    assert challenge == f'Bearer error="invalid_token", error_description="{reason}"'
    assert code == "ERR_NGROK_3401"
    entry = run.trace[-1]
    assert (entry.action, entry.outcome, entry.terminal) == ("jwt-validation", f"refused 401, {reason}", True)
    assert run.scope.actions["jwt_validation"]["error"] == {"code": "ERR_NGROK_3401", "message": reason}
    assert run.scope.actions["jwt_validation"]["tokens"][0]["verified"] is False


async def test_a_token_signed_by_another_key_is_refused(keys: Keys, jwks_server: JwksServer) -> None:
    validation = await ready(config(jwks_server.url))
    run = phase_run(bearer(token(keys.other_rsa, kid="rsa-1")))
    refused(validation.run(run))
    assert run.trace[-1].outcome == "refused 401, the signature does not verify"


async def test_a_token_with_an_algorithm_not_allowed_is_refused(keys: Keys, jwks_server: JwksServer) -> None:
    raw = config(jwks_server.url)
    raw["jws"]["allowed_algorithms"] = ["RS256"]
    validation = await ready(raw)
    run = phase_run(bearer(token(keys.ec, kid="ec-1", alg="ES256")))
    refused(validation.run(run))
    assert run.trace[-1].outcome == "refused 401, algorithm ES256 is not allowed"


async def test_a_key_serves_any_allowed_algorithm_of_its_type_and_no_other(keys: Keys, jwks_server: JwksServer) -> None:
    raw = config(jwks_server.url)
    raw["jws"]["allowed_algorithms"] = ["PS256", "ES256"]
    validation = await ready(raw)
    # rsa-1 has no "alg": it verifies PS256 as well as RS256.
    assert validation.run(phase_run(bearer(token(keys.rsa, alg="PS256")))) is None
    # An EC signature claiming the RSA key's kid finds no key that fits ES256.
    run = phase_run(bearer(token(keys.ec, kid="rsa-1", alg="ES256")))
    refused(validation.run(run))
    assert run.trace[-1].outcome == "refused 401, no key for ES256"


async def test_a_request_without_the_token_gets_a_bare_bearer_challenge(keys: Keys, jwks_server: JwksServer) -> None:
    validation = await ready(config(jwks_server.url))
    run = phase_run()
    assert refused(validation.run(run)) == ("Bearer", "ERR_NGROK_3408")
    assert run.trace[-1].outcome == "refused 401, header Authorization not found"
    basic = phase_run([("Authorization", "Basic dXNlcjpwYXNzd29yZA==")])
    assert refused(validation.run(basic)) == ("Bearer", "ERR_NGROK_3413")
    assert basic.trace[-1].outcome == "refused 401, prefix 'Bearer' not found"


async def test_the_prefix_is_matched_as_an_authentication_scheme_without_regard_to_case(
    keys: Keys, jwks_server: JwksServer
) -> None:
    validation = await ready(config(jwks_server.url))
    assert validation.run(phase_run([("authorization", f"bearer {token(keys.rsa)}")])) is None


async def test_a_malformed_token_is_refused(keys: Keys, jwks_server: JwksServer) -> None:
    validation = await ready(config(jwks_server.url))
    run = phase_run(bearer("not.a.jwt"))
    assert refused(validation.run(run))[1] == "ERR_NGROK_3416"
    assert run.trace[-1].outcome == "refused 401, the token could not be parsed"


async def test_every_listed_token_must_be_present(keys: Keys, jwks_server: JwksServer) -> None:
    raw = config(jwks_server.url)
    raw["http"]["tokens"].append({"type": "it+jwt", "method": "header", "name": "X-Id-Token"})
    validation = await ready(raw)
    signed = token(keys.rsa)
    run = phase_run(bearer(signed))
    assert refused(validation.run(run))[1] == "ERR_NGROK_3408"
    both = phase_run([*bearer(signed), ("X-Id-Token", signed)])
    assert validation.run(both) is None
    assert both.trace[-1].outcome == "valid (2 tokens)"


# Tokens in the body


async def test_a_body_token_is_read_from_a_json_or_form_post_and_not_from_a_get(
    keys: Keys, jwks_server: JwksServer
) -> None:
    raw = config(jwks_server.url)
    raw["http"] = {"tokens": [{"type": "it+jwt", "method": "body", "name": "_id_token"}]}
    validation = await ready(raw)
    assert validation.needs_body
    signed = token(keys.rsa)
    json_post = phase_run(
        [("Content-Type", "application/json")], method="POST", body=json.dumps({"_ID_TOKEN": signed}).encode()
    )
    assert validation.run(json_post) is None
    assert json_post.scope.actions["jwt_validation"]["tokens"][0]["location"] == "body"
    form_put = phase_run(
        [("Content-Type", "application/x-www-form-urlencoded")], method="PUT", body=f"_id_token={signed}".encode()
    )
    assert validation.run(form_put) is None
    assert refused(validation.run(phase_run(method="GET")))[1] == "ERR_NGROK_3415"
    text = phase_run([("Content-Type", "text/plain")], method="POST", body=signed.encode())
    assert refused(validation.run(text))[1] == "ERR_NGROK_3414"


async def test_only_body_tokens_make_the_action_need_the_body(jwks_server: JwksServer) -> None:
    assert not action(config(jwks_server.url)).needs_body


# Keys: loading, rotation, refresh


async def test_an_unknown_kid_is_refused_and_refreshes_the_keys_in_the_background(
    keys: Keys, jwks_server: JwksServer
) -> None:
    validation = await ready(config(jwks_server.url))
    jwks_server.document = {"keys": [keys.jwk(keys.other_rsa, "rsa-2")]}  # the issuer rotated its key
    rotated = token(keys.other_rsa, kid="rsa-2")
    run = phase_run(bearer(rotated))
    refused(validation.run(run))
    assert run.trace[-1].outcome == "refused 401, no key has kid 'rsa-2' (refreshing the keys)"
    assert validation.keys.refreshing is not None
    await validation.keys.refreshing
    assert len(jwks_server.fetches) == 2
    assert validation.run(phase_run(bearer(rotated))) is None
    # Another unknown kid within a minute does not fetch again.
    refused(validation.run(phase_run(bearer(token(keys.rsa, kid="rsa-3")), clock=Clock(NOW + 59))))
    assert len(jwks_server.fetches) == 2


async def test_keys_are_read_again_after_fifteen_minutes_without_holding_requests(
    keys: Keys, jwks_server: JwksServer
) -> None:
    validation = await ready(config(jwks_server.url))
    signed = token(keys.rsa, exp=NOW + 3600)
    assert validation.run(phase_run(bearer(signed), clock=Clock(NOW))) is None
    assert validation.run(phase_run(bearer(signed), clock=Clock(NOW + 899))) is None
    assert validation.keys.refreshing is None
    assert validation.run(phase_run(bearer(signed), clock=Clock(NOW + 900))) is None
    assert validation.keys.refreshing is not None
    await validation.keys.refreshing
    assert len(jwks_server.fetches) == 2


async def test_a_refresh_that_fails_keeps_the_old_keys(keys: Keys, jwks_server: JwksServer) -> None:
    validation = await ready(config(jwks_server.url))
    jwks_server.document = {"not": "a jwks"}
    refused(validation.run(phase_run(bearer(token(keys.rsa, kid="rsa-9")))))
    assert validation.keys.refreshing is not None
    await validation.keys.refreshing
    assert validation.run(phase_run(bearer(token(keys.rsa)))) is None


async def test_closing_the_action_stops_a_refresh_under_way(keys: Keys, jwks_server: JwksServer) -> None:
    validation = await ready(config(jwks_server.url))
    refused(validation.run(phase_run(bearer(token(keys.rsa, kid="rsa-9")))))
    refreshing = validation.keys.refreshing
    assert refreshing is not None
    validation.close()
    with pytest.raises(asyncio.CancelledError):
        await refreshing


async def test_a_jwks_url_that_cannot_be_read_refuses_the_endpoint_naming_it(jwks_server: JwksServer) -> None:
    missing = jwks_server.url.replace("jwks.json", "missing.json")
    with pytest.raises(PolicyError) as error:
        await ready(config(missing))
    assert str(error.value) == (f"{WHERE}.jws.keys: jwt-validation: the JWKS URL {missing} could not be read: HTTP 404")


async def test_a_url_that_serves_no_jwks_refuses_the_endpoint(jwks_server: JwksServer) -> None:
    jwks_server.document = {"keys": [{"kty": "nonsense"}]}
    with pytest.raises(PolicyError, match="did not serve a JWKS: no key this agent can use"):
        await ready(config(jwks_server.url))


async def test_a_missing_jwks_file_refuses_the_endpoint_naming_it(tmp_path: Path) -> None:
    raw = config("unused")
    path = str(tmp_path / "absent.json")
    raw["jws"]["keys"] = {"sources": {"local_jwks_files": [path]}}
    with pytest.raises(PolicyError, match=f"the JWKS file {path} could not be read: No such file or directory"):
        await ready(raw)


# Config


def test_keys_may_be_given_as_ngroks_table_writes_them_a_list_of_objects() -> None:
    raw = config("https://idp.example/jwks.json")
    raw["jws"]["keys"] = [
        {"identification": [{"token_claims": ["kid"]}], "sources": [{"additional_jkus": ["https://idp.example/a"]}]}
    ]
    assert [source.location for source in action(raw).keys.sources] == ["https://idp.example/a"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("jws", "allowed_algorithms"), ["none"], "jws.allowed_algorithms: none is not supported: it is insecure"),
        (
            ("jws", "allowed_algorithms"),
            ["HS256"],
            "jws.allowed_algorithms: HS256 is not supported: HMAC keys are secret and cannot come from a JWKS",
        ),
        (
            ("jws", "allowed_algorithms"),
            ["RS256", "RS256"],
            "jws.allowed_algorithms: the algorithm 'RS256' must be unique: it is listed twice",
        ),
        (("jws", "allowed_algorithms"), [], "jws.allowed_algorithms: must have at least 1 entries"),
        (
            ("issuer", "allow_list"),
            [{"value": ISSUER}, {"value": ISSUER}],
            f"issuer.allow_list: the issuer '{ISSUER}' must be unique: it is listed twice",
        ),
        (("issuer", "allow_list"), [], "issuer.allow_list: must be a list of at least one object"),
        (("issuer", "allow_list"), [{"value": ISSUER, "regex": True}], "issuer.allow_list[0].regex: unknown field"),
        (("audience", "allow_list"), [], "audience.allow_list: must be a list of at least one object"),
        (
            ("http", "tokens"),
            [{"type": "saml", "method": "header", "name": "Authorization"}],
            "http.tokens[0].type: must be one of id_token, access_token, at+jwt, it+jwt, plain, jwt, was 'saml'",
        ),
        (
            ("http", "tokens"),
            [{"type": "jwt", "method": "query", "name": "token"}],
            "http.tokens[0].method: must be header or body, was 'query'",
        ),
        (
            ("http", "tokens"),
            [{"type": "jwt", "method": "header", "name": "A"}, {"type": "jwt", "method": "header", "name": "a"}],
            "http.tokens: the header token 'a' is listed twice",
        ),
        (
            ("jws", "keys"),
            {"sources": {"additional_jkus": ["https://idp.example/${req.host}"]}},
            "jws.keys.sources.additional_jkus: cannot use ${...}: the keys are read when the endpoint starts",
        ),
        (
            ("jws", "keys"),
            {"sources": {"additional_jkus": ["ftp://idp.example/jwks"]}},
            "jws.keys.sources.additional_jkus: 'ftp://idp.example/jwks' is not an http or https URL",
        ),
        (
            ("jws", "keys"),
            {"sources": {}},
            "jws.keys.sources.additional_jkus: is required (or local_jwks_files)",
        ),
        (
            ("jws", "keys"),
            {"sources": {"additional_jkus": ["https://a.example/j"]}, "identification": {"token_claims": ["x5t"]}},
            "jws.keys.identification.token_claims: the only supported claim is kid, was 'x5t'",
        ),
    ],
)
def test_bad_configs_are_refused_naming_the_field(path: tuple[str, str], value: Any, message: str) -> None:
    raw = config("https://idp.example/jwks.json")
    raw[path[0]][path[1]] = value
    with pytest.raises(PolicyError) as error:
        action(raw)
    assert str(error.value) == f"{WHERE}.{message}"


@pytest.mark.parametrize("section", ["issuer", "http", "jws"])
def test_the_required_sections_are_required(section: str) -> None:
    raw = config("https://idp.example/jwks.json")
    del raw[section]
    with pytest.raises(PolicyError) as error:
        action(raw)
    assert str(error.value) == f"{WHERE}.{section}: is required"


# Through load_policy: the docs' basic example, and ${...} in an issuer

DOCS_POLICY = """
on_http_request:
  - actions:
      - type: jwt-validation
        config:
          issuer:
            allow_list:
              - value: https://example.com/issuer
          audience:
            allow_list:
              - value: urn:example:api
          http:
            tokens:
              - type: access_token
                method: header
                name: Authorization
                prefix: 'Bearer '
              - type: it+jwt
                method: body
                name: _id_token
          jws:
            allowed_algorithms:
              - RS256
              - ES256
            keys:
              sources:
                additional_jkus:
                  - JKU
"""


async def test_the_docs_policy_asks_for_the_body_and_lets_a_request_with_both_tokens_through(
    keys: Keys, jwks_server: JwksServer
) -> None:
    policy = load_policy(DOCS_POLICY.replace("JKU", jwks_server.url), proto="https")
    assert policy.needs_request_body
    for loaded in policy.actions():
        await loaded.prepare()
    access, identity = token(keys.rsa), token(keys.ec, kid="ec-1", alg="ES256")
    run = phase_run(
        [*bearer(access), ("Content-Type", "application/json")],
        method="POST",
        body=json.dumps({"_id_token": identity}).encode(),
    )
    assert run_phase(policy, run) is None
    tokens = run.scope.actions["jwt_validation"]["tokens"]
    assert [(shown["location_property"], shown["verified"]) for shown in tokens] == [
        ("Authorization", True),
        ("_id_token", True),
    ]


async def test_an_issuer_may_be_interpolated_per_request(keys: Keys, jwks_server: JwksServer) -> None:
    text = DOCS_POLICY.replace("JKU", jwks_server.url).replace(
        "https://example.com/issuer", "https://${req.host}/issuer"
    )
    text = text.replace(
        "              - type: it+jwt\n                method: body\n                name: _id_token\n", ""
    )
    policy = load_policy(text, proto="https")
    assert not policy.needs_request_body
    for loaded in policy.actions():
        await loaded.prepare()
    host_issued = token(keys.rsa, iss="https://example-api.ngrok.app/issuer")
    assert run_phase(policy, phase_run(bearer(host_issued))) is None
    refused(run_phase(policy, phase_run(bearer(token(keys.rsa)))))
