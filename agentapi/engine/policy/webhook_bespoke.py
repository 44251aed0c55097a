"""Webhook providers whose signature is not one of the shared shapes (webhook_schemes.py): each
signs its own mix of URL, form fields, headers and body. One function per provider, with the
provider's documentation as its source; the rules of webhook_signing.py hold for all of them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .webhook_schemes import body_hmac
from .webhook_signing import (
    PASSED,
    SIGNATURE_MISMATCH,
    Verdict,
    WebhookRequest,
    any_matches,
    decode_signature,
    fail,
    json_object,
    mac,
    missing,
    octets,
    stale,
)

_DEFAULT_PORTS = {"http": 80, "https": 443}


def gitlab(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    """GitLab sends the secret token itself in X-Gitlab-Token (no signature; docs.gitlab.com,
    "Webhooks", "Validate requests with a secret token")."""
    token = request.header("X-Gitlab-Token")
    if token is None:
        return missing("X-Gitlab-Token")
    return PASSED if hmac.compare_digest(octets(token), secret) else fail("X-Gitlab-Token does not match")


def twilio(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    """X-Twilio-Signature: base64 HMAC-SHA1 (key: the auth token) of the full URL Twilio called,
    followed by each POST parameter as name+value, sorted by name (then value). A JSON body is
    signed instead through the URL's `bodySHA256` query parameter (hex SHA-256 of the body). The
    URL is tried with and without its default port, as Twilio's own validators do
    (twilio.com/docs/usage/webhooks/webhooks-security)."""
    signature = request.header("X-Twilio-Signature")
    if signature is None:
        return missing("X-Twilio-Signature")
    query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
    params: list[tuple[str, str]] = []
    if "bodySHA256" in query:
        body_hash = hashlib.sha256(request.body).hexdigest().encode()
        if not hmac.compare_digest(body_hash, query["bodySHA256"][0].lower().encode("utf-8")):
            return fail("bodySHA256 does not match the body")
    elif (request.header("Content-Type") or "").lower().startswith("application/x-www-form-urlencoded"):
        params = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    signed_params = "".join(
        name + value
        for name in sorted({name for name, _ in params})
        for value in sorted({value for key, value in params if key == name})
    )
    expected = [mac(secret, (url + signed_params).encode("utf-8"), "sha1") for url in _port_variants(request.url)]
    matched = [any_matches(digest, [signature], "base64") for digest in expected]
    return PASSED if any(matched) else fail(SIGNATURE_MISMATCH)


def _port_variants(url: str) -> list[str]:
    """The URL without its port and with it (the scheme's default when none is given)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    netloc = parts.netloc
    bare = netloc[: netloc.rfind(":")] if port is not None else netloc
    variants = [urlunsplit(parts._replace(netloc=bare))]
    port = port if port is not None else _DEFAULT_PORTS.get(parts.scheme)
    if port is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{bare}:{port}")))
    return variants


def square(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    """x-square-hmacsha256-signature: base64 HMAC-SHA256 (key: the subscription's signature key)
    of the notification URL followed by the raw body (developer.squareup.com, "Validate
    notifications")."""
    signature = request.header("x-square-hmacsha256-signature")
    if signature is None:
        return missing("x-square-hmacsha256-signature")
    expected = mac(secret, request.url.encode("utf-8") + request.body)
    return PASSED if any_matches(expected, [signature], "base64") else fail(SIGNATURE_MISMATCH)


BOX_TOLERANCE = 600.0  # Box: a delivery more than 10 minutes old is refused


def box(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    """BOX-SIGNATURE-PRIMARY / BOX-SIGNATURE-SECONDARY: base64 HMAC-SHA256 of the raw body followed
    by BOX-DELIVERY-TIMESTAMP (RFC 3339), one per key; ngrok's single secret may be either key.
    Version 1, HmacSHA256 (developer.box.com, "Signature Verification")."""
    stamp = request.header("BOX-DELIVERY-TIMESTAMP")
    signatures = [
        value for value in (request.header("BOX-SIGNATURE-PRIMARY"), request.header("BOX-SIGNATURE-SECONDARY")) if value
    ]
    if not signatures:
        return missing("BOX-SIGNATURE-PRIMARY")
    if stamp is None:
        return missing("BOX-DELIVERY-TIMESTAMP")
    version = request.header("BOX-SIGNATURE-VERSION")
    if version is not None and version.strip() != "1":
        return fail("BOX-SIGNATURE-VERSION is not 1")  # the value itself is not echoed back
    expected = mac(secret, request.body + octets(stamp.strip()))
    if not any_matches(expected, signatures, "base64"):
        return fail(SIGNATURE_MISMATCH)
    try:
        delivered = datetime.fromisoformat(stamp.strip())
    except ValueError:
        return fail("BOX-DELIVERY-TIMESTAMP is not an RFC 3339 time")
    if delivered.tzinfo is None:
        return fail("BOX-DELIVERY-TIMESTAMP has no time zone")
    return stale(delivered.timestamp(), now, BOX_TOLERANCE) or PASSED


def docusign(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    """X-DocuSign-Signature-1, -2...: base64 HMAC-SHA256 of the raw body, one header per HMAC key
    of the Connect configuration; ngrok's single secret may be any of them (developers.docusign.com,
    "HMAC security")."""
    signatures = [value for name, value in request.headers if name.lower().startswith("x-docusign-signature-")]
    if not signatures:
        return missing("X-DocuSign-Signature-1")
    expected = mac(secret, request.body)
    return PASSED if any_matches(expected, signatures, "base64") else fail(SIGNATURE_MISMATCH)


def microsoft_teams(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    """Outgoing webhooks: `Authorization: HMAC <base64>`, HMAC-SHA256 of the raw body keyed by the
    security token base64-decoded (learn.microsoft.com, "Create Outgoing Webhooks")."""
    authorization = request.header("Authorization")
    if authorization is None:
        return missing("Authorization")
    scheme, _, signature = authorization.strip().partition(" ")
    if scheme != "HMAC":
        return fail("Authorization is not HMAC <signature>")
    try:
        key = base64.b64decode(secret, validate=True)
    except (ValueError, binascii.Error):
        return fail("the secret is not the base64 security token Teams gave")
    expected = mac(key, request.body)
    return PASSED if any_matches(expected, [signature], "base64") else fail(SIGNATURE_MISMATCH)


def mailgun(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    """The signature is in the body: `signature: {timestamp, token, signature}` in a JSON webhook,
    or the `timestamp`, `token`, `signature` fields of a form-encoded (legacy) one; the signature
    is the hex HMAC-SHA256 (key: the webhook signing key) of timestamp followed by token
    (documentation.mailgun.com, "Securing webhooks")."""
    fields = _mailgun_fields(request)
    if fields is None:
        return fail("missing the signature (timestamp, token, signature) in the body")
    timestamp, token, signature = fields
    expected = mac(secret, (timestamp + token).encode("utf-8"))
    return PASSED if any_matches(expected, [signature], "hex") else fail(SIGNATURE_MISMATCH)


def _mailgun_fields(request: WebhookRequest) -> tuple[str, str, str] | None:
    content_type = (request.header("Content-Type") or "").lower()
    found: Any
    if content_type.startswith("application/x-www-form-urlencoded"):
        found = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
    else:
        found = json_object(request.body)
        found = found.get("signature") if found is not None else None
    if not isinstance(found, dict):
        return None
    values = [found.get(name) for name in ("timestamp", "token", "signature")]
    if not all(isinstance(value, (str, int)) and not isinstance(value, bool) for value in values):
        return None
    timestamp, token, signature = (str(value) for value in values)
    return timestamp, token, signature


def sendgrid(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    """Signed Event Webhook: X-Twilio-Email-Event-Webhook-Signature is a base64 ECDSA (P-256,
    SHA-256) signature of X-Twilio-Email-Event-Webhook-Timestamp followed by the raw body; the
    secret is the verification key SendGrid shows (base64 DER public key, or PEM)
    (twilio.com/docs/sendgrid, "Event Webhook Security Features")."""
    signature = request.header("X-Twilio-Email-Event-Webhook-Signature")
    if signature is None:
        return missing("X-Twilio-Email-Event-Webhook-Signature")
    stamp = request.header("X-Twilio-Email-Event-Webhook-Timestamp")
    if stamp is None:
        return missing("X-Twilio-Email-Event-Webhook-Timestamp")
    key = _ecdsa_public_key(secret)
    if key is None:
        return fail("the secret is not SendGrid's ECDSA verification key")
    decoded = decode_signature(signature, "base64")
    if decoded is None:
        return fail(SIGNATURE_MISMATCH)
    try:
        key.verify(decoded, octets(stamp) + request.body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return fail(SIGNATURE_MISMATCH)
    return PASSED


@functools.lru_cache(maxsize=16)
def _ecdsa_public_key(secret: bytes) -> ec.EllipticCurvePublicKey | None:
    # Parsed once per key: the secret is the same for every request of an endpoint.
    try:
        if secret.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(secret)
        else:
            key = serialization.load_der_public_key(base64.b64decode(secret, validate=True))
    except (ValueError, TypeError, binascii.Error):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def zendesk(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    """X-Zendesk-Webhook-Signature: base64 HMAC-SHA256 (key: the webhook's signing secret) of
    X-Zendesk-Webhook-Signature-Timestamp followed by the raw body (developer.zendesk.com,
    "Verifying webhook authenticity"). Zendesk documents no tolerance, so none is applied."""
    signature = request.header("X-Zendesk-Webhook-Signature")
    if signature is None:
        return missing("X-Zendesk-Webhook-Signature")
    stamp = request.header("X-Zendesk-Webhook-Signature-Timestamp")
    if stamp is None:
        return missing("X-Zendesk-Webhook-Signature-Timestamp")
    expected = mac(secret, octets(stamp) + request.body)
    return PASSED if any_matches(expected, [signature], "base64") else fail(SIGNATURE_MISMATCH)


LINEAR_TOLERANCE = 60.0  # Linear: webhookTimestamp within a minute
_linear_signature = body_hmac("Linear-Signature")


def linear(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    """Linear-Signature: hex HMAC-SHA256 of the raw body; the signed JSON body's
    `webhookTimestamp` (Unix milliseconds) must be within a minute (linear.app/developers,
    "Webhooks", "Securing webhooks")."""
    verdict = _linear_signature(request, secret, now)
    if not verdict.ok:
        return verdict
    document = json_object(request.body)
    stamp = document.get("webhookTimestamp") if document is not None else None
    if not isinstance(stamp, int) or isinstance(stamp, bool):
        return fail("the body has no webhookTimestamp")
    return stale(stamp / 1000, now, LINEAR_TOLERANCE) or PASSED
