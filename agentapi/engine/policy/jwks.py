"""JSON Web Key Sets for jwt-validation: read when the endpoint starts, kept in memory, refreshed
in the background, looked up by key id and algorithm.

Rules (ngrok's `traffic-policy/actions/jwt-validation.mdx`, RFC 7517):
- A source is a JWKS URL (`additional_jkus`, http or https) or, this agent's extension, a local
  JWKS file (`local_jwks_files`). Each is read whole (at most 1 MiB), in a thread
  (`asyncio.to_thread`), a URL with urllib and a 5 second timeout; it must be a JSON object with a
  `keys` list holding at least one key PyJWT can use. `load()` reads every source before the
  endpoint takes traffic; one that cannot be read is a PolicyError naming its URL or path.
- Keys are cached. ngrok refreshes its cache "roughly every 15 minutes": a lookup at least
  REFRESH_EVERY seconds after the last read starts a background refresh. A token whose `kid` no
  key has starts one too (the issuer may have rotated its keys); that request is refused
  meanwhile. Refreshes never block the event loop, run one at a time and start at most once per
  REFRESH_MIN_INTERVAL seconds; a source that fails to refresh keeps its old keys (logged).
- A key fits a token when its `kid` equals the token's (any key when the token has none), its
  `alg` (if any) is the token's algorithm, its `use` (if any) is `sig`, and its type suits the
  algorithm (an RSA key for RS256/PS256, an EC P-256 key for ES256...). Keys are tried in the
  order of the sources, then of the set.
- Time comes from the caller (`now`, seconds, from the exchange's clock), never from a clock here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWTError

from .errors import PolicyError

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 5.0
MAX_JWKS_BYTES = 1024 * 1024
REFRESH_EVERY = 15 * 60.0
REFRESH_MIN_INTERVAL = 60.0


class JwksReadError(Exception):
    """A JWKS source that could not be read, or that is not a usable JWKS."""


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where a JWKS comes from: a URL (http, https) or, when `is_file`, a local path."""

    location: str
    is_file: bool = False

    def read(self) -> bytes:
        """The source's bytes (blocking: call it in a thread). Raises JwksReadError."""
        if self.is_file:
            try:
                with open(os.path.expanduser(self.location), "rb") as file:
                    data = file.read(MAX_JWKS_BYTES + 1)
            except OSError as error:
                raise JwksReadError(error.strerror or str(error)) from None
        else:
            request = urllib.request.Request(self.location, headers={"Accept": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
                    data = response.read(MAX_JWKS_BYTES + 1)
            except urllib.error.HTTPError as error:
                raise JwksReadError(f"HTTP {error.code}") from None
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", None) or error
                raise JwksReadError(str(reason)) from None
        if len(data) > MAX_JWKS_BYTES:
            raise JwksReadError(f"larger than {MAX_JWKS_BYTES // 1024} KiB")
        return data


def parse_jwks(data: bytes) -> tuple[dict[str, Any], ...]:
    """The keys of a JWKS document, each a JWK object. Raises JwksReadError when it is not a JWKS
    or holds no key PyJWT can use."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise JwksReadError("did not serve a JWKS: not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise JwksReadError('did not serve a JWKS: no "keys" list')
    usable = tuple(key for key in keys if isinstance(key, dict) and _usable(key))
    if not usable:
        raise JwksReadError("did not serve a JWKS: no key this agent can use")
    return usable


class JwksCache:
    """The keys of every source of one jwt-validation action (see the module's rules).

    `reader` reads a source (blocking); tests may pass their own.
    """

    def __init__(self, sources: Sequence[KeySource], *, reader: Callable[[KeySource], bytes] | None = None) -> None:
        self.sources = tuple(sources)
        self._read = reader or KeySource.read
        self._keys: list[tuple[dict[str, Any], ...]] = [() for _ in self.sources]
        self._built: dict[tuple[int, int, str], PyJWK | None] = {}
        self.read_at: float | None = None  # `now` of the last refresh that started; None: at load
        self._last_attempt: float | None = None
        self.refreshing: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Read every source (in threads). Raises PolicyError naming the first that fails."""
        results = await asyncio.gather(*(asyncio.to_thread(self._read_keys, source) for source in self.sources))
        self._set_keys(list(results))

    def knows(self, kid: str) -> bool:
        """Whether any key has this `kid`."""
        return any(key.get("kid") == kid for keys in self._keys for key in keys)

    def find(self, kid: str | None, alg: str) -> list[PyJWK]:
        """The keys that fit a token with this `kid` (None: the token has none) and algorithm."""
        found = []
        for source_index, keys in enumerate(self._keys):
            for key_index, key in enumerate(keys):
                if kid is not None and key.get("kid") != kid:
                    continue
                if key.get("alg", alg) != alg or key.get("use", "sig") != "sig":
                    continue
                built = self._build(source_index, key_index, key, alg)
                if built is not None:
                    found.append(built)
        return found

    def refresh_if_due(self, now: float) -> bool:
        """Start a background refresh when the keys are REFRESH_EVERY seconds old. The first call
        after load() only notes the time: the keys were read just before traffic began."""
        if self.read_at is None:
            self.read_at = now
            return False
        if now - self.read_at < REFRESH_EVERY:
            return False
        return self.refresh(now)

    def refresh(self, now: float) -> bool:
        """Start reading every source again in the background, unless a refresh is running or one
        started less than REFRESH_MIN_INTERVAL seconds ago, or no event loop runs. True if started."""
        if self.refreshing is not None and not self.refreshing.done():
            return False
        if self._last_attempt is not None and now - self._last_attempt < REFRESH_MIN_INTERVAL:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._last_attempt = now
        self.refreshing = loop.create_task(self._refresh(now))
        return True

    def close(self) -> None:
        """Stop a refresh that is running (the policy is being replaced or its tunnel stopped)."""
        if self.refreshing is not None and not self.refreshing.done():
            self.refreshing.cancel()

    async def _refresh(self, started: float) -> None:
        results = await asyncio.gather(
            *(asyncio.to_thread(self._read_keys, source) for source in self.sources), return_exceptions=True
        )
        keys = list(self._keys)
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                log.warning("jwt-validation: keeping the old keys of %s: %s", self.sources[index].location, result)
            else:
                keys[index] = result
        self._set_keys(keys)
        self.read_at = started

    def _read_keys(self, source: KeySource) -> tuple[dict[str, Any], ...]:
        kind = "JWKS file" if source.is_file else "JWKS URL"
        try:
            return parse_jwks(self._read(source))
        except JwksReadError as error:
            raise PolicyError(f"jwt-validation: the {kind} {source.location} could not be read: {error}") from None

    def _set_keys(self, keys: list[tuple[dict[str, Any], ...]]) -> None:
        self._keys = keys
        self._built.clear()

    def _build(self, source_index: int, key_index: int, key: dict[str, Any], alg: str) -> PyJWK | None:
        slot = (source_index, key_index, alg)
        if slot not in self._built:
            try:
                self._built[slot] = PyJWK(key, algorithm=alg)
            except (PyJWTError, ValueError, TypeError, KeyError):  # a key unfit for the algorithm
                self._built[slot] = None
        return self._built[slot]


def _usable(key: dict[str, Any]) -> bool:
    try:
        PyJWK(key)
    except (PyJWTError, ValueError, TypeError, KeyError):
        return False
    return True
