"""Go duration strings in action configs ("60s", "10m", "1h30m", "1.5h"), read into seconds.

Rules (Go's `time.ParseDuration`, which ngrok's config parser uses):
- One or more decimal numbers, each with a unit: `ns`, `us` (or `µs`, `μs`), `ms`, `s`, `m`, `h`;
  an optional sign before the first; the bare `0` is zero. No spaces, no unit-less numbers
  other than `0`.
- A config field that is a duration must be a string: YAML reads `rate: 60s` as one, and ngrok's
  docs write every duration that way (`rate`, `window_duration`, `tripped_duration`).
"""

from __future__ import annotations

import re

from .actions.base import Config

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_WHOLE = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string. Raises ValueError when it is not one."""
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"{text[:64]!r} is not a duration")
    seconds = sum(float(number) * _SECONDS[unit] for number, unit in _PART.findall(text))
    return -seconds if text.startswith("-") else seconds


def format_duration(seconds: float) -> str:
    """Seconds as a short duration string for messages: 90 -> "1m30s", 86400 -> "24h", 0.5 -> "500ms"."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    hours, minutes = whole // 3600, whole // 60 % 60
    secs = seconds - hours * 3600 - minutes * 60
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs:g}s" if secs else ""]
    return "".join(parts) or "0s"


def config_duration(
    config: Config,
    name: str,
    default: str | None,
    *,
    minimum: float,
    maximum: float,
    multiple_of: float | None = None,
) -> float:
    """Read the duration field `name` of an action's config, in seconds.

    `default` (a duration string) is used when the field is absent; None makes it required.
    Raises PolicyError naming the field when it is missing, not a duration string, outside
    [minimum, maximum] seconds, or not a whole multiple of `multiple_of` seconds.
    """
    raw = config.raw(name, default)
    if raw is None:
        raise config.error(name, "is required")
    if not isinstance(raw, str):
        raise config.error(name, 'must be a duration string such as "60s" or "10m"')
    try:
        seconds = parse_go_duration(raw)
    except ValueError:
        raise config.error(name, f'{raw[:64]!r} is not a duration such as "60s" or "10m"') from None
    if not minimum <= seconds <= maximum:
        raise config.error(
            name, f"must be between {format_duration(minimum)} and {format_duration(maximum)}, was {raw[:64]}"
        )
    # Whole milliseconds, so "1.5m" (90s) is a multiple of 10s despite binary floating point.
    if multiple_of is not None and round(seconds * 1000) % round(multiple_of * 1000):
        raise config.error(name, f"must be a multiple of {format_duration(multiple_of)}, was {raw[:64]}")
    return seconds
