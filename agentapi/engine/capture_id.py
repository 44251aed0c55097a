"""Capture ids in the 3.x agent's style: `airt_` + a 27-character base62 KSUID.

A KSUID is 4 bytes of seconds since 2014-05-13 (the KSUID epoch) then 16 random bytes, so ids sort
by time. Clients sort by id and expect an original before its replay even within one second, so ids
made in the same second by this process count up from the previous one instead of being random.
"""

from __future__ import annotations

import random
import time

KSUID_EPOCH = 1_400_000_000
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PAYLOAD_MAX = (1 << 128) - 1


class CaptureIdFactory:
    __slots__ = ("_payload", "_random", "_second")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._second = -1
        self._payload = 0
        self._random = rng or random.Random()

    def new(self, now: float | None = None) -> str:
        second = int(time.time() if now is None else now) - KSUID_EPOCH
        if second > self._second:
            self._second = second
            # Leave headroom so counting up within the second never overflows the payload.
            self._payload = self._random.getrandbits(127)
        else:
            second = self._second
            self._payload = (self._payload + 1) & _PAYLOAD_MAX
        return "airt_" + _base62((second << 128) | self._payload)


def _base62(number: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(27, "0")
