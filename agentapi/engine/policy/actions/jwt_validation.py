"""The jwt-validation action: let a request through only with valid signed JWTs (JWS).

Rules (ngrok's `traffic-policy/actions/jwt-validation.mdx` and its error reference, RFC 7519,
RFC 6750):
- Phase on_http_request; not terminating (it answers only to refuse).
- Config (unknown fields refused at every level; lists that must be unique say so, as ngrok's
  ERR_NGROK_7187-7192 do):
  - `issuer.allow_list` (required, at least 1): `{value}` objects; `value` may use `${...}`. A
    token's `iss` must equal one exactly (trailing slash included).
  - `audience.allow_list` (optional; at least 1 when `audience` is given): `{value}` objects. When
    given, the token's `aud` must hold one of them; when not, a token with an `aud` is refused
    (PyJWT's rule: a token meant for someone must not be taken by an endpoint that did not say
    who it is).
  - `http.tokens` (required, at least 1, unique by method and name): `{type, method, name,
    prefix?}`. `type` is one of id_token, access_token, at+jwt, it+jwt, plain, jwt (a hint, not
    checked against the token's `typ`); `method` is `header` or `body`; `name` (may use `${...}`)
    is the header, or the field of a JSON or form body, matched case-insensitively; `prefix` (may
    use `${...}`, e.g. "Bearer ") must start the value (matched case-insensitively, as an
    authentication scheme is: RFC 9110 11.1) and is cut off. A body token is read only from a
    POST, PUT or PATCH; the action then needs the request body, which the proxy reads first.
    Every listed token must be present and valid.
  - `jws.allowed_algorithms` (required, at least 1, unique): RS256/384/512, PS256/384/512,
    ES256/384/512, ES256K, EdDSA. `none` is refused (insecure, as ngrok says), and so is HMAC
    (HS256...): its secret key cannot be published in a JWKS.
  - `jws.keys` (required): `{sources, identification?}`, as an object (ngrok's examples) or a list
    of them (ngrok's table). `sources`: an object or a list of objects with `additional_jkus`
    (JWKS URLs, http or https, unique, without `${...}`: they are read when the endpoint starts)
    and, this agent's extension, `local_jwks_files` (paths of JWKS files on this machine); at least
    one source in all, at most 100. `identification`: `{token_claims}` objects (or one object),
    where the only claim is `kid`.
- Keys: jwks.py (read before traffic; a source that cannot be read refuses the endpoint with a
  message naming it; refreshed in the background; an unknown `kid` starts a refresh and refuses
  the request meanwhile).
- A token is valid when it parses, its `alg` is allowed, a key that fits verifies its signature,
  `iss` and `aud` match as above, `exp` is after now and `nbf` not after now (numbers of seconds;
  `now` is the exchange's clock; no leeway). `exp` is not required (RFC 7519 4.1.4).
- Refused: `401 Unauthorized`, `WWW-Authenticate: Bearer` (with `error="invalid_token"` and a
  description when a token was given, without an error when none was: RFC 6750 3, 3.1) and
  `ngrok-error-code`: ERR_NGROK_3406 (no token), 3408 (header missing), 3413 (prefix missing),
  3414/3411/3412 (the body is not JSON or a form, or does not parse), 3415 (a body token on
  another method), 3416 (malformed token), 3401 (any other invalid token). The trace says
  "refused 401, <reason>".
- Sets `actions.ngrok.jwt_validation.tokens` (per token: header, payload, signature, location,
  location_property, verified) and `.error.code` / `.error.message` ("" when valid).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import (
    DecodeError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTokenError,
    MissingRequiredClaimError,
)

from ..cel import Template, compile_template
from ..errors import PolicyError
from ..jwks import JwksCache, KeySource
from ..outcomes import Outcome, Respond
from .base import REQUEST, Action, Config, PhaseRun

TOKEN_TYPES = ("id_token", "access_token", "at+jwt", "it+jwt", "plain", "jwt")
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "ES256K", "EdDSA"}
)
MAX_SOURCES = 100
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# RFC 6750 3: error_description is printable ASCII without '"' and '\'.
_UNQUOTABLE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")

Text = str | Template


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """One entry of `http.tokens`."""

    type: str
    method: str  # header or body
    name: Text
    prefix: Text


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: ngrok's error code, a reason for the trace and the client, and
    whether a token was presented at all (RFC 6750: no error attribute when none was)."""

    code: str
    reason: str
    token_given: bool = True


class JwtValidation(Action):
    """ngrok's `jwt-validation` action (see the module's rules)."""

    type = "jwt-validation"
    phases = frozenset({REQUEST})

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        self.where = config.where
        issuer = _section(config, "issuer")
        self.issuers = tuple(
            _text(value, f"{issuer.where}.allow_list[{index}].value")
            for index, value in enumerate(_allow_list(issuer, required=True, what="issuer"))
        )
        issuer.finish()
        self.audiences: tuple[str, ...] = ()
        raw_audience = config.raw("audience")
        if raw_audience is not None:
            audience = Config(raw_audience, where=f"{config.where}.audience")
            self.audiences = tuple(_allow_list(audience, required=True, what="audience"))
            audience.finish()
        http = _section(config, "http")
        self.tokens = _tokens(http)
        http.finish()
        jws = _section(config, "jws")
        self.algorithms = _algorithms(jws)
        sources = _key_sources(jws)
        jws.finish()
        self.keys = JwksCache(sources)
        if any(token.method == "body" for token in self.tokens):
            self.needs_body = True  # only for tokens read from the body

    async def prepare(self) -> None:
        try:
            await self.keys.load()
        except PolicyError as error:
            raise PolicyError(f"{self.where}.jws.keys: {error}") from None

    def close(self) -> None:
        self.keys.close()

    def run(self, run: PhaseRun) -> Outcome | None:
        now = run.clock()
        self.keys.refresh_if_due(now)
        issuers = [value if isinstance(value, str) else run.render(value) for value in self.issuers]
        results: list[dict[str, Any]] = []
        refusal: Refusal | None = None
        for spec in self.tokens:
            found = self._find_token(run, spec)
            if isinstance(found, Refusal):
                refusal = found
                break
            token, location_property = found
            result, refusal = self._check(token, issuers, now)
            result.update(location=spec.method, location_property=location_property)
            results.append(result)
            if refusal is not None:
                break
        error = {"code": refusal.code, "message": refusal.reason} if refusal else {"code": "", "message": ""}
        run.scope.actions["jwt_validation"] = {"tokens": results, "error": error}
        run.scope.changed("actions")
        if refusal is None:
            run.note(self.type, f"valid ({len(results)} token{'s' if len(results) > 1 else ''})")
            return None
        run.note(self.type, f"refused 401, {refusal.reason}", terminal=True)
        return _unauthorized(refusal)

    def _find_token(self, run: PhaseRun, spec: TokenSpec) -> tuple[str, str] | Refusal:
        """The raw token of one spec and where it was (the header or field name), or a Refusal."""
        request = run.request
        if request is None:
            return Refusal("ERR_NGROK_3406", "no request", token_given=False)
        name = spec.name if isinstance(spec.name, str) else run.render(spec.name)
        prefix = spec.prefix if isinstance(spec.prefix, str) else run.render(spec.prefix)
        if spec.method == "header":
            value = request.header(name)
            if value is None:
                return Refusal("ERR_NGROK_3408", f"header {name[:64]} not found", token_given=False)
        else:
            if request.method.upper() not in BODY_METHODS:
                return Refusal(
                    "ERR_NGROK_3415", f"tokens in the body are not read from a {request.method[:16]}", token_given=False
                )
            found = _body_field(request.header("content-type") or "", request.body or b"", name)
            if isinstance(found, Refusal):
                return found
            value = found
        if prefix:
            if value[: len(prefix)].lower() != prefix.lower():
                return Refusal("ERR_NGROK_3413", f"prefix {prefix.strip()[:32]!r} not found", token_given=False)
            value = value[len(prefix) :]
        value = value.strip()
        if not value:
            return Refusal("ERR_NGROK_3406", "no token", token_given=False)
        return value, name

    def _check(self, token: str, issuers: Sequence[str], now: float) -> tuple[dict[str, Any], Refusal | None]:
        """The token's result variable and why it is invalid (None when it is valid)."""
        try:
            header = jwt.get_unverified_header(token)
            payload = jwt.decode(token, options={"verify_signature": False})
        except (DecodeError, InvalidTokenError):
            return {"header": {}, "payload": {}, "signature": "", "verified": False}, Refusal(
                "ERR_NGROK_3416", "the token could not be parsed"
            )
        result: dict[str, Any] = {
            "header": header,
            "payload": payload,
            "signature": token.rsplit(".", 1)[-1],
            "verified": False,
        }
        refusal = self._verify(token, header, issuers, now)
        result["verified"] = refusal is None
        return result, refusal

    def _verify(self, token: str, header: dict[str, Any], issuers: Sequence[str], now: float) -> Refusal | None:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            return Refusal("ERR_NGROK_3401", f"algorithm {str(alg)[:16]} is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            return Refusal("ERR_NGROK_3401", "the kid is not a string")
        if kid is not None and not self.keys.knows(kid):
            refreshing = self.keys.refresh(now)
            return Refusal(
                "ERR_NGROK_3401", f"no key has kid {kid[:64]!r}" + (" (refreshing the keys)" if refreshing else "")
            )
        keys = self.keys.find(kid, alg)
        if not keys:
            return Refusal("ERR_NGROK_3401", f"no key for {alg}")
        payload: dict[str, Any] | None = None
        for key in keys:
            try:
                payload = jwt.decode(
                    token,
                    key=key,
                    algorithms=[alg],
                    issuer=list(issuers),
                    audience=list(self.audiences) or None,
                    # exp and nbf are checked below against the exchange's clock.
                    options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
                )
                break
            except InvalidSignatureError:
                continue
            except MissingRequiredClaimError as error:
                what = {"aud": "audience", "iss": "issuer"}.get(error.claim, error.claim)
                return Refusal("ERR_NGROK_3401", f"the token has no {what}")
            except InvalidIssuerError:
                return Refusal("ERR_NGROK_3401", "the issuer is not allowed")
            except InvalidAudienceError:
                return Refusal("ERR_NGROK_3401", "the audience is not allowed")
            except InvalidTokenError as error:
                return Refusal("ERR_NGROK_3401", f"invalid token: {str(error)[:80]}")
        if payload is None:
            return Refusal("ERR_NGROK_3401", "the signature does not verify")
        return _check_times(payload, now)


def _check_times(payload: dict[str, Any], now: float) -> Refusal | None:
    for claim in ("exp", "nbf"):
        value = payload.get(claim)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return Refusal("ERR_NGROK_3401", f"the {claim} claim is not a number")
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if exp is not None and now >= exp:
        return Refusal("ERR_NGROK_3401", "the token has expired")
    if nbf is not None and now < nbf:
        return Refusal("ERR_NGROK_3401", "the token is not valid yet")
    return None


def _unauthorized(refusal: Refusal) -> Respond:
    challenge = "Bearer"
    if refusal.token_given:
        description = _UNQUOTABLE.sub("", refusal.reason)
        challenge = f'Bearer error="invalid_token", error_description="{description}"'
    return Respond(
        401,
        [
            ("WWW-Authenticate", challenge),
            ("ngrok-error-code", refusal.code),
            ("Content-Type", "text/plain; charset=utf-8"),
        ],
        f"401 Unauthorized: {refusal.reason} ({refusal.code})\n".encode(),
    )


def _body_field(content_type: str, body: bytes, name: str) -> str | Refusal:
    """A token field of a JSON object or form body, its name matched case-insensitively."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    lower = name.lower()
    fields: list[tuple[str, Any]]
    if media_type == "application/json":
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return Refusal("ERR_NGROK_3411", "the JSON body does not parse", token_given=False)
        if not isinstance(document, dict):
            return Refusal("ERR_NGROK_3411", "the JSON body is not an object", token_given=False)
        fields = list(document.items())
    elif media_type == "application/x-www-form-urlencoded":
        try:
            fields = list(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (ValueError, UnicodeDecodeError):
            return Refusal("ERR_NGROK_3412", "the form body does not parse", token_given=False)
    else:
        return Refusal(
            "ERR_NGROK_3414", "a body token needs a JSON or form (x-www-form-urlencoded) body", token_given=False
        )
    for key, value in fields:
        if key.lower() == lower and isinstance(value, str):
            return value
    return Refusal("ERR_NGROK_3406", f"body field {name[:64]} not found", token_given=False)


# Reading the config: nested objects through Config too, so unknown fields are refused everywhere.


def _section(config: Config, name: str) -> Config:
    """A required object field, as a Config of its own."""
    if not config.has(name):
        raise config.error(name, "is required")
    return Config(config.raw(name), where=f"{config.where}.{name}")


def _objects(config: Config, name: str, *, required: bool, single_allowed: bool = False) -> list[Config]:
    """A list of objects (or, when `single_allowed`, one object standing for a list of one)."""
    raw = config.raw(name)
    if raw is None:
        if required:
            raise config.error(name, "is required")
        return []
    if single_allowed and isinstance(raw, dict):
        return [Config(raw, where=f"{config.where}.{name}")]
    if not isinstance(raw, list) or not raw:
        raise config.error(name, "must be a list of at least one object")
    return [Config(item, where=f"{config.where}.{name}[{index}]") for index, item in enumerate(raw)]


def _allow_list(section: Config, *, required: bool, what: str) -> list[str]:
    entries = _objects(section, "allow_list", required=required)
    values = []
    for entry in entries:
        value = entry.string("value")
        if not value:
            raise entry.error("value", "must not be empty")
        entry.finish()
        values.append(value)
    _unique(section, "allow_list", values, what)
    return values


def _tokens(http: Config) -> tuple[TokenSpec, ...]:
    specs = []
    seen: set[tuple[str, str]] = set()
    for entry in _objects(http, "tokens", required=True):
        token_type = entry.string("type")
        if token_type not in TOKEN_TYPES:
            raise entry.error("type", f"must be one of {', '.join(TOKEN_TYPES)}, was {token_type[:32]!r}")
        method = entry.string("method")
        if method not in ("header", "body"):
            raise entry.error("method", f"must be header or body, was {method[:32]!r}")
        name = entry.string("name")
        if not name:
            raise entry.error("name", "must not be empty")
        prefix = entry.string("prefix", "")
        entry.finish()
        if (method, name.lower()) in seen:
            raise http.error("tokens", f"the {method} token {name[:64]!r} is listed twice")
        seen.add((method, name.lower()))
        specs.append(
            TokenSpec(token_type, method, _text(name, f"{entry.where}.name"), _text(prefix, f"{entry.where}.prefix"))
        )
    return tuple(specs)


def _algorithms(jws: Config) -> frozenset[str]:
    algorithms = jws.strings("allowed_algorithms", required=True, min_items=1)
    for alg in algorithms:
        if alg.lower() == "none":
            raise jws.error("allowed_algorithms", "none is not supported: it is insecure")
        if alg.upper().startswith("HS"):
            raise jws.error(
                "allowed_algorithms", f"{alg[:16]} is not supported: HMAC keys are secret and cannot come from a JWKS"
            )
        if alg not in ALGORITHMS:
            raise jws.error(
                "allowed_algorithms", f"{alg[:16]!r} is not a supported algorithm ({', '.join(sorted(ALGORITHMS))})"
            )
    _unique(jws, "allowed_algorithms", algorithms, "algorithm")
    return frozenset(algorithms)


def _key_sources(jws: Config) -> list[KeySource]:
    sources: list[KeySource] = []
    for keys in _objects(jws, "keys", required=True, single_allowed=True):
        for identification in _objects(keys, "identification", required=False, single_allowed=True):
            claims = identification.strings("token_claims")
            for claim in claims:
                if claim != "kid":
                    raise identification.error("token_claims", f"the only supported claim is kid, was {claim[:32]!r}")
            _unique(identification, "token_claims", claims, "claim")
            identification.finish()
        for source in _objects(keys, "sources", required=True, single_allowed=True):
            urls = source.strings("additional_jkus")
            _unique(source, "additional_jkus", urls, "JKU")
            for url in urls:
                if "${" in url:
                    raise source.error(
                        "additional_jkus", "cannot use ${...}: the keys are read when the endpoint starts"
                    )
                parsed = urllib.parse.urlsplit(url)
                if parsed.scheme not in ("http", "https") or not parsed.hostname:
                    raise source.error("additional_jkus", f"{url[:128]!r} is not an http or https URL")
            files = source.strings("local_jwks_files")
            _unique(source, "local_jwks_files", files, "file")
            if not urls and not files:
                raise source.error("additional_jkus", "is required (or local_jwks_files)")
            source.finish()
            sources += [KeySource(url) for url in urls] + [KeySource(path, is_file=True) for path in files]
        keys.finish()
    if len(sources) > MAX_SOURCES:
        raise jws.error("keys", f"too many sources: at most {MAX_SOURCES}")
    return sources


def _unique(config: Config, name: str, values: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise config.error(name, f"the {what} {value[:64]!r} must be unique: it is listed twice")
        seen.add(value)


def _text(value: str, where: str) -> Text:
    # A string without `${` stays a plain string: nothing to compile, nothing to render per request.
    return compile_template(value, where=where) if "${" in value else value


ACTIONS = (JwtValidation,)
