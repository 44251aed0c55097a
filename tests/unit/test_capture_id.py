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


def test_counting_up_spells_every_digit_a_carry_reached() -> None:
    factory = CaptureIdFactory(random.Random(7))
    factory.new(now=1_700_000_000)
    factory._digits[-3:] = [60, 61, 61]  # the next id carries into the third digit from the end
    factory._id = factory._id[:-3] + "yzz"
    after = factory.new(now=1_700_000_000)
    assert after[-3:] == "z00" and after[:-3] == factory._id[:-3]
    number = 0
    for char in after[5:]:
        number = number * 62 + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".index(char)
    assert number % 62**3 == 61 * 62**2


def test_ids_match_their_digits_over_many_carries() -> None:
    factory = CaptureIdFactory(random.Random(8))
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    for _ in range(10_000):
        capture_id = factory.new(now=1_700_000_000)
        assert capture_id == "airt_" + "".join(alphabet[d] for d in factory._digits)


def test_ids_of_two_processes_sort_by_time_within_a_second() -> None:
    # --workers N: each process has its own factory; a capture made later sorts later.
    main, worker = CaptureIdFactory(random.Random(9)), CaptureIdFactory(random.Random(10))
    made = []
    for n in range(200):
        factory = (main, worker)[n * 7 % 3 % 2]
        made.append(factory.new(now=1_700_000_000 + n * 0.004))
    assert made == sorted(made)
