"""basic-auth: HTTP Basic authentication against a list of user:password pairs.

Rules (ngrok's docs, `traffic-policy/actions/basic-auth.mdx`; RFC 7617, RFC 7235):
- Phase: on_http_request. Config: `credentials` (1 to 10 `username:password` strings, required),
  `realm` (default `ngrok`, at most 128 printable ASCII characters), `enforce` (default true).
- A credential splits at its first colon; the password must be 8 to 128 characters.
- `${...}` interpolation may make the whole credential, the whole username or password, or a part
  of one; a colon between them must then be written literally (`${u}:pw`, `${u}:${p}`,
  `pre${u}:pw`, `${cred}`); `${u}pw` is refused at load. At run time an interpolated username
  that gives a colon, or a password outside 8-128 characters, fails the rule (the agent's 500).
- The request passes when its Authorization field is `Basic <base64 of user:password>` (scheme
  case-insensitive) with one of the pairs, compared as UTF-8 bytes in constant time over every
  pair (no early exit; what access.basic_auth_passes did before Traffic Policy).
- Else, when `enforce` is true: 401 with `WWW-Authenticate: Basic realm="<realm>"`, ending the
  phase; when false the request goes on (the docs: "for debugging and testing").
- actions.ngrok.basic_auth.credentials.presented (Basic credentials were sent), .username (the
  username sent, "" when none), .authorized (they matched a pair).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from .. import cel
from ..cel_source import split_template
from ..errors import PolicyError, PolicyRuntimeError
from ..outcomes import Outcome, Respond
from .base import REQUEST, Action, Config, PhaseRun

MAX_CREDENTIALS = 10
MIN_PASSWORD, MAX_PASSWORD = 8, 128
MAX_REALM = 128


@dataclass(frozen=True, slots=True)
class _Credential:
    """One configured pair: a username and a password template, or one template for the whole
    `user:password` (`password` None). Constant pairs keep their UTF-8 bytes ready."""

    index: int
    user: cel.Template
    password: cel.Template | None  # None: `user` is the whole credential
    constant: tuple[bytes, bytes] | None


def literal_colon(text: str) -> int:
    """The index of the first `:` outside any `${...}` of a config string, or -1.

    Raises PolicyError (without where) for a `${` that is never closed.
    """
    position = 0
    for piece in split_template(text):
        if isinstance(piece, str):
            found = piece.find(":")
            if found >= 0:
                return position + found
            position += len(piece)
        else:
            offset, source = piece
            position = offset + len(source) + 1  # past the closing brace
    return -1


def _password_problem(password: str) -> str | None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return f"the password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters (it has {len(password)})"
    return None


def _credential(text: str, index: int, config: Config) -> _Credential:
    field = f"credentials[{index}]"
    where = f"{config.where}.{field}"
    try:
        pieces = split_template(text)
        colon = literal_colon(text)
    except PolicyError as error:
        raise config.error(field, str(error)) from None
    if colon < 0:
        whole = len(pieces) == 1 and not isinstance(pieces[0], str)
        if not whole:
            raise config.error(field, "must be username:password (a literal ':' between them)")
        return _Credential(index, cel.compile_template(text, where=where), None, None)
    user = cel.compile_template(text[:colon], where=where)
    password = cel.compile_template(text[colon + 1 :], where=where)
    if password.constant and (problem := _password_problem(password.source)):
        raise config.error(field, problem)
    constant = None
    if user.constant and password.constant:
        constant = (user.source.encode(), password.source.encode())
    return _Credential(index, user, password, constant)


def _presented(authorization: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) from an Authorization field value (latin-1 text), or None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip().encode("latin-1"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password


class BasicAuth(Action):
    """basic-auth: `credentials`, `realm`, `enforce`; 401 unless the request carries one of the pairs."""

    type = "basic-auth"
    phases = frozenset({REQUEST})

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        texts = config.strings("credentials", required=True, min_items=1, max_items=MAX_CREDENTIALS)
        self.credentials = tuple(_credential(text, i, config) for i, text in enumerate(texts))
        realm = config.string("realm", "ngrok")
        if not realm or len(realm) > MAX_REALM or not all(" " <= ch <= "~" for ch in realm):
            raise config.error("realm", f"must be 1-{MAX_REALM} printable ASCII characters")
        # RFC 9110 5.6.4 quoted-string: backslash and double quote are escaped.
        quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
        self.challenge = [("WWW-Authenticate", f'Basic realm="{quoted}"')]
        self.enforce = config.boolean("enforce", True)
        config.finish()

    def _pairs(self, run: PhaseRun) -> list[tuple[bytes, bytes]]:
        pairs = []
        for credential in self.credentials:
            if credential.constant is not None:
                pairs.append(credential.constant)
                continue
            where = f"credentials[{credential.index}]"
            if credential.password is None:
                user, colon, password = run.render(credential.user).partition(":")
                if not colon:
                    raise PolicyRuntimeError(f"{where}: the interpolated credential has no ':'")
            else:
                user = run.render(credential.user)
                password = run.render(credential.password)
                if ":" in user:
                    raise PolicyRuntimeError(f"{where}: the interpolated username contains ':'")
            if problem := _password_problem(password):
                raise PolicyRuntimeError(f"{where}: {problem}")
            pairs.append((user.encode(), password.encode()))
        return pairs

    def run(self, run: PhaseRun) -> Outcome | None:
        if run.request is None:
            raise PolicyRuntimeError("basic-auth runs on a request")
        pairs = self._pairs(run)
        presented = _presented(run.request.header("authorization"))
        authorized = False
        username = ""
        if presented is not None:
            user, password = presented
            username = user.decode("utf-8", "replace")
            # `|=` over every pair and `&` inside it: no early exit, so the time taken does not
            # say which pair (or which half of it) was close.
            for expected_user, expected_password in pairs:
                authorized |= hmac.compare_digest(user, expected_user) & hmac.compare_digest(
                    password, expected_password
                )
        run.scope.actions["basic_auth"] = {
            "credentials": {"presented": presented is not None, "username": username, "authorized": authorized}
        }
        run.scope.changed("actions")
        shown = username[:64]
        if authorized:
            run.note(self.type, f"passed user {shown}")
            return None
        why = "no credentials" if presented is None else f"user {shown}"
        if not self.enforce:
            run.note(self.type, f"failed, not enforced ({why})")
            return None
        run.note(self.type, f"refused 401, {why}", terminal=True)
        return Respond(401, list(self.challenge))


ACTIONS = (BasicAuth,)
