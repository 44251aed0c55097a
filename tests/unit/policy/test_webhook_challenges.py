"""The endpoint-verification handshakes verify-webhook answers itself (Twitter CRC, Worldline,
Xero intent to receive, Zoom url_validation), each with the answer its provider documents;
computed here with hmac/hashlib, independently of the code under test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from agentapi.engine.policy.webhook_providers import provider_named, verify
from agentapi.engine.policy.webhook_signing import Verdict

SECRET = b"the webhook secret"
NOW = 1_700_000_000


def run(
    provider: str,
    *,
    method: str = "POST",
    url: str = "https://hooks.example.com/in",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    now: float = NOW,
) -> Verdict:
    return verify(provider_named(provider), SECRET, method=method, url=url, headers=headers or [], body=body, now=now)


def zoom_signed(body: bytes, ts: int = NOW, secret: bytes = SECRET) -> list[tuple[str, str]]:
    signature = hmac.new(secret, f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return [("x-zm-request-timestamp", str(ts)), ("x-zm-signature", f"v0={signature}")]


ZOOM_VALIDATION = json.dumps(
    {"payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event_ts": 1654503849680, "event": "endpoint.url_validation"}
).encode()


def test_a_signed_zoom_url_validation_is_answered_with_the_hashed_token() -> None:
    verdict = run("zoom", headers=zoom_signed(ZOOM_VALIDATION), body=ZOOM_VALIDATION)
    assert verdict.ok
    assert verdict.handshake == "zoom endpoint.url_validation"
    assert verdict.answer is not None
    assert verdict.answer.status == 200
    assert ("Content-Type", "application/json") in verdict.answer.headers
    expected = hmac.new(SECRET, b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert json.loads(verdict.answer.body) == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}


def test_an_unsigned_zoom_url_validation_is_not_answered() -> None:
    # Answering would hand anyone an HMAC of a string they chose under the endpoint's secret.
    verdict = run("zoom", body=ZOOM_VALIDATION)
    assert not verdict.ok
    assert verdict.answer is None
    assert verdict.reason == "missing x-zm-signature"
    forged = run("zoom", headers=zoom_signed(ZOOM_VALIDATION, secret=b"guess"), body=ZOOM_VALIDATION)
    assert forged.answer is None
    assert forged.reason == "signature does not match"


def test_a_stale_zoom_url_validation_is_not_answered() -> None:
    verdict = run("zoom", headers=zoom_signed(ZOOM_VALIDATION, ts=NOW - 301), body=ZOOM_VALIDATION)
    assert verdict.answer is None
    assert verdict.reason == "timestamp outside the 300 s tolerance"


def test_a_signed_zoom_event_is_verified_and_passed_on() -> None:
    body = b'{"event":"meeting.ended","payload":{}}'
    verdict = run("zoom", headers=zoom_signed(body), body=body)
    assert verdict.ok
    assert verdict.answer is None


def test_a_twitter_crc_get_is_answered_with_the_response_token() -> None:
    token = "9b4507b3-9040-4669-9ba2-6ad1b0d9cd7f"
    verdict = run("twitter", method="GET", url=f"https://hooks.example.com/twitter?crc_token={token}&nonce=1")
    assert verdict.ok
    assert verdict.handshake == "twitter CRC check"
    assert verdict.answer is not None
    assert verdict.answer.status == 200
    digest = base64.b64encode(hmac.new(SECRET, token.encode(), hashlib.sha256).digest()).decode()
    assert json.loads(verdict.answer.body) == {"response_token": f"sha256={digest}"}


def test_a_twitter_crc_token_is_url_decoded_before_it_is_signed() -> None:
    verdict = run("twitter", method="GET", url="https://hooks.example.com/t?crc_token=a%2Bb%3D")
    assert verdict.answer is not None
    digest = base64.b64encode(hmac.new(SECRET, b"a+b=", hashlib.sha256).digest()).decode()
    assert json.loads(verdict.answer.body) == {"response_token": f"sha256={digest}"}


def test_a_twitter_get_without_a_crc_token_is_not_answered() -> None:
    verdict = run("twitter", method="GET", url="https://hooks.example.com/twitter")
    assert verdict.answer is None
    assert verdict.reason == "missing x-twitter-webhooks-signature"


def test_a_twitter_post_carrying_a_crc_token_in_its_url_still_needs_its_signature() -> None:
    verdict = run("twitter", url="https://hooks.example.com/t?crc_token=x", body=b"{}")
    assert verdict.answer is None
    assert not verdict.ok


def xero_signed(body: bytes, secret: bytes = SECRET) -> list[tuple[str, str]]:
    return [("x-xero-signature", base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode())]


XERO_INTENT = json.dumps(
    {"events": [], "lastEventSequence": 0, "firstEventSequence": 0, "entropy": "S0m3r4Nd0mt3xt"}
).encode()


def test_a_correctly_signed_xero_intent_to_receive_is_answered_200_with_no_body() -> None:
    verdict = run("xero", headers=xero_signed(XERO_INTENT), body=XERO_INTENT)
    assert verdict.ok
    assert verdict.handshake == "xero intent to receive"
    assert verdict.answer is not None
    assert (verdict.answer.status, verdict.answer.body) == (200, b"")


def test_an_incorrectly_signed_xero_payload_is_refused_401_with_no_body() -> None:
    verdict = run("xero", headers=xero_signed(XERO_INTENT, secret=b"wrong"), body=XERO_INTENT)
    assert not verdict.ok
    assert verdict.reason == "signature does not match"
    assert verdict.refusal is not None
    assert (verdict.refusal.status, verdict.refusal.body) == (401, b"")
    unsigned = run("xero", body=XERO_INTENT)
    assert unsigned.refusal is not None
    assert unsigned.refusal.status == 401


def test_a_signed_xero_event_is_verified_and_passed_on() -> None:
    body = json.dumps({"events": [{"eventType": "CREATE", "resourceId": "x"}], "entropy": "e"}).encode()
    verdict = run("xero", headers=xero_signed(body), body=body)
    assert verdict.ok
    assert verdict.answer is None


def test_a_worldline_verification_get_is_answered_with_its_header_value() -> None:
    headers = [("X-GCS-Webhooks-Endpoint-Verification", "e1a2b3c4-verify-me")]
    verdict = run("worldline", method="GET", headers=headers)
    assert verdict.ok
    assert verdict.handshake == "worldline endpoint verification"
    assert verdict.answer is not None
    assert verdict.answer.status == 200
    assert verdict.answer.body == b"e1a2b3c4-verify-me"
    assert ("Content-Type", "text/plain") in verdict.answer.headers


def test_a_worldline_post_carrying_the_verification_header_still_needs_its_signature() -> None:
    headers = [("X-GCS-Webhooks-Endpoint-Verification", "x")]
    verdict = run("worldline", headers=headers, body=b"{}")
    assert verdict.answer is None
    assert verdict.reason == "missing X-GCS-Signature"


def test_a_challenge_from_another_provider_is_not_answered() -> None:
    verdict = run(
        "github",
        method="GET",
        url="https://hooks.example.com/t?crc_token=x",
        headers=[("X-GCS-Webhooks-Endpoint-Verification", "x")],
    )
    assert verdict.answer is None
    assert not verdict.ok
