"""The file server's conditional and range answers (file_conditional.py, RFC 9110 13 and 14)."""

from __future__ import annotations

import pytest

from agentapi.engine.file_conditional import Answer, decide, validators

SIZE = 1000
MTIME_NS = 784_111_777_123_456_789  # Sun, 06 Nov 1994 08:49:37 GMT and a fraction
FILE = validators(MTIME_NS, SIZE)
DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = b"Sun, 06 Nov 1994 08:49:36 GMT"


def answer(*fields: tuple[str, str], method: bytes = b"GET", size: int = SIZE) -> Answer:
    headers = [(name.encode(), value.encode()) for name, value in fields]
    return decide(method, headers, validators(MTIME_NS, size), size)


def test_validators_are_a_strong_etag_and_whole_seconds() -> None:
    assert FILE.etag == b'"%x-3e8"' % MTIME_NS
    assert FILE.last_modified == 784_111_777
    assert validators(MTIME_NS + 1, SIZE).etag != FILE.etag
    assert validators(MTIME_NS, SIZE + 1).etag != FILE.etag


def test_no_condition_and_no_range_is_the_whole_file() -> None:
    assert answer() == Answer(200, 0, SIZE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-99", Answer(206, 0, 100)),
        ("bytes=100-", Answer(206, 100, SIZE)),
        ("bytes=-10", Answer(206, 990, SIZE)),
        ("bytes=-5000", Answer(206, 0, SIZE)),  # a suffix longer than the file is all of it
        ("bytes=990-5000", Answer(206, 990, SIZE)),  # a last position past the end is cut
        ("bytes=999-999", Answer(206, 999, SIZE)),
        ("Bytes = 5 - 9 ", Answer(206, 5, 10)),
        ("bytes=0-99,", Answer(206, 0, 100)),  # empty list elements are allowed
        ("bytes=1000-", Answer(416)),
        ("bytes=5000-6000", Answer(416)),
        ("bytes=-0", Answer(416)),
    ],
)
def test_a_single_byte_range(value: str, expected: Answer) -> None:
    assert answer(("Range", value)) == expected


@pytest.mark.parametrize(
    "value",
    [
        "bytes=0-1,5-6",
        "items=0-5",
        "bytes=5-1",
        "bytes=a-b",
        "bytes=",
        "bytes=-",
        "0-5",
        "bytes=1-2-3",
        "bytes=" + "9" * 30,
    ],
)
def test_a_range_that_is_several_or_does_not_parse_gets_the_whole_file(value: str) -> None:
    assert answer(("Range", value)) == Answer(200, 0, SIZE)


def test_every_range_of_an_empty_file_is_unsatisfiable() -> None:
    assert answer(("Range", "bytes=0-"), size=0) == Answer(416)
    assert answer(("Range", "bytes=-1"), size=0) == Answer(416)
    assert answer(size=0) == Answer(200, 0, 0)


def test_range_is_for_get_only() -> None:
    assert answer(("Range", "bytes=0-9"), method=b"HEAD") == Answer(200, 0, SIZE)


def test_if_none_match_gives_304_by_weak_comparison() -> None:
    etag = FILE.etag.decode()
    assert answer(("If-None-Match", etag)) == Answer(304)
    assert answer(("If-None-Match", f'"other", W/{etag}')) == Answer(304)
    assert answer(("If-None-Match", "*")) == Answer(304)
    assert answer(("If-None-Match", '"other"')) == Answer(200, 0, SIZE)
    assert answer(("If-None-Match", '"other"'), ("If-None-Match", etag), method=b"HEAD") == Answer(304)


def test_if_modified_since_gives_304_unless_the_file_is_newer() -> None:
    assert answer(("If-Modified-Since", DATE.decode())) == Answer(304)
    assert answer(("If-Modified-Since", "Sunday, 06-Nov-94 08:49:37 GMT")) == Answer(304)  # RFC 850
    assert answer(("If-Modified-Since", "Sun Nov  6 08:49:37 1994")) == Answer(304)  # asctime
    assert answer(("If-Modified-Since", EARLIER.decode())) == Answer(200, 0, SIZE)
    assert answer(("If-Modified-Since", "yesterday")) == Answer(200, 0, SIZE)


def test_if_none_match_wins_over_if_modified_since() -> None:
    assert answer(("If-None-Match", '"other"'), ("If-Modified-Since", DATE.decode())) == Answer(200, 0, SIZE)


def test_if_match_and_if_unmodified_since_fail_with_412() -> None:
    etag = FILE.etag.decode()
    assert answer(("If-Match", '"other"')) == Answer(412)
    assert answer(("If-Match", f"W/{etag}")) == Answer(412)  # strong comparison
    assert answer(("If-Match", etag)) == Answer(200, 0, SIZE)
    assert answer(("If-Match", "*")) == Answer(200, 0, SIZE)
    assert answer(("If-Unmodified-Since", EARLIER.decode())) == Answer(412)
    assert answer(("If-Unmodified-Since", DATE.decode())) == Answer(200, 0, SIZE)
    # If-Match present: If-Unmodified-Since is not looked at (13.2.2 step 2).
    assert answer(("If-Match", etag), ("If-Unmodified-Since", EARLIER.decode())) == Answer(200, 0, SIZE)


def test_if_range_applies_the_range_only_to_the_same_file() -> None:
    etag = FILE.etag.decode()
    assert answer(("Range", "bytes=0-9"), ("If-Range", etag)) == Answer(206, 0, 10)
    assert answer(("Range", "bytes=0-9"), ("If-Range", DATE.decode())) == Answer(206, 0, 10)
    assert answer(("Range", "bytes=0-9"), ("If-Range", '"stale"')) == Answer(200, 0, SIZE)
    assert answer(("Range", "bytes=0-9"), ("If-Range", f"W/{etag}")) == Answer(200, 0, SIZE)
    assert answer(("Range", "bytes=0-9"), ("If-Range", EARLIER.decode())) == Answer(200, 0, SIZE)
    assert answer(("Range", "bytes=0-9"), ("If-Range", "garbage")) == Answer(200, 0, SIZE)
