"""The compress-response action: choose a content coding for the response body. It only decides
(`PhaseRun.compress`); the proxy compresses with response_compression.py.

Rules (ngrok's `traffic-policy/actions/compress-response.mdx`, RFC 9110):
- Phase on_http_response; not terminating.
- Config: `algorithms`, a list of unique codings from `gzip`, `deflate`, `br`, `compress`
  (default all four, in that order, as ngrok's table gives them). This agent also offers `zstd`
  (RFC 8878), which ngrok's list lacks; it is never in the default. Unknown fields are refused.
- Negotiation (RFC 9110 12.5.3, as ngrok's page says): the request's `Accept-Encoding` members
  with their q-values (default 1; `q=0` means "not acceptable"; a member whose weight does not
  parse is ignored); names are case-insensitive, `x-gzip` is `gzip` and `x-compress` is
  `compress` (8.4.1). A configured coding takes its own q, else that of `*`, else 0. The highest
  q above 0 wins; ties go to the coding listed first in `algorithms`. When the client names
  `identity` with a higher q than every offered coding, the body stays as it is.
- Not compressed (the response passes as it is, and the trace says why):
  - the request has no `Accept-Encoding` (ngrok compresses "when an HTTP request includes an
    Accept-Encoding header"), or an empty one (RFC 9110: no coding wanted), or no configured
    coding is acceptable;
  - the response is already encoded: a `Content-Encoding` other than `identity`, or a
    `Transfer-Encoding` with a coding other than `chunked` (`already_compressed` is then true);
  - there is no body to compress: a HEAD request, a 1xx, 204 or 304 status, `Content-Length: 0`;
  - the body is a range of the unencoded representation (206, or a `Content-Range`);
  - `Cache-Control: no-transform` (RFC 9111 5.2.2.6: intermediaries must not change the content);
  - its media type is already compressed or compresses badly: `image/*` (except SVG, BMP and
    icons), `video/*`, `audio/*`, WOFF fonts, and archive types (zip, gzip, bzip2, xz, 7z, rar,
    zstd, brotli, compress, lzma). A response with no `Content-Type` is compressed.
  - an earlier compress-response action of this phase already chose a coding.
- Sets `actions.ngrok.compress.already_compressed` and `.negotiated_algorithm` (the chosen
  coding, or "" when none) for later rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..outcomes import Outcome
from .base import RESPONSE, Action, Config, PhaseRun

DEFAULT_ALGORITHMS = ("gzip", "deflate", "br", "compress")
SUPPORTED = frozenset({"gzip", "deflate", "br", "compress", "zstd"})
_ALIASES = {"x-gzip": "gzip", "x-compress": "compress"}
_QVALUE = re.compile(r"q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)", re.IGNORECASE)
_NO_BODY_STATUS = frozenset({204, 304})
_INCOMPRESSIBLE_TYPES = frozenset(
    {
        "font/woff",
        "font/woff2",
        "application/font-woff",
        "application/font-woff2",
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/vnd.rar",
        "application/zstd",
        "application/x-zstd",
        "application/x-brotli",
        "application/x-compress",
        "application/x-lzma",
    }
)
_COMPRESSIBLE_IMAGES = frozenset(
    {"image/svg+xml", "image/bmp", "image/x-ms-bmp", "image/x-icon", "image/vnd.microsoft.icon"}
)


class CompressResponse(Action):
    """ngrok's `compress-response` action (see the module's rules)."""

    type = "compress-response"
    phases = frozenset({RESPONSE})

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        raw = config.raw("algorithms", list(DEFAULT_ALGORITHMS))
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw) or not raw:
            raise config.error("algorithms", "must be a list of at least one algorithm")
        algorithms = [item.lower() for item in raw]
        for item in algorithms:
            if item not in SUPPORTED:
                raise config.error(
                    "algorithms", f"contained an invalid algorithm: {item[:64]!r} (gzip, deflate, br, compress or zstd)"
                )
        if len(set(algorithms)) != len(algorithms):
            duplicate = next(item for item in algorithms if algorithms.count(item) > 1)
            raise config.error("algorithms", f"each algorithm must be unique: {duplicate!r} is listed twice")
        self.algorithms = tuple(algorithms)

    def run(self, run: PhaseRun) -> Outcome | None:
        coding, reason, already = self.decide(run)
        run.scope.actions["compress"] = {"already_compressed": already, "negotiated_algorithm": coding or ""}
        run.scope.changed("actions")
        if coding is None:
            run.note(self.type, f"not compressed: {reason}")
            return None
        run.compress = coding
        run.note(self.type, coding)
        return None

    def decide(self, run: PhaseRun) -> tuple[str | None, str, bool]:
        """(the coding to use or None, why not, whether the body was already encoded)."""
        request, response = run.request, run.response
        if request is None or response is None:
            return None, "no response", False
        encoding = ",".join(response.header_values("content-encoding"))
        transfer = ",".join(response.header_values("transfer-encoding"))
        if _codings(encoding) - {"identity"} or _codings(transfer) - {"chunked"}:
            return None, "already encoded", True
        if run.compress is not None:
            return None, f"{run.compress} already chosen", False
        if request.method.upper() == "HEAD" or response.status < 200 or response.status in _NO_BODY_STATUS:
            return None, "no body", False
        if (response.header("content-length") or "").strip() == "0":
            return None, "empty body", False
        if response.status == 206 or response.header("content-range") is not None:
            return None, "a range", False
        cache_control = ",".join(response.header_values("cache-control"))
        if "no-transform" in _codings(cache_control):
            return None, "Cache-Control: no-transform", False
        media_type = (response.header("content-type") or "").split(";", 1)[0].strip().lower()
        if not compressible_type(media_type):
            return None, f"{media_type} is already compressed", False
        accept = request.header_values("accept-encoding")
        if not accept:
            return None, "no Accept-Encoding", False
        coding = negotiate(",".join(accept), self.algorithms)
        if coding is None:
            return None, "no acceptable coding", False
        return coding, "", False


def negotiate(accept_encoding: str, offered: Sequence[str]) -> str | None:
    """The coding of `offered` (lower-case names, in preference order) to use for a request whose
    `Accept-Encoding` value is `accept_encoding` (several fields joined with ","), or None.
    See the module's rules; pure."""
    weights: dict[str, float] = {}
    for member in accept_encoding.split(","):
        name, _, params = member.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        weight = 1.0
        if params.strip():
            match = _QVALUE.fullmatch(params.strip().replace(" ", ""))
            if match is None:
                continue
            weight = float(match.group(1))
        name = _ALIASES.get(name, name)
        weights[name] = max(weight, weights.get(name, 0.0))
    star = weights.get("*", 0.0)
    best, best_weight = None, 0.0
    for coding in offered:
        weight = weights.get(coding, star)
        if weight > best_weight:
            best, best_weight = coding, weight
    if best is not None and weights.get("identity", 0.0) > best_weight:
        return None
    return best


def compressible_type(media_type: str) -> bool:
    """Whether a body of `media_type` (lower-case, without parameters; "" when unknown) is worth
    compressing: not already compressed media or archives (see the module's rules)."""
    if media_type in _INCOMPRESSIBLE_TYPES:
        return False
    top = media_type.split("/", 1)[0]
    if top == "image":
        return media_type in _COMPRESSIBLE_IMAGES
    return top not in ("video", "audio")


def _codings(value: str) -> set[str]:
    return {token.split(";", 1)[0].split("=", 1)[0].strip().lower() for token in value.split(",") if token.strip()}


ACTIONS = (CompressResponse,)
