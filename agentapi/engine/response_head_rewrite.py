"""What the agent changes in a local service's response head before the client sees it.

Rules (ngrok's, from snippets/gateway/shared/http-end-source.mdx):
- `ngrok-error-code` is the agent's own field: "ngrok guarantees that the upstream service may
  never set the ngrok-error-code HTTP response header so you know reliably that it was set by
  ngrok" ("Errors"). A service's field of that name (any spelling) is dropped from the final head.
- With `host_header: rewrite`, and only then, "ngrok also rewrites the location header of HTTP
  responses automatically to match the hostname of your Endpoint URL" ("Rewriting the host
  header"). A Location whose origin is the upstream's (http or https, the host the service was
  sent, with or without its port written out; also scheme-relative `//host:port/...`) gets the
  public scheme and the host the client asked for instead; its path, query and fragment stay. A
  relative Location or one naming another host is left alone; so is Content-Location (ngrok names
  only Location).
- Only field lines of the final head change (interim 1xx heads before it pass as they are); the
  status line, the other fields in order, the framing and the body are untouched.
- A head with nothing to change costs one bounded search and comes back as the same object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .http1 import final_head_span
from .tunnel_spec import TunnelSpec

# Case-insensitive by character classes: faster than re.IGNORECASE on every response head.
_ERROR_CODE = re.compile(rb"\n[Nn][Gg][Rr][Oo][Kk]-[Ee][Rr][Rr][Oo][Rr]-[Cc][Oo][Dd][Ee][ \t]*:")
_ERROR_CODE_NAME = b"ngrok-error-code"
_LOCATION = b"location"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class LocationRewrite:
    """The origins (lower case, no trailing slash) a service's own redirects start with."""

    upstream_origins: tuple[bytes, ...]


def location_rewrite(spec: TunnelSpec) -> LocationRewrite | None:
    """What to look for in Location for this tunnel; None unless its host_header is `rewrite`."""
    if spec.host_header != "rewrite" or spec.forward_host is None:
        return None
    upstream = spec.upstream
    authorities = {spec.forward_host.lower()}
    default = _DEFAULT_PORTS.get(upstream.scheme)
    if default is not None and upstream.port == default:
        # The Host sent leaves a default port out; a redirect may still write it.
        authorities.add(b"%s:%d" % (spec.forward_host.lower(), default))
    origins = [prefix + authority for authority in sorted(authorities) for prefix in (b"http://", b"https://", b"//")]
    # Longest first: `http://localhost:80` must win over `http://localhost`.
    return LocationRewrite(upstream_origins=tuple(sorted(origins, key=len, reverse=True)))


def rewrite_response_head(data: bytes, location: LocationRewrite | None, public_origin: bytes) -> bytes:
    """`data` (bytes that start with a whole response head) with the final head's fields changed
    as the banner says; `public_origin` is `scheme://host[:port]` as the client reached the tunnel
    (only read when `location` is given). Returns `data` itself when nothing changes."""
    # The common case, first: one head (no interim 1xx before it) and no field to drop.
    if location is None and data[9:10] != b"1" and _ERROR_CODE.search(data, 0, max(data.find(b"\r\n\r\n"), 0)) is None:
        return data
    start, end = final_head_span(data)
    if not end:
        return data
    if location is None and _ERROR_CODE.search(data, start, end) is None:
        return data
    head = data[start : end - 2]  # the status line and the field lines, each ending in CRLF
    lines = head.split(b"\r\n")[:-1]
    out = [lines[0]]
    changed = False
    dropping = False
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):  # obs-fold: a continuation of the field before
            if dropping:
                continue
            out.append(line)
            continue
        name, colon, value = line.partition(b":")
        lowered = name.strip().lower()
        dropping = colon != b"" and lowered == _ERROR_CODE_NAME
        if dropping:
            changed = True
            continue
        if location is not None and lowered == _LOCATION:
            rewritten = _rewritten_location(value.strip(b" \t"), location, public_origin)
            if rewritten is not None:
                line = name + b": " + rewritten
                changed = True
        out.append(line)
    if not changed:
        return data
    return data[:start] + b"\r\n".join(out) + b"\r\n\r\n" + data[end:]


def _rewritten_location(value: bytes, location: LocationRewrite, public_origin: bytes) -> bytes | None:
    lowered = value.lower()
    for origin in location.upstream_origins:
        if lowered.startswith(origin) and lowered[len(origin) : len(origin) + 1] in (b"", b"/", b"?", b"#"):
            return public_origin + value[len(origin) :]
    return None
