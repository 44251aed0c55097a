"""Replay with re-signing: a webhook request signed again with the receiver's secret, as its
provider would sign it now, so a replay (or an edited payload) passes the receiver's check.

Schemes (each as the provider documents it, and as the engine's verify-webhook checks it:
agentapi/engine/policy/webhook_providers.py, whose primitives are used here):
- `stripe` (docs.stripe.com/webhooks#verify-manually): `Stripe-Signature: t=<unix>,v1=<hex>`, the
  HMAC-SHA256 of `<t>.<raw body>` keyed by the whole endpoint secret (`whsec_...`).
- `github` (docs.github.com, "Validating webhook deliveries"): `X-Hub-Signature-256:
  sha256=<hex HMAC-SHA256 of the body>`; the legacy `X-Hub-Signature: sha1=<hex>`, when the
  request has one, is recomputed too. No timestamp.
- `slack` (api.slack.com/authentication/verifying-requests-from-slack):
  `X-Slack-Request-Timestamp: <unix>` and `X-Slack-Signature: v0=<hex>`, the HMAC-SHA256 of
  `v0:<timestamp>:<raw body>`.
- `hmac-sha256`, the agent's generic provider: `X-Signature-256: sha256=<hex HMAC-SHA256 of the
  body>` (the verify-webhook provider of the same name).

Rules:
- The signature is over the body bytes that will be sent (the edit's body, de-chunked), never a
  re-serialised document. The timestamp is `now` (epoch seconds, injected), whole seconds.
- A header the scheme writes replaces the request's field of that name in place (first one; any
  repeat is dropped); one the request lacks is appended. Other fields are left as they were.
- The secret is used, never stored, logged or sent back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agentapi.engine.policy.webhook_signing import mac

from .replay_request import EditedRequest, ReplayRequestError

# Epoch seconds; tests replace it.
clock: Callable[[], float] = time.time


class ResignError(ReplayRequestError):
    """The re-signing cannot be done; the message says why (an unknown provider, no secret).
    A ReplayRequestError, so the replay endpoint answers it as a bad edit (400)."""


Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Scheme:
    """A provider's signing: its label, the headers that tell it, and the signer
    `(headers, body, secret, now) -> the fields to write`."""

    label: str
    tells: tuple[str, ...]
    sign: Callable[[Headers, bytes, bytes, int], Headers]


def _stripe(headers: Headers, body: bytes, secret: bytes, now: int) -> Headers:
    signature = mac(secret, f"{now}.".encode() + body).hex()
    return [("Stripe-Signature", f"t={now},v1={signature}")]


def _github(headers: Headers, body: bytes, secret: bytes, now: int) -> Headers:
    fields = [("X-Hub-Signature-256", "sha256=" + mac(secret, body).hex())]
    if _has(headers, "X-Hub-Signature"):
        fields.append(("X-Hub-Signature", "sha1=" + mac(secret, body, "sha1").hex()))
    return fields


def _slack(headers: Headers, body: bytes, secret: bytes, now: int) -> Headers:
    signature = mac(secret, f"v0:{now}:".encode() + body).hex()
    return [("X-Slack-Request-Timestamp", str(now)), ("X-Slack-Signature", f"v0={signature}")]


def _generic(headers: Headers, body: bytes, secret: bytes, now: int) -> Headers:
    return [("X-Signature-256", "sha256=" + mac(secret, body).hex())]


SCHEMES: dict[str, Scheme] = {
    "stripe": Scheme("Stripe", ("stripe-signature",), _stripe),
    "github": Scheme("GitHub", ("x-hub-signature-256", "x-hub-signature"), _github),
    "slack": Scheme("Slack", ("x-slack-signature",), _slack),
    "hmac-sha256": Scheme("Generic HMAC-SHA256 (X-Signature-256)", ("x-signature-256",), _generic),
}


def _has(headers: Sequence[tuple[str, str]], name: str) -> bool:
    lower = name.lower()
    return any(key.lower() == lower for key, _ in headers)


def guess_provider(headers: Sequence[tuple[str, str]]) -> str:
    """The provider whose signature header the request carries, or "" when none does."""
    names = {name.lower() for name, _ in headers}
    return next((provider for provider, scheme in SCHEMES.items() if names & set(scheme.tells)), "")


def resign(edit: EditedRequest, provider: str, secret: str, *, now: float) -> tuple[EditedRequest, Headers]:
    """The request signed for `provider` with `secret` at `now`, and the fields that were written.

    Raises ResignError for a provider not in SCHEMES or an empty secret.
    """
    scheme = SCHEMES.get(provider)
    if scheme is None:
        raise ResignError(f"cannot re-sign for {provider[:64]!r}: use {', '.join(SCHEMES)}")
    if not secret:
        raise ResignError("the signing secret is empty")
    written = scheme.sign(edit.headers, edit.body, secret.encode("utf-8"), int(now))
    return replace(edit, headers=_with_fields(edit.headers, written)), written


def resigned(edit: EditedRequest, spec: Any) -> EditedRequest:
    """The replay endpoint's hook: `spec` is the request's `resign` member, absent (None: the edit
    as it is) or `{"provider": "stripe", "secret": "whsec_..."}`; signed at `clock()`.

    Raises ResignError for a spec of the wrong shape, an unknown provider or an empty secret.
    """
    if spec is None:
        return edit
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("provider"), str)
        or not isinstance(spec.get("secret"), str)
    ):
        raise ResignError('resign must be {"provider": ..., "secret": ...}')
    return resign(edit, spec["provider"], spec["secret"], now=clock())[0]


def _with_fields(headers: Headers, fields: Headers) -> Headers:
    result: Headers = []
    pending = {name.lower(): (name, value) for name, value in fields}
    written: set[str] = set()
    for name, value in headers:
        lower = name.lower()
        if lower in pending:
            if lower not in written:
                result.append((name, pending[lower][1]))  # in place, with the request's spelling
                written.add(lower)
            continue
        result.append((name, value))
    result += [field for lower, field in pending.items() if lower not in written]
    return result
