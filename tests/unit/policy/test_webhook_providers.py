"""Each webhook provider's scheme: a request signed the way the provider documents it passes; a
tampered body, a missing signature, a wrong secret and a stale timestamp fail with their reason.

The signatures are made here from the providers' documentation with hmac/hashlib directly, never
with the code under test, so a wrong header, digest, encoding or signed content shows up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agentapi.engine.policy.errors import PolicyError
from agentapi.engine.policy.webhook_providers import NOT_VERIFIED_HERE, PROVIDERS, provider_named, verify
from agentapi.engine.policy.webhook_signing import Verdict

SECRET = b"It's a Secret to Everybody"
NOW = 1_700_000_000
URL = "https://hooks.example.com/webhooks/in?source=test"
JSON_BODY = b'{"event":"ping","id":42,"text":"caf\xc3\xa9"}'
FORM_BODY = b"To=%2B15551234567&From=%2B15557654321&Body=Hello+there&AccountSid=AC123&Body=again"

Headers = list[tuple[str, str]]


def hex_mac(secret: bytes, message: bytes, digest: str = "sha256") -> str:
    return hmac.new(secret, message, digest).hexdigest()


def b64_mac(secret: bytes, message: bytes, digest: str = "sha256") -> str:
    return base64.b64encode(hmac.new(secret, message, digest).digest()).decode()


SVIX_KEY = b"\x01\x02svix key bytes\xfe\xff"
SVIX_SECRET = b"whsec_" + base64.b64encode(SVIX_KEY)
TEAMS_KEY = b"teams security token bytes"
TEAMS_SECRET = base64.b64encode(TEAMS_KEY)
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())


def sendgrid_secret(key: ec.EllipticCurvePrivateKey) -> bytes:
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(public)


SENDGRID_SECRET = sendgrid_secret(SENDGRID_KEY)
OTHER_KEY = base64.b64encode(b"another key")


def standard_webhooks(prefix: str, key: bytes) -> Callable[[bytes, bytes, int], Headers]:
    def sign(secret: bytes, body: bytes, ts: int) -> Headers:
        message_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
        signature = base64.b64encode(hmac.new(key, f"{message_id}.{ts}.".encode() + body, "sha256").digest())
        return [
            (f"{prefix}-id", message_id),
            (f"{prefix}-timestamp", str(ts)),
            (f"{prefix}-signature", f"v1,{signature.decode()}"),
        ]

    return sign


def twilio_form(secret: bytes, body: bytes, ts: int) -> Headers:
    # Twilio: the full URL, then each POST parameter name+value sorted by name; HMAC-SHA1, base64.
    params = sorted(set(parse_qsl(body.decode(), keep_blank_values=True)))
    signed = URL + "".join(name + value for name, value in params)
    return [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Twilio-Signature", b64_mac(secret, signed.encode(), "sha1")),
    ]


def sendgrid(secret: bytes, body: bytes, ts: int) -> Headers:
    signature = SENDGRID_KEY.sign(str(ts).encode() + body, ec.ECDSA(hashes.SHA256()))
    return [
        ("X-Twilio-Email-Event-Webhook-Signature", base64.b64encode(signature).decode()),
        ("X-Twilio-Email-Event-Webhook-Timestamp", str(ts)),
    ]


def rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def box_signed(secret: bytes, body: bytes, ts: int) -> Headers:
    stamp = rfc3339(ts)
    return [
        ("BOX-DELIVERY-TIMESTAMP", stamp),
        ("BOX-SIGNATURE-ALGORITHM", "HmacSHA256"),
        ("BOX-SIGNATURE-VERSION", "1"),
        ("BOX-SIGNATURE-PRIMARY", b64_mac(b"the other key", body + stamp.encode())),
        ("BOX-SIGNATURE-SECONDARY", b64_mac(secret, body + stamp.encode())),
    ]


def linear_body(ts: int) -> bytes:
    return json.dumps({"action": "create", "type": "Issue", "webhookTimestamp": ts * 1000}).encode()


@dataclass(frozen=True)
class Case:
    """How one provider signs a request (from its documentation)."""

    provider: str
    sign: Callable[[bytes, bytes, int], Headers]  # (secret, body, timestamp) -> headers to add
    signature_header: str | None  # dropping it gives "missing <it>"
    tolerance: float | None = None  # signs a timestamp held to this window
    secret: bytes = SECRET
    other_secret: bytes = b"another secret"  # a secret of the right kind that is not the one that signed
    body: Callable[[int], bytes] = field(default=lambda ts: JSON_BODY)
    body_signed: bool = True  # the signature covers the body


CASES = [
    Case("github", lambda s, b, t: [("X-Hub-Signature-256", "sha256=" + hex_mac(s, b))], "X-Hub-Signature-256"),
    Case(
        "stripe",
        lambda s, b, t: [("Stripe-Signature", f"t={t},v1={hex_mac(s, f'{t}.'.encode() + b)},v0=00")],
        "Stripe-Signature",
        tolerance=300,
    ),
    Case(
        "slack",
        lambda s, b, t: [
            ("X-Slack-Request-Timestamp", str(t)),
            ("X-Slack-Signature", "v0=" + hex_mac(s, f"v0:{t}:".encode() + b)),
        ],
        "X-Slack-Signature",
        tolerance=300,
    ),
    Case("shopify", lambda s, b, t: [("X-Shopify-Hmac-Sha256", b64_mac(s, b))], "X-Shopify-Hmac-Sha256"),
    Case("twilio", twilio_form, "X-Twilio-Signature", body=lambda ts: FORM_BODY),
    Case("gitlab", lambda s, b, t: [("X-Gitlab-Token", s.decode())], "X-Gitlab-Token", body_signed=False),
    Case(
        "svix",
        standard_webhooks("svix", SVIX_KEY),
        "svix-signature",
        tolerance=300,
        secret=SVIX_SECRET,
        other_secret=b"whsec_" + OTHER_KEY,
    ),
    Case(
        "clerk",
        standard_webhooks("svix", SVIX_KEY),
        "svix-signature",
        tolerance=300,
        secret=SVIX_SECRET,
        other_secret=b"whsec_" + OTHER_KEY,
    ),
    # Brex gives its secret as bare base64, without whsec_.
    Case(
        "brex",
        standard_webhooks("webhook", SVIX_KEY),
        "webhook-signature",
        tolerance=300,
        secret=base64.b64encode(SVIX_KEY),
        other_secret=OTHER_KEY,
    ),
    Case("hmac-sha256", lambda s, b, t: [("X-Signature-256", "sha256=" + hex_mac(s, b))], "X-Signature-256"),
    Case(
        "zoom",
        lambda s, b, t: [
            ("x-zm-request-timestamp", str(t)),
            ("x-zm-signature", "v0=" + hex_mac(s, f"v0:{t}:".encode() + b)),
        ],
        "x-zm-signature",
        tolerance=300,
    ),
    Case(
        "twitter",
        lambda s, b, t: [("x-twitter-webhooks-signature", "sha256=" + b64_mac(s, b))],
        "x-twitter-webhooks-signature",
    ),
    Case("xero", lambda s, b, t: [("x-xero-signature", b64_mac(s, b))], "x-xero-signature"),
    Case("worldline", lambda s, b, t: [("X-GCS-Signature", b64_mac(s, b)), ("X-GCS-KeyId", "k1")], "X-GCS-Signature"),
    Case("aftership", lambda s, b, t: [("aftership-hmac-sha256", b64_mac(s, b))], "aftership-hmac-sha256"),
    Case("alchemy", lambda s, b, t: [("X-Alchemy-Signature", hex_mac(s, b))], "X-Alchemy-Signature"),
    Case("autodesk", lambda s, b, t: [("x-adsk-signature", "sha1hash=" + hex_mac(s, b, "sha1"))], "x-adsk-signature"),
    Case("bitbucket", lambda s, b, t: [("X-Hub-Signature", "sha256=" + hex_mac(s, b))], "X-Hub-Signature"),
    Case("bolt", lambda s, b, t: [("X-Bolt-Hmac-Sha256", b64_mac(s, b))], "X-Bolt-Hmac-Sha256"),
    Case("box", box_signed, None, tolerance=600),  # two signature headers: its own test
    Case(
        "buildkite",
        lambda s, b, t: [("X-Buildkite-Signature", f"timestamp={t},signature={hex_mac(s, f'{t}.'.encode() + b)}")],
        "X-Buildkite-Signature",
        tolerance=300,
    ),
    Case(
        "calendly",
        lambda s, b, t: [("Calendly-Webhook-Signature", f"t={t},v1={hex_mac(s, f'{t}.'.encode() + b)}")],
        "Calendly-Webhook-Signature",
        tolerance=180,
    ),
    Case("castle", lambda s, b, t: [("X-Castle-Signature", b64_mac(s, b))], "X-Castle-Signature"),
    Case(
        "chargify",
        lambda s, b, t: [("X-Chargify-Webhook-Signature-Hmac-Sha-256", hex_mac(s, b))],
        "X-Chargify-Webhook-Signature-Hmac-Sha-256",
    ),
    Case("circleci", lambda s, b, t: [("circleci-signature", "v1=" + hex_mac(s, b))], "circleci-signature"),
    Case("coinbase", lambda s, b, t: [("X-CC-Webhook-Signature", hex_mac(s, b))], "X-CC-Webhook-Signature"),
    Case("docusign", lambda s, b, t: [("X-DocuSign-Signature-1", b64_mac(s, b))], "X-DocuSign-Signature-1"),
    Case("dropbox", lambda s, b, t: [("X-Dropbox-Signature", hex_mac(s, b))], "X-Dropbox-Signature"),
    *(
        Case(meta, lambda s, b, t: [("X-Hub-Signature-256", "sha256=" + hex_mac(s, b))], "X-Hub-Signature-256")
        for meta in ("facebook_graph_api", "facebook_messenger", "instagram", "whatsapp")
    ),
    Case(
        "frameio",
        lambda s, b, t: [
            ("X-Frameio-Request-Timestamp", str(t)),
            ("X-Frameio-Signature", "v0=" + hex_mac(s, f"v0:{t}:".encode() + b)),
        ],
        "X-Frameio-Signature",
        tolerance=300,
    ),
    Case("heroku", lambda s, b, t: [("Heroku-Webhook-Hmac-SHA256", b64_mac(s, b))], "Heroku-Webhook-Hmac-SHA256"),
    Case("intercom", lambda s, b, t: [("X-Hub-Signature", "sha1=" + hex_mac(s, b, "sha1"))], "X-Hub-Signature"),
    Case("jira", lambda s, b, t: [("X-Hub-Signature", "sha256=" + hex_mac(s, b))], "X-Hub-Signature"),
    Case("launch_darkly", lambda s, b, t: [("X-LD-Signature", hex_mac(s, b))], "X-LD-Signature"),
    Case(
        "linear",
        lambda s, b, t: [("Linear-Signature", hex_mac(s, b))],
        "Linear-Signature",
        tolerance=60,
        body=linear_body,
    ),
    Case(
        "microsoft_teams",
        lambda s, b, t: [("Authorization", "HMAC " + b64_mac(TEAMS_KEY, b))],
        "Authorization",
        secret=TEAMS_SECRET,
        other_secret=OTHER_KEY,
    ),
    Case("modern_treasury", lambda s, b, t: [("X-Signature", hex_mac(s, b))], "X-Signature"),
    Case("mongodb", lambda s, b, t: [("X-MMS-Signature", b64_mac(s, b, "sha1"))], "X-MMS-Signature"),
    Case(
        "mux",
        lambda s, b, t: [("Mux-Signature", f"t={t},v1={hex_mac(s, f'{t}.'.encode() + b)}")],
        "Mux-Signature",
        tolerance=300,
    ),
    Case(
        "pagerduty",
        lambda s, b, t: [("X-PagerDuty-Signature", f"v1={hex_mac(b'old secret', b)},v1={hex_mac(s, b)}")],
        "X-PagerDuty-Signature",
    ),
    Case(
        "pusher",
        lambda s, b, t: [("X-Pusher-Key", "app-key"), ("X-Pusher-Signature", hex_mac(s, b))],
        "X-Pusher-Signature",
    ),
    Case(
        "sendgrid",
        sendgrid,
        "X-Twilio-Email-Event-Webhook-Signature",
        secret=SENDGRID_SECRET,
        other_secret=sendgrid_secret(ec.generate_private_key(ec.SECP256R1())),
    ),
    Case("sentry", lambda s, b, t: [("Sentry-Hook-Signature", hex_mac(s, b))], "Sentry-Hook-Signature"),
    Case(
        "sonatype",
        lambda s, b, t: [("X-Nexus-Webhook-Signature", hex_mac(s, b, "sha1"))],
        "X-Nexus-Webhook-Signature",
    ),
    Case(
        "square",
        lambda s, b, t: [("x-square-hmacsha256-signature", b64_mac(s, URL.encode() + b))],
        "x-square-hmacsha256-signature",
    ),
    Case(
        "terraform",
        lambda s, b, t: [("X-TFE-Notification-Signature", hex_mac(s, b, "sha512"))],
        "X-TFE-Notification-Signature",
    ),
    Case("typeform", lambda s, b, t: [("Typeform-Signature", "sha256=" + b64_mac(s, b))], "Typeform-Signature"),
    Case("webex", lambda s, b, t: [("X-Spark-Signature", hex_mac(s, b, "sha1"))], "X-Spark-Signature"),
    Case(
        "zendesk",
        lambda s, b, t: [
            ("X-Zendesk-Webhook-Signature", b64_mac(s, rfc3339(t).encode() + b)),
            ("X-Zendesk-Webhook-Signature-Timestamp", rfc3339(t)),
        ],
        "X-Zendesk-Webhook-Signature",
    ),
]
BY_NAME = {case.provider: case for case in CASES}


def check(case: Case, *, headers: Headers, body: bytes, secret: bytes | None = None, now: float = NOW) -> Verdict:
    return verify(
        provider_named(case.provider),
        case.secret if secret is None else secret,
        method="POST",
        url=URL,
        headers=headers,
        body=body,
        now=now,
    )


def signed(case: Case, ts: int = NOW) -> tuple[Headers, bytes]:
    body = case.body(ts)
    return [("Content-Length", str(len(body))), *case.sign(case.secret, body, ts)], body


def test_every_provider_this_agent_verifies_has_a_case_here() -> None:
    assert set(PROVIDERS) - {"mailgun"} == set(BY_NAME)  # mailgun signs inside the body: its own tests


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.provider)
def test_a_correctly_signed_request_passes(case: Case) -> None:
    headers, body = signed(case)
    verdict = check(case, headers=headers, body=body)
    assert verdict.ok, verdict.reason
    assert verdict.answer is None


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.provider)
def test_header_names_are_matched_whatever_their_case(case: Case) -> None:
    headers, body = signed(case)
    assert check(case, headers=[(name.lower(), value) for name, value in headers], body=body).ok
    assert check(case, headers=[(name.upper(), value) for name, value in headers], body=body).ok


@pytest.mark.parametrize("case", [c for c in CASES if c.body_signed], ids=lambda case: case.provider)
def test_a_tampered_body_fails(case: Case) -> None:
    headers, body = signed(case)
    tampered = body[:-1] + bytes([body[-1] ^ 1])
    verdict = check(case, headers=headers, body=tampered)
    assert not verdict.ok
    assert verdict.reason == "signature does not match"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.provider)
def test_a_request_signed_with_another_secret_fails(case: Case) -> None:
    headers, body = signed(case)
    verdict = check(case, headers=headers, body=body, secret=case.other_secret)
    assert not verdict.ok
    assert verdict.reason in ("signature does not match", "X-Gitlab-Token does not match")


@pytest.mark.parametrize("case", [c for c in CASES if c.signature_header], ids=lambda case: case.provider)
def test_a_request_without_its_signature_header_fails_naming_it(case: Case) -> None:
    headers, body = signed(case)
    assert case.signature_header is not None
    kept = [(name, value) for name, value in headers if name.lower() != case.signature_header.lower()]
    verdict = check(case, headers=kept, body=body)
    assert not verdict.ok
    assert verdict.reason == f"missing {case.signature_header}"


TIMESTAMPED = [c for c in CASES if c.tolerance is not None]


@pytest.mark.parametrize("case", TIMESTAMPED, ids=lambda case: case.provider)
def test_a_request_signed_just_inside_the_tolerance_passes(case: Case) -> None:
    assert case.tolerance is not None
    for ts in (NOW - int(case.tolerance), NOW + int(case.tolerance)):
        headers, body = signed(case, ts)
        assert check(case, headers=headers, body=body).ok


@pytest.mark.parametrize("case", TIMESTAMPED, ids=lambda case: case.provider)
def test_a_stale_or_future_timestamp_fails_with_the_tolerance_named(case: Case) -> None:
    assert case.tolerance is not None
    for ts in (NOW - int(case.tolerance) - 1, NOW + int(case.tolerance) + 1):
        headers, body = signed(case, ts)
        verdict = check(case, headers=headers, body=body)
        assert not verdict.ok
        assert verdict.reason == f"timestamp outside the {case.tolerance:g} s tolerance"


@pytest.mark.parametrize("case", TIMESTAMPED, ids=lambda case: case.provider)
def test_the_same_request_replayed_after_the_tolerance_fails(case: Case) -> None:
    assert case.tolerance is not None
    headers, body = signed(case)
    assert check(case, headers=headers, body=body, now=NOW + 1).ok
    assert not check(case, headers=headers, body=body, now=NOW + case.tolerance + 1).ok


def test_a_stripe_timestamp_changed_after_signing_fails_as_a_mismatch() -> None:
    case = BY_NAME["stripe"]
    signature = hex_mac(SECRET, f"{NOW - 1000}.".encode() + JSON_BODY)
    verdict = check(case, headers=[("Stripe-Signature", f"t={NOW},v1={signature}")], body=JSON_BODY)
    assert verdict.reason == "signature does not match"


def test_stripe_passes_when_any_of_its_v1_signatures_matches() -> None:
    good = hex_mac(SECRET, f"{NOW}.".encode() + JSON_BODY)
    header = f"t={NOW},v1={'0' * 64},v1={good}"
    assert check(BY_NAME["stripe"], headers=[("Stripe-Signature", header)], body=JSON_BODY).ok


def test_a_stripe_header_without_a_timestamp_is_refused_as_malformed() -> None:
    good = hex_mac(SECRET, b"." + JSON_BODY)
    verdict = check(BY_NAME["stripe"], headers=[("Stripe-Signature", f"v1={good}")], body=JSON_BODY)
    assert verdict.reason == "Stripe-Signature needs t= and v1="


def test_github_hex_is_compared_whatever_its_case() -> None:
    header = "sha256=" + hex_mac(SECRET, JSON_BODY).upper()
    assert check(BY_NAME["github"], headers=[("X-Hub-Signature-256", header)], body=JSON_BODY).ok


def test_a_github_signature_without_its_prefix_fails_saying_so() -> None:
    verdict = check(BY_NAME["github"], headers=[("X-Hub-Signature-256", hex_mac(SECRET, JSON_BODY))], body=JSON_BODY)
    assert verdict.reason == "X-Hub-Signature-256 does not start with sha256="


def test_garbage_in_a_signature_header_is_a_mismatch_not_an_error() -> None:
    for header in ("sha256=zz", "sha256=", "sha256=é"):
        verdict = check(BY_NAME["github"], headers=[("X-Hub-Signature-256", header)], body=JSON_BODY)
        assert verdict.reason == "signature does not match"
    verdict = check(BY_NAME["shopify"], headers=[("X-Shopify-Hmac-Sha256", "not base64!")], body=JSON_BODY)
    assert verdict.reason == "signature does not match"


def test_a_slack_timestamp_that_is_not_a_number_fails() -> None:
    stamp = "soon"
    headers = [
        ("X-Slack-Request-Timestamp", stamp),
        ("X-Slack-Signature", "v0=" + hex_mac(SECRET, f"v0:{stamp}:".encode() + JSON_BODY)),
    ]
    verdict = check(BY_NAME["slack"], headers=headers, body=JSON_BODY)
    assert verdict.reason == "X-Slack-Request-Timestamp is not a Unix timestamp"


def test_slack_without_its_timestamp_header_fails_naming_it() -> None:
    headers = [("X-Slack-Signature", "v0=" + hex_mac(SECRET, f"v0:{NOW}:".encode() + JSON_BODY))]
    assert check(BY_NAME["slack"], headers=headers, body=JSON_BODY).reason == "missing X-Slack-Request-Timestamp"


def test_svix_passes_when_one_of_several_listed_signatures_matches() -> None:
    case = BY_NAME["svix"]
    headers, body = signed(case)
    listed = [
        (n, f"v1,{base64.b64encode(b'x' * 32).decode()} {v} v1a,ignored") if n == "svix-signature" else (n, v)
        for n, v in headers
    ]
    assert check(case, headers=listed, body=body).ok


def test_svix_reads_the_standard_webhooks_header_names_too() -> None:
    case = BY_NAME["svix"]
    body = JSON_BODY
    headers = standard_webhooks("webhook", SVIX_KEY)(SVIX_SECRET, body, NOW)
    assert check(case, headers=headers, body=body).ok


def test_svix_with_a_secret_that_is_not_base64_fails_saying_so() -> None:
    headers, body = signed(BY_NAME["svix"])
    verdict = check(BY_NAME["svix"], headers=headers, body=body, secret=b"whsec_not base64!")
    assert verdict.reason == "the secret is not a base64 key (whsec_...)"


def test_gitlab_compares_the_token_itself() -> None:
    case = BY_NAME["gitlab"]
    assert check(case, headers=[("X-Gitlab-Token", "It's a Secret to Everybody")], body=b"").ok
    verdict = check(case, headers=[("X-Gitlab-Token", "It's a Secret to Everybod")], body=b"")
    assert verdict.reason == "X-Gitlab-Token does not match"


def twilio_headers(url: str, params: list[tuple[str, str]], content_type: str) -> Headers:
    signed_text = url + "".join(name + value for name, value in sorted(set(params)))
    return [("Content-Type", content_type), ("X-Twilio-Signature", b64_mac(SECRET, signed_text.encode(), "sha1"))]


def twilio_check(url: str, headers: Headers, body: bytes) -> Verdict:
    return verify(provider_named("twilio"), SECRET, method="POST", url=url, headers=headers, body=body, now=NOW)


def test_twilio_signs_params_sorted_by_name_whatever_order_they_came_in() -> None:
    body = b"Zeta=last&Alpha=first&Middle=m%26m"
    params = [("Alpha", "first"), ("Middle", "m&m"), ("Zeta", "last")]
    assert twilio_check(URL, twilio_headers(URL, params, "application/x-www-form-urlencoded"), body).ok


def test_twilio_matches_a_signature_made_with_or_without_the_default_port() -> None:
    body = b"Body=hi"
    params = [("Body", "hi")]
    content_type = "application/x-www-form-urlencoded; charset=utf-8"
    with_port = twilio_headers("https://hooks.example.com:443/sms", params, content_type)
    assert twilio_check("https://hooks.example.com/sms", with_port, body).ok
    without_port = twilio_headers("https://hooks.example.com/sms", params, content_type)
    assert twilio_check("https://hooks.example.com:443/sms", without_port, body).ok
    other_url = twilio_headers("https://hooks.example.com/other", params, content_type)
    assert twilio_check("https://hooks.example.com/sms", other_url, body).reason == "signature does not match"


def test_twilio_json_bodies_are_signed_through_the_body_sha256_query_parameter() -> None:
    body = b'{"status":"delivered"}'
    url = f"https://hooks.example.com/status?bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = twilio_headers(url, [], "application/json")
    assert twilio_check(url, headers, body).ok
    verdict = twilio_check(url, headers, b'{"status":"failed"}')
    assert verdict.reason == "bodySHA256 does not match the body"


def mailgun_body(secret: bytes, timestamp: str, token: str) -> bytes:
    signature = hex_mac(secret, (timestamp + token).encode())
    document = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {"event": "delivered"},
    }
    return json.dumps(document).encode()


def mailgun_check(body: bytes, content_type: str = "application/json") -> Verdict:
    return verify(
        provider_named("mailgun"),
        SECRET,
        method="POST",
        url=URL,
        headers=[("Content-Type", content_type)],
        body=body,
        now=NOW,
    )


def test_a_mailgun_json_webhook_signed_in_its_body_passes() -> None:
    assert mailgun_check(mailgun_body(SECRET, str(NOW), "a" * 50)).ok


def test_a_mailgun_webhook_with_a_changed_token_or_another_key_fails() -> None:
    body = mailgun_body(SECRET, str(NOW), "a" * 50).replace(b'"token": "a', b'"token": "b')
    assert mailgun_check(body).reason == "signature does not match"
    assert mailgun_check(mailgun_body(b"other key", str(NOW), "a" * 50)).reason == "signature does not match"


def test_a_legacy_form_encoded_mailgun_webhook_passes() -> None:
    signature = hex_mac(SECRET, f"{NOW}tok".encode())
    body = f"event=delivered&timestamp={NOW}&token=tok&signature={signature}".encode()
    assert mailgun_check(body, "application/x-www-form-urlencoded").ok


def test_a_mailgun_webhook_without_a_signature_fails_saying_where_it_looked() -> None:
    verdict = mailgun_check(b'{"event-data": {}}')
    assert verdict.reason == "missing the signature (timestamp, token, signature) in the body"
    assert mailgun_check(b"not json").reason == verdict.reason


def test_linear_refuses_a_body_without_its_webhook_timestamp() -> None:
    body = b'{"action":"create"}'
    verdict = check(BY_NAME["linear"], headers=[("Linear-Signature", hex_mac(SECRET, body))], body=body)
    assert verdict.reason == "the body has no webhookTimestamp"


def test_box_passes_with_the_secret_as_either_key_and_fails_without_both_signatures() -> None:
    case = BY_NAME["box"]
    headers, body = signed(case)
    swapped = {"BOX-SIGNATURE-PRIMARY": "BOX-SIGNATURE-SECONDARY", "BOX-SIGNATURE-SECONDARY": "BOX-SIGNATURE-PRIMARY"}
    assert check(case, headers=[(swapped.get(n, n), v) for n, v in headers], body=body).ok
    unsigned = [(n, v) for n, v in headers if not n.startswith("BOX-SIGNATURE-")]
    assert check(case, headers=unsigned, body=body).reason == "missing BOX-SIGNATURE-PRIMARY"


def test_box_refuses_a_signature_version_it_does_not_know() -> None:
    headers, body = signed(BY_NAME["box"])
    changed = [(n, "2") if n == "BOX-SIGNATURE-VERSION" else (n, v) for n, v in headers]
    assert check(BY_NAME["box"], headers=changed, body=body).reason == "BOX-SIGNATURE-VERSION is not 1"


def test_teams_with_a_secret_that_is_not_base64_fails_saying_so() -> None:
    headers, body = signed(BY_NAME["microsoft_teams"])
    verdict = check(BY_NAME["microsoft_teams"], headers=headers, body=body, secret=b"not base64!")
    assert verdict.reason == "the secret is not the base64 security token Teams gave"


def test_sendgrid_with_a_secret_that_is_not_a_public_key_fails_saying_so() -> None:
    headers, body = signed(BY_NAME["sendgrid"])
    verdict = check(BY_NAME["sendgrid"], headers=headers, body=body, secret=b"c2VjcmV0")
    assert verdict.reason == "the secret is not SendGrid's ECDSA verification key"


def test_sendgrid_takes_its_key_as_pem_too() -> None:
    pem = SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    headers, body = signed(BY_NAME["sendgrid"])
    assert check(BY_NAME["sendgrid"], headers=headers, body=body, secret=pem).ok


def test_an_unknown_provider_is_refused_with_the_supported_ones_listed() -> None:
    with pytest.raises(PolicyError) as raised:
        provider_named("githib")
    message = str(raised.value)
    assert message.startswith("unknown provider 'githib'; supported: ")
    assert "github" in message and "stripe" in message and "hmac-sha256" in message


def test_sns_is_refused_because_it_needs_a_certificate_from_amazon() -> None:
    with pytest.raises(PolicyError, match=r"'sns' provider is not supported by this agent: .*certificate"):
        provider_named("sns")


@pytest.mark.parametrize("name", sorted(set(NOT_VERIFIED_HERE) - {"sns"}))
def test_ngrok_providers_this_agent_does_not_verify_are_refused_not_passed(name: str) -> None:
    with pytest.raises(PolicyError, match="does not verify its signatures yet"):
        provider_named(name)


def test_no_provider_is_both_verified_and_refused() -> None:
    assert not set(PROVIDERS) & set(NOT_VERIFIED_HERE)
