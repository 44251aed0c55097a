"""url-rewrite, and the URL rewriting that redirect shares: a Go RE2 regex over the whole URL.

Rules (ngrok's docs, `traffic-policy/actions/url-rewrite.mdx` and `redirect.mdx`):
- The URL matched is the request's whole URL, `scheme://host[:port]/path?query`, as CEL's
  `req.url` has it (cel_http_values.url_parts): the public side's scheme, the Host field (the
  endpoint's host when there is none) and the target.
- `${...}` in `from` and `to` is rendered first, then `from` is compiled and matched ("All CEL
  interpolation will occur before regular expressions are evaluated"). Matching is not anchored.
- Every match of `from` is replaced by `to`, as Go's Regexp.ReplaceAllString does: matches left
  to right, never overlapping, and an empty match right after a match is not replaced. Without
  `from` the whole URL is the match.
- In `to`, `$1` and `$name` insert a capture group and `$$` a `$`, by Go's Regexp.Expand rules:
  a name is as long as possible (`$1x` names a group `1x`, so it inserts nothing), a group that
  does not exist or did not take part inserts nothing, and a `$` not followed by a name stays.
  Go's `${1}` form cannot be written: `${...}` is CEL interpolation in ngrok's config strings.
- Regex dialect: RE2, through google-re2 (Go's regexp is RE2's syntax): lookaround and
  backreferences do not compile. A constant `from` that does not compile is refused at load; an
  interpolated one fails the rule at run time.
- The result, relative or absolute, is resolved against the request URL (RFC 3986 5.2), and
  characters a URL cannot hold (space, controls, non-ASCII as UTF-8) are percent-encoded.
- url-rewrite: the request's target becomes the result's path and query (a fragment is dropped);
  when the result names another host, the Host field changes with it. The scheme is the public
  side's and stays. Phase: on_http_request.
- actions.ngrok.url_rewrite.matches: the first match and its groups (Go's FindStringSubmatch;
  empty when nothing matched); .url: the request URL after the action; .error.code/.message: ""
  (a failure fails the rule instead).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urljoin, urlsplit

import re2

from .. import cel
from ..cel_http_values import url_parts
from ..errors import PolicyRuntimeError
from ..outcomes import Outcome
from .base import REQUEST, Action, Config, PhaseRun
from .headers import replace_field

if TYPE_CHECKING:
    from re2 import _Match, _Regexp

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print each refused pattern to stderr; we raise instead
# Kept as they are when a URL is re-quoted: RFC 3986 reserved characters and `%` (already encoded).
_URL_SAFE = "!#$%&'()*+,/:;=?@[]"
_NO_ERROR = {"code": "", "message": ""}


def compile_regex(pattern: str) -> _Regexp[str]:
    """An RE2 regex; raises ValueError with RE2's reason when it does not compile."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"not an RE2 regular expression: {reason}") from None


@functools.lru_cache(maxsize=256)
def _cached_regex(pattern: str) -> _Regexp[str]:
    # Interpolated patterns are compiled per request; most repeat.
    return compile_regex(pattern)


def _name_char(ch: str) -> bool:
    # Go's Expand: unicode.IsLetter, unicode.IsDigit (Nd) or '_'.
    return ch.isalpha() or ch == "_" or unicodedata.category(ch) == "Nd"


def expand(template: str, match: _Match[str], names: Mapping[str, int], groups: int) -> str:
    """`template` with `$n`, `${n}`, `$name`, `${name}` and `$$` expanded as Go's Regexp.Expand."""
    out: list[str] = []
    rest = template
    while True:
        before, dollar, after = rest.partition("$")
        out.append(before)
        if not dollar:
            return "".join(out)
        rest = after
        if rest.startswith("$"):
            out.append("$")
            rest = rest[1:]
            continue
        brace = rest.startswith("{")
        body = rest[1:] if brace else rest
        length = 0
        while length < len(body) and _name_char(body[length]):
            length += 1
        if length == 0 or (brace and body[length : length + 1] != "}"):
            out.append("$")  # malformed: the `$` is text
            continue
        name = body[:length]
        rest = body[length + 1 :] if brace else body[length:]
        index = -1
        if name.isascii() and name.isdigit() and not (len(name) > 1 and name[0] == "0") and len(name) <= 8:
            index = int(name)
        elif name in names:
            index = names[name]
        if 0 <= index <= groups:
            out.append(match.group(index) or "")


def replace_all(regex: _Regexp[str], text: str, to: str) -> tuple[str, list[str]]:
    """Go's Regexp.ReplaceAllString(text, to), and the first match's FindStringSubmatch ([] when
    nothing matched: then the text is returned unchanged)."""
    out: list[str] = []
    first: list[str] | None = None
    names = regex.groupindex
    groups = regex.groups
    last_end = 0
    position = 0
    while position <= len(text):
        match = regex.search(text, position)
        if match is None:
            break
        start, end = match.span()
        if first is None:
            first = [match.group(i) or "" for i in range(groups + 1)]
        out.append(text[last_end:start])
        # Not for an empty match right after another match (Go: it would replace twice).
        if end > last_end or start == 0:
            out.append(expand(to, match, names, groups))
        last_end = end
        # Always advance at least one character.
        position = position + 1 if position + 1 > end else end
    if first is None:
        return text, []
    out.append(text[last_end:])
    return "".join(out), first


def request_url(run: PhaseRun) -> str:
    """The request's whole URL as ngrok matches it: `scheme://host[:port]/path?query`."""
    request = run.request
    if request is None:
        raise PolicyRuntimeError(f"no request in {run.phase}")
    # HTTP/1.0 may send no Host: the endpoint's host keeps the URL whole.
    host = request.host or urlsplit(run.scope.endpoint.url).netloc
    # The same text as CEL's `req.url`, so `from` and the rule's expressions see one URL.
    return str(url_parts(request.scheme, host, request.target)[""])


def resolve(base: str, result: str) -> str:
    """`result` resolved against `base` (RFC 3986 5.2), with what a URL cannot hold percent-encoded.

    Raises PolicyRuntimeError for a result that is no URL (`http://[::1/x`)."""
    try:
        joined = urljoin(base, result)
        urlsplit(joined)
    except ValueError as error:
        raise PolicyRuntimeError(f"the rewritten URL {result!r:.120} is not a URL: {error}") from None
    return quote(joined, safe=_URL_SAFE)


@dataclass(frozen=True, slots=True)
class Rewritten:
    url: str  # resolved against the request URL; the request URL itself when nothing matched
    matches: list[str]  # the first match and its groups; [] when nothing matched


class UrlRewriter:
    """`from` (optional regex, `${...}` allowed) and `to` (required, `${...}` allowed) read from config.

    Raises PolicyError naming `from` when a constant pattern is not RE2.
    """

    def __init__(self, config: Config) -> None:
        self._from: cel.Template | None = None
        if config.has("from"):
            self._from = config.template("from")
        else:
            config.raw("from")  # `from: null` is the same as no `from`
        self._regex: _Regexp[str] | None = None
        if self._from is not None and self._from.constant:
            try:
                self._regex = compile_regex(self._from.source)
            except ValueError as error:
                raise config.error("from", str(error)) from None
        self._to = config.template("to")

    def apply(self, run: PhaseRun, url: str) -> Rewritten:
        """Rewrite `url`; raises PolicyRuntimeError when an interpolated `from` is not RE2."""
        to = run.render(self._to)
        if self._from is None:
            return Rewritten(resolve(url, to), [url])
        regex = self._regex
        if regex is None:
            pattern = run.render(self._from)
            try:
                regex = _cached_regex(pattern)
            except ValueError as error:
                raise PolicyRuntimeError(f"from {pattern!r:.120}: {error}") from None
        result, matches = replace_all(regex, url, to)
        if not matches:
            return Rewritten(url, [])
        return Rewritten(resolve(url, result), matches)


class UrlRewrite(Action):
    """url-rewrite: the request URL rewritten by `from` -> `to` before it goes to the service."""

    type = "url-rewrite"
    phases = frozenset({REQUEST})

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        self.rewriter = UrlRewriter(config)
        config.finish()

    def run(self, run: PhaseRun) -> Outcome | None:
        url = request_url(run)
        rewritten = self.rewriter.apply(run, url)
        request = run.request
        assert request is not None  # request_url checked it
        before = request.target
        if rewritten.matches and rewritten.url != url:
            parts = urlsplit(rewritten.url)
            if parts.scheme.lower() not in ("http", "https"):
                # `javascript:...` has no path to send as a request target.
                raise PolicyRuntimeError(f"the rewritten URL {rewritten.url!r:.120} is not an http(s) URL")
            request.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host = parts.netloc.rpartition("@")[2]
            moved = bool(host) and host.lower() != request.host.lower()
            if moved:
                request.host = host
                replace_field(request.headers, "host", host)
            run.scope.changed("req")
            run.note(self.type, f"{before} -> {request.target}" + (f" (host {host})" if moved else ""))
        else:
            run.note(self.type, "no match" if not rewritten.matches else "unchanged")
        run.scope.actions["url_rewrite"] = {
            "matches": rewritten.matches,
            "url": rewritten.url,
            "error": dict(_NO_ERROR),
        }
        run.scope.changed("actions")
        return None


ACTIONS = (UrlRewrite,)
