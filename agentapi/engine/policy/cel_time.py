"""ngrok's timestamp methods for CEL with a time zone argument, and `getDate`.

Rules (ngrok's docs, `traffic-policy/macros/index.mdx`, section Timestamps; the CEL language
definition for the rest):
- `ts.getX()` reads the timestamp in UTC, `ts.getX('America/Los_Angeles')` in that IANA zone (a
  fixed offset such as `'+05:30'` also works, as in CEL).
- getDate is the day of the month counted from 1; getDayOfMonth and getDayOfYear count from 0;
  getMonth counts from 0 (January); getDayOfWeek from 0 (Sunday).
- The forms without a zone, and the duration forms (`duration('3h').getHours()`), are the `cel`
  package's own; it calls these functions only for the forms it lacks.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from .cel_errors import CelFunctionError

_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


@lru_cache(maxsize=64)
def _zone(name: str) -> dt.tzinfo:
    match = _OFFSET.match(name)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CelFunctionError(f"unknown time zone {name[:64]!r}") from None


_PARTS: dict[str, Callable[[dt.datetime], int]] = {
    "getDate": lambda t: t.day,
    "getDayOfMonth": lambda t: t.day - 1,
    "getDayOfWeek": lambda t: (t.weekday() + 1) % 7,
    "getDayOfYear": lambda t: t.timetuple().tm_yday - 1,
    "getFullYear": lambda t: t.year,
    "getHours": lambda t: t.hour,
    "getMilliseconds": lambda t: t.microsecond // 1000,
    "getMinutes": lambda t: t.minute,
    "getMonth": lambda t: t.month - 1,
    "getSeconds": lambda t: t.second,
}
TIMESTAMP_METHODS = tuple(_PARTS)


def make_timestamp_method(name: str) -> Callable[..., int]:
    """The function behind `ts.<name>(zone?)`."""
    part = _PARTS[name]

    def method(value: Any, zone: Any = None) -> int:
        if not isinstance(value, dt.datetime):
            raise CelFunctionError(f"{name}: expects a timestamp")
        if zone is None:
            return part(value.astimezone(dt.UTC))
        if not isinstance(zone, str):
            raise CelFunctionError(f"{name}: the time zone must be a string")
        return part(value.astimezone(_zone(zone)))

    method.__name__ = name
    return method
