"""The providers whose endpoint-verification handshakes verify-webhook answers itself, as ngrok's
does ("Endpoint verification": Twitter, Worldline, Xero, Zoom; `traffic-policy/actions/
verify-webhook.mdx`). Each answer is the one the provider's own documentation asks for:

- zoom (developers.zoom.us, "Using webhooks", "Validate your webhook endpoint"): every request is
  signed like Slack's, `x-zm-signature: v0=<hex>` of `v0:<x-zm-request-timestamp>:<body>`. A
  signed POST whose JSON `event` is `endpoint.url_validation` is answered 200 with
  `{"plainToken": <payload.plainToken>, "encryptedToken": <hex HMAC-SHA256(secret, plainToken)>}`.
  The signature is checked first: the answer is an HMAC of a string the caller chose, so answering
  unsigned requests would sign anything for anyone. Zoom documents no tolerance; 300 s applies.
- twitter (developer.x.com, "Account Activity API", "Challenge-Response Checks"): a GET with
  `crc_token` is answered 200 with `{"response_token": "sha256=" + base64 HMAC-SHA256(consumer
  secret, crc_token)}` (X does not sign that GET); events carry `x-twitter-webhooks-signature:
  sha256=<base64 HMAC-SHA256 of the body>`.
- xero (developer.xero.com, "Webhooks", "Intent to receive"): `x-xero-signature` is the base64
  HMAC-SHA256 of the body (key: the webhooks key). A correctly signed payload with an empty
  `events` list is the intent-to-receive check, answered 200 with no body; an incorrectly signed
  one must get 401 with no body (Xero refuses to enable a URL that answers otherwise).
- worldline (docs.connect.worldline-solutions.com, "Webhooks"): a GET carrying
  `X-GCS-Webhooks-Endpoint-Verification` is answered 200 with that header's value as text/plain;
  events carry `X-GCS-Signature`, the base64 HMAC-SHA256 of the body.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

from .outcomes import Respond
from .webhook_schemes import body_hmac, versioned_timestamp
from .webhook_signing import Verdict, WebhookRequest, answered, json_object, mac

ZOOM_TOLERANCE = 300.0
_zoom_signature = versioned_timestamp("x-zm-signature", "x-zm-request-timestamp", tolerance=ZOOM_TOLERANCE)
_twitter_signature = body_hmac("x-twitter-webhooks-signature", encoding="base64", prefix="sha256=")
_xero_signature = body_hmac("x-xero-signature", encoding="base64")
_worldline_signature = body_hmac("X-GCS-Signature", encoding="base64")


def _json_answer(document: dict[str, str]) -> Respond:
    body = json.dumps(document, separators=(",", ":")).encode()
    return Respond(200, [("Content-Type", "application/json")], body)


def zoom(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    verdict = _zoom_signature(request, secret, now)
    if not verdict.ok:
        return verdict
    document = json_object(request.body)
    if document is None or document.get("event") != "endpoint.url_validation":
        return verdict
    payload = document.get("payload")
    token = payload.get("plainToken") if isinstance(payload, dict) else None
    if not isinstance(token, str):
        return verdict
    encrypted = mac(secret, token.encode("utf-8")).hex()
    return answered(_json_answer({"plainToken": token, "encryptedToken": encrypted}), "zoom endpoint.url_validation")


def twitter(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    if request.method == "GET":
        tokens = parse_qs(urlsplit(request.url).query, keep_blank_values=True).get("crc_token")
        if tokens:
            digest = base64.b64encode(mac(secret, tokens[0].encode("utf-8"))).decode()
            return answered(_json_answer({"response_token": f"sha256={digest}"}), "twitter CRC check")
    return _twitter_signature(request, secret, now)


def xero(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    verdict = _xero_signature(request, secret, now)
    if not verdict.ok:
        return Verdict(ok=False, reason=verdict.reason, refusal=Respond(401))
    document = json_object(request.body)
    if document is not None and document.get("events") == []:
        return answered(Respond(200), "xero intent to receive")
    return verdict


def worldline(request: WebhookRequest, secret: bytes, now: float) -> Verdict:
    challenge = request.header("X-GCS-Webhooks-Endpoint-Verification")
    if request.method == "GET" and challenge is not None:
        answer = Respond(200, [("Content-Type", "text/plain")], challenge.encode("latin-1", "replace"))
        return answered(answer, "worldline endpoint verification")
    return _worldline_signature(request, secret, now)
