from __future__ import annotations

import random

from agentapi.engine.capture_id import KSUID_EPOCH, CaptureIdFactory


def test_ids_are_27_base62_characters_after_the_prefix() -> None:
    capture_id = CaptureIdFactory(random.Random(1)).new(now=1_700_000_000)
    assert capture_id.startswith("airt_")
    assert len(capture_id) == 5 + 27
    assert capture_id[5:].isalnum()


def test_ids_made_within_one_second_count_up() -> None:
    factory = CaptureIdFactory(random.Random(2))
    ids = [factory.new(now=1_700_000_000.5) for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_sort_by_time_across_seconds() -> None:
    factory = CaptureIdFactory(random.Random(3))
    first = factory.new(now=1_700_000_000)
    assert factory.new(now=1_700_000_001) > first
    other_process = CaptureIdFactory(random.Random(4)).new(now=1_700_000_002)
    assert other_process > factory.new(now=1_700_000_001)


def test_a_clock_going_back_never_makes_an_id_sort_earlier() -> None:
    factory = CaptureIdFactory(random.Random(6))
    later = factory.new(now=1_700_000_005)
    assert factory.new(now=1_700_000_004) > later


def test_the_timestamp_is_the_ksuid_one() -> None:
    capture_id = CaptureIdFactory(random.Random(5)).new(now=KSUID_EPOCH + 1234)
    number = 0
    for char in capture_id[5:]:
        number = number * 62 + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".index(char)
    assert number >> 128 == 1234
