"""What every webhook provider's check is made of: the request it reads, the verdict it gives, and
the few primitives they share (an HMAC, a signature decoded and compared in constant time, a
timestamp held to a tolerance).

Rules:
- A check is a pure function `(request, secret, now) -> Verdict`: no I/O, no clock of its own
  (`now` is epoch seconds, injected so tests can step past a tolerance).
- The body is the raw bytes as received; a signature is always computed over bytes, never over a
  re-serialised JSON document. Header values are latin-1 text (facts.py) and go back to their
  octets with `octets()` when they are part of the signed content.
- A signature found in a request is decoded (hex, case-insensitive; or base64, padding optional)
  to bytes and compared with the expected digest by `hmac.compare_digest`; a value that does not
  decode is a mismatch, never an error.
- A timestamp is checked only after the signature matched (an unsigned timestamp proves nothing)
  and in both directions: `abs(now - timestamp) <= tolerance`.
- Reasons are short and name the header as the provider documents it ("missing
  X-Hub-Signature-256", "signature does not match", "timestamp outside the 300 s tolerance"): they
  go into the policy trace, the log and the 403's body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .outcomes import Respond

Encoding = Literal["hex", "base64"]
Digest = Literal["sha1", "sha256", "sha512"]

SIGNATURE_MISMATCH = "signature does not match"


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """The parts of a request a provider signs. `url` is absolute (scheme://host/path?query), as
    the provider called it; `headers` keep their order and spelling (names compared
    case-insensitively); `body` is the whole raw body."""

    method: str
    url: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a field, by case-insensitive name, or None."""
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a provider's check decided.

    - `ok`: the request is what the provider sent (or a handshake the agent answers).
    - `reason`: why not, when not ok ("signature does not match").
    - `answer`: a provider's challenge answered by the agent itself (Zoom's url_validation,
      Twitter's CRC...): the phase ends with it. `handshake` names it for the trace.
    - `refusal`: the provider's own answer to a failed check when it needs one (Xero's intent to
      receive wants 401 with no body); None means the action's default 403.
    """

    ok: bool
    reason: str = ""
    answer: Respond | None = None
    handshake: str = ""
    refusal: Respond | None = None


PASSED = Verdict(ok=True)


def fail(reason: str) -> Verdict:
    return Verdict(ok=False, reason=reason)


def missing(header: str) -> Verdict:
    return fail(f"missing {header}")


def answered(answer: Respond, handshake: str) -> Verdict:
    return Verdict(ok=True, answer=answer, handshake=handshake)


# A provider's check: (request, secret as bytes, now in epoch seconds) -> Verdict.
Check = Callable[[WebhookRequest, bytes, float], Verdict]


def octets(text: str) -> bytes:
    """A header value (latin-1 text, see facts.py) back to the bytes that were sent."""
    return text.encode("latin-1", "replace")


def mac(secret: bytes, message: bytes, digest: Digest = "sha256") -> bytes:
    """HMAC of `message` under `secret` (RFC 2104), as raw digest bytes."""
    return hmac.new(secret, message, getattr(hashlib, digest)).digest()


def decode_signature(text: str, encoding: Encoding) -> bytes | None:
    """A signature as sent (hex or base64 text) to bytes; None when it does not decode."""
    text = text.strip()
    try:
        if encoding == "hex":
            return bytes.fromhex(text)
        # Some senders drop base64's padding; restore it so the same signature decodes either way.
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (ValueError, binascii.Error):
        return None


def any_matches(expected: bytes, candidates: Iterable[str], encoding: Encoding) -> bool:
    """Whether any candidate signature decodes to `expected`, each compared in constant time.
    Every candidate is compared (no early exit), so the time does not say which one matched."""
    matched = False
    for candidate in candidates:
        decoded = decode_signature(candidate, encoding)
        if decoded is not None and hmac.compare_digest(expected, decoded):
            matched = True
    return matched


def unix_seconds(text: str) -> int | None:
    """A decimal Unix timestamp as sent in a header; None when it is not one."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 15:
        return None
    return int(text)


def stale(timestamp: float, now: float, tolerance: float) -> Verdict | None:
    """The failed verdict when `timestamp` is more than `tolerance` seconds from `now` (either
    side: a replayed request, or a sender's clock far off), else None."""
    if abs(now - timestamp) > tolerance:
        return fail(f"timestamp outside the {tolerance:g} s tolerance")
    return None


def key_values(value: str, separator: str = ",") -> list[tuple[str, str]]:
    """`t=1,v1=ab,v1=cd` as [("t", "1"), ("v1", "ab"), ("v1", "cd")]: the shape of Stripe-style
    signature headers. Parts without `=` are skipped; keys and values are stripped."""
    pairs = []
    for part in value.split(separator):
        key, sep, item = part.partition("=")
        if sep:
            pairs.append((key.strip(), item.strip()))
    return pairs


def json_object(body: bytes) -> dict[str, Any] | None:
    """A body that is a JSON object, parsed; None for anything else (a provider's challenge or
    signed field is only looked for in an object)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
        return None
    return document if isinstance(document, dict) else None
