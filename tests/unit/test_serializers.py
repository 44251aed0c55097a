"""Wire helpers of the serializers: Go's path escaping, header canonicalisation and time format."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from agentapi import serializers
from agentapi.serializers import canonical_header, go_time, header_key, header_map, path_escape


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("command_line", "command_line"),
        ("command_line (http)", "command_line%20%28http%29"),
        ("a b", "a%20b"),
        ("a/b", "a%2Fb"),
        ("a?b#c", "a%3Fb%23c"),
        ("a;b,c", "a%3Bb%2Cc"),
        ("a!b*c'd", "a%21b%2Ac%27d"),
        ("50%", "50%25"),
        ("$&+:=@", "$&+:=@"),
        ("-._~", "-._~"),
        ("AZaz09", "AZaz09"),
        ('"<>[]{}|\\^`', "%22%3C%3E%5B%5D%7B%7D%7C%5C%5E%60"),
        ("café", "caf%C3%A9"),
        ("", ""),
    ],
)
def test_path_escape_matches_gos_url_path_escape(name: str, escaped: str) -> None:
    assert path_escape(name) == escaped


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("content-type", "Content-Type"),
        ("CONTENT-LENGTH", "Content-Length"),
        ("x-forwarded-for", "X-Forwarded-For"),
        ("www-authenticate", "Www-Authenticate"),
        ("x_trace_id", "X_trace_id"),
        ("a.b", "A.b"),
        ("x--y", "X--Y"),
        ("-x", "-X"),
        ("1abc-2DEF", "1abc-2def"),
        ("Accept", "Accept"),
        ("bad header", "bad header"),
        ("ünicode", "ünicode"),
        ("a:b", "a:b"),
        ("", ""),
    ],
)
def test_canonical_header_matches_gos_canonical_mime_header_key(name: str, canonical: str) -> None:
    assert canonical_header(name) == canonical


def test_header_map_groups_values_by_canonical_name_in_first_seen_order() -> None:
    fields = [(b"x-b", b"1"), (b"Accept", b"*/*"), (b"X-B", b"2"), (b"x-a", b"3")]
    assert header_map(fields) == {"X-B": ["1", "2"], "Accept": ["*/*"], "X-A": ["3"]}
    assert list(header_map(fields)) == ["X-B", "Accept", "X-A"]


def test_header_map_leaves_host_out_as_go_does() -> None:
    assert header_map([(b"host", b"example.test"), (b"HOST", b"x"), (b"Accept", b"*/*")]) == {"Accept": ["*/*"]}


def test_header_map_reads_bytes_that_are_not_utf8_as_go_does() -> None:
    # One U+FFFD per invalid byte, in names and values (header_text.api_text).
    assert header_map([(b"x-user", b"Andr\xe9"), (b"x-\xff", b"\xe2\x82")]) == {
        "X-User": ["Andr\ufffd"],
        "x-\ufffd": ["\ufffd\ufffd"],
    }


def test_header_keys_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serializers, "_KEYS", {})
    assert header_key(b"content-type") == "Content-Type"
    assert serializers._KEYS == {b"content-type": "Content-Type"}
    long_name = b"x-" + b"a" * 100
    assert header_key(long_name) == "X-A" + "a" * 99
    assert long_name not in serializers._KEYS
    for n in range(2 * serializers._KEYS_MAX):
        assert header_key(b"x-%d" % n) == f"X-{n}"
    assert len(serializers._KEYS) == serializers._KEYS_MAX


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield
    monkeypatch.undo()
    time.tzset()


def set_zone(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()


MOMENT = dt.datetime(2014, 12, 16, 4, 32, 7, 654321, tzinfo=dt.UTC)


def test_go_time_is_rfc_3339_seconds_with_the_local_offset(local_zone, monkeypatch) -> None:
    set_zone(monkeypatch, "America/Los_Angeles")
    assert go_time(MOMENT) == "2014-12-15T20:32:07-08:00"


def test_go_time_writes_half_hour_offsets(local_zone, monkeypatch) -> None:
    set_zone(monkeypatch, "Asia/Kolkata")
    assert go_time(MOMENT) == "2014-12-16T10:02:07+05:30"


def test_go_time_writes_z_for_utc(local_zone, monkeypatch) -> None:
    set_zone(monkeypatch, "UTC")
    assert go_time(MOMENT) == "2014-12-16T04:32:07Z"
