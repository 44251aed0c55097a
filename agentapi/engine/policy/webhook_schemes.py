"""The signature shapes many webhook providers share, as check builders: the provider table
(webhook_providers.py) names each provider's header, digest, encoding and tolerance.

Shapes (each provider's own documentation is cited where the table uses it):
- `body_hmac`: one header holds HMAC(secret, raw body), hex or base64, maybe behind a fixed
  prefix (`sha256=`). GitHub's X-Hub-Signature-256, Shopify's X-Shopify-Hmac-Sha256...
- `listed_body_hmac`: the header is a list `v1=<hex>,v1=<hex>` of HMACs of the raw body (one per
  active secret while the provider rotates them): PagerDuty, CircleCI. Any may match.
- `timestamped_list`: Stripe's shape. The header is `t=<unix>,v1=<hex>[,v1=<hex>...]`; the signed
  content is `<t>.<raw body>`; the timestamp is then held to the provider's tolerance.
- `versioned_timestamp`: Slack's shape. A timestamp header and a signature header `v0=<hex>`
  over `v0:<timestamp>:<raw body>`; then the tolerance.
- `standard_webhooks`: Svix's shape (the Standard Webhooks spec, standardwebhooks.com):
  `<p>-id`, `<p>-timestamp`, `<p>-signature` (space-separated `v1,<base64>` entries) over
  `<id>.<timestamp>.<raw body>`, keyed by the base64 secret after its `whsec_` prefix; 5 minutes.
"""

from __future__ import annotations

import base64
import binascii

from .webhook_signing import (
    PASSED,
    SIGNATURE_MISMATCH,
    Check,
    Digest,
    Encoding,
    Verdict,
    WebhookRequest,
    any_matches,
    fail,
    key_values,
    mac,
    missing,
    octets,
    stale,
    unix_seconds,
)


def body_hmac(header: str, *, digest: Digest = "sha256", encoding: Encoding = "hex", prefix: str = "") -> Check:
    """HMAC(secret, body) in `header`, encoded `encoding`, after a required `prefix`."""

    def check(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
        value = request.header(header)
        if value is None:
            return missing(header)
        value = value.strip()
        if prefix:
            if not value.startswith(prefix):
                return fail(f"{header} does not start with {prefix}")
            value = value[len(prefix) :]
        expected = mac(secret, request.body, digest)
        return PASSED if any_matches(expected, [value], encoding) else fail(SIGNATURE_MISMATCH)

    return check


def listed_body_hmac(header: str, *, key: str = "v1", digest: Digest = "sha256") -> Check:
    """`header: v1=<hex>[,v1=<hex>...]`, each an HMAC of the body in hex; any may match."""

    def check(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
        value = request.header(header)
        if value is None:
            return missing(header)
        signatures = [item for name, item in key_values(value) if name == key]
        if not signatures:
            return fail(f"{header} has no {key}= signature")
        expected = mac(secret, request.body, digest)
        return PASSED if any_matches(expected, signatures, "hex") else fail(SIGNATURE_MISMATCH)

    return check


def timestamped_list(
    header: str, *, tolerance: float, timestamp_key: str = "t", signature_key: str = "v1", digest: Digest = "sha256"
) -> Check:
    """Stripe's shape: `header: t=<unix>,v1=<hex>...` signing `<t>.<body>`, then `tolerance`."""

    def check(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
        value = request.header(header)
        if value is None:
            return missing(header)
        pairs = key_values(value)
        stamps = [item for name, item in pairs if name == timestamp_key]
        signatures = [item for name, item in pairs if name == signature_key]
        if not stamps or not signatures:
            return fail(f"{header} needs {timestamp_key}= and {signature_key}=")
        expected = mac(secret, octets(stamps[0]) + b"." + request.body, digest)
        if not any_matches(expected, signatures, "hex"):
            return fail(SIGNATURE_MISMATCH)
        timestamp = unix_seconds(stamps[0])
        if timestamp is None:
            return fail(f"{header}: {timestamp_key}= is not a Unix timestamp")
        return stale(timestamp, now, tolerance) or PASSED

    return check


def versioned_timestamp(
    signature_header: str, timestamp_header: str, *, tolerance: float, version: str = "v0"
) -> Check:
    """Slack's shape: `signature_header: v0=<hex>` of `v0:<timestamp>:<body>`, then `tolerance`."""

    def check(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
        signature = request.header(signature_header)
        if signature is None:
            return missing(signature_header)
        stamp = request.header(timestamp_header)
        if stamp is None:
            return missing(timestamp_header)
        signature = signature.strip()
        if not signature.startswith(f"{version}="):
            return fail(f"{signature_header} does not start with {version}=")
        expected = mac(secret, f"{version}:".encode() + octets(stamp.strip()) + b":" + request.body)
        if not any_matches(expected, [signature[len(version) + 1 :]], "hex"):
            return fail(SIGNATURE_MISMATCH)
        timestamp = unix_seconds(stamp)
        if timestamp is None:
            return fail(f"{timestamp_header} is not a Unix timestamp")
        return stale(timestamp, now, tolerance) or PASSED

    return check


STANDARD_WEBHOOKS_TOLERANCE = 300.0  # Svix and the Standard Webhooks spec: five minutes


def standard_webhooks(*prefixes: str) -> Check:
    """Svix's shape under the first of `prefixes` ("svix", "webhook") whose signature header the
    request has. The secret is `whsec_<base64 key>` (the prefix is optional)."""

    def check(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
        prefix = next((p for p in prefixes if request.header(f"{p}-signature") is not None), prefixes[0])
        names = (f"{prefix}-id", f"{prefix}-timestamp", f"{prefix}-signature")
        values = [request.header(name) for name in names]
        for name, value in zip(names, values, strict=True):
            if value is None:
                return missing(name)
        message_id, stamp, signatures = (value or "" for value in values)
        key = secret[len(b"whsec_") :] if secret.startswith(b"whsec_") else secret
        try:
            key = base64.b64decode(key, validate=True)
        except (ValueError, binascii.Error):
            return fail("the secret is not a base64 key (whsec_...)")
        expected = mac(key, octets(f"{message_id.strip()}.{stamp.strip()}.") + request.body)
        listed = [entry.partition(",") for entry in signatures.split()]
        if not any_matches(expected, [item for version, _, item in listed if version == "v1"], "base64"):
            return fail(SIGNATURE_MISMATCH)
        timestamp = unix_seconds(stamp)
        if timestamp is None:
            return fail(f"{names[1]} is not a Unix timestamp")
        return stale(timestamp, now, STANDARD_WEBHOOKS_TOLERANCE) or PASSED

    return check
