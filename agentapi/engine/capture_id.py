"""Capture ids in the 3.x agent's style: `airt_` + a 27-character base62 KSUID.

A KSUID is 4 bytes of seconds since 2014-05-13 (the KSUID epoch) then 16 random bytes, so ids sort
by time. Clients sort by id and expect an original before its replay even within one second, so ids
made in the same millisecond by this process count up from the previous one instead of being random.
The random part starts with the millisecond within the second (10 bits), so ids made by several
processes (`--workers N`) sort by time to the millisecond too: the list, replays and the capture
store's eviction (a range delete by id) rely on it. A new millisecond costs one base-62 spelling
(~2 us), so at most ~2 ms of CPU a second however many ids are made.
"""

from __future__ import annotations

import random
import time

KSUID_EPOCH = 1_400_000_000
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class CaptureIdFactory:
    __slots__ = ("_digits", "_id", "_milli", "_random")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._milli = -1  # milliseconds since the KSUID epoch of the last base
        self._digits: list[int] = []
        self._id = ""  # the last id made, "airt_" included
        self._random = rng or random.Random()

    def new(self, now: float | None = None) -> str:
        """A new id for a capture made at `now` (epoch seconds; the clock when None)."""
        milli = int(((time.time() if now is None else now) - KSUID_EPOCH) * 1000)
        digits = self._digits
        if milli > self._milli:
            self._milli = milli
            second, within = divmod(milli, 1000)
            # Leave headroom so counting up within the millisecond never reaches its bits.
            number = (second << 128) | (within << 118) | self._random.getrandbits(117)
            self._digits = digits = _base62_digits(number)
            self._id = "airt_" + "".join([_ALPHABET[d] for d in digits])
        elif digits[26] < 61:
            # One more than the previous id, without big-number division: nearly always only the
            # last digit changes, so only it is spelled again.
            last = digits[26] = digits[26] + 1
            self._id = self._id[:-1] + _ALPHABET[last]
        else:
            index = _increment(digits)  # a carry: spell every digit it reached
            self._id = self._id[: 5 + index] + "".join([_ALPHABET[d] for d in digits[index:]])
        return self._id


def _base62_digits(number: int) -> list[int]:
    digits = [0] * 27
    for index in range(26, -1, -1):
        number, digits[index] = divmod(number, 62)
    return digits


def _increment(digits: list[int]) -> int:
    """Add one to the base-62 number in place; the index of the leftmost digit that changed."""
    index = len(digits) - 1
    while digits[index] == 61:
        digits[index] = 0
        index -= 1
    digits[index] += 1
    return index
