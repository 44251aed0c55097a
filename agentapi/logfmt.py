"""The agent's log lines in ngrok's logfmt, which pyngrok and npm `ngrok` read to find the API.

`t=2026-01-02T03:04:05+0000 lvl=info msg="starting web service" obj=web addr=127.0.0.1:4040`
Values with spaces, quotes or `=` are quoted; level names are ngrok's (dbug, info, warn, eror, crit).

Which lines are written is ngrok's `log_level` (debug, info, warn, error, crit), for the lines
written directly and for Python logging alike (the command line sets the loggers' level too).
Where the lines go is ngrok's `log` key and `--log` flag (`agent/config/v3.mdx`): `stdout`, `stderr`,
`false` (the default: no log) or a file path. A file is opened for appending (never truncated, so
logrotate's `copytruncate` and a restarted agent both keep the history), line-buffered, UTF-8; a file
that cannot be opened is a `LogTargetError` whose message is the one start-up error line. Formats are
ngrok's `log_format`: `logfmt`, `json`, and `term` (a coloured human format on a terminal; written
as logfmt here, which is what ngrok writes when the destination is not a terminal).

While the full-screen console is up (agentapi/console), lines bound for the terminal would tear it:
the console `hold`s such a log, keeping its warnings and errors, and `release`s it when it closes,
so they are written after the console is gone. A log to a file is never held.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import threading
from typing import Any, TextIO

LOG_FORMATS = ("logfmt", "json", "term")
LOG_LEVELS = ("debug", "info", "warn", "error", "crit")  # ngrok's log_level values
# A line's rank by its written level name, and a log_level's rank by its config name.
_RANKS = {"dbug": 10, "info": 20, "warn": 30, "eror": 40, "crit": 50}
_LEVEL_RANKS = {"debug": 10, "info": 20, "warn": 30, "error": 40, "crit": 50}
HELD_LINES = 100  # warnings and errors kept while the console owns the terminal
_KEPT_WHILE_HELD = frozenset({"warn", "eror", "crit"})

_LEVELS = {
    logging.DEBUG: "dbug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "eror",
    logging.CRITICAL: "crit",
}


def _value(value: Any) -> str:
    text = str(value)
    # Quote more than logfmt needs: pyngrok splits each line with shlex, where an unquoted `'` or
    # `\` (`name=it's`) breaks or changes the whole line.
    if text == "" or any(c in text for c in " \"='\\") or not text.isprintable():
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        return '"' + escaped.replace("\t", "\\t") + '"'
    return text


def _level_rank(level: str) -> int:
    return _LEVEL_RANKS.get(level, _RANKS.get(level, 10))


class LogTargetError(Exception):
    """The log destination cannot be used (a file that cannot be opened, an unknown format)."""


class AgentLog:
    """Writes one line per event, flushed, in logfmt or JSON; `stream` None: writes nothing.

    Lines come from the event loop and from the capture writer thread (through `AgentLogHandler`),
    so each line is written under a lock and never interleaves with another.
    """

    def __init__(
        self, stream: TextIO | None, fmt: str = "logfmt", *, owns_stream: bool = False, level: str = "debug"
    ) -> None:
        self.stream = stream
        self.fmt = fmt
        self.min_rank = _level_rank(level)  # lines below ngrok's log_level are not written
        self.owns_stream = owns_stream  # a file this log opened, closed by `close`
        self._lock = threading.Lock()
        self._held: list[str] | None = None  # while the console owns the terminal: lines kept back

    @property
    def to_terminal(self) -> bool:
        """True when the lines go to a terminal (stdout or stderr on a tty)."""
        stream = self.stream
        try:
            return stream is not None and stream.isatty()
        except (ValueError, OSError):  # a closed stream
            return False

    def hold(self) -> None:
        """Keep lines off the stream until `release` (the console owns the terminal): warnings and
        errors are kept (the last HELD_LINES of them), the rest dropped."""
        with self._lock:
            if self._held is None:
                self._held = []

    def release(self) -> None:
        """Write the lines kept since `hold`, and write every line again from now on."""
        with self._lock:
            held, self._held = self._held, None
            if held and self.stream is not None:
                self.stream.write("".join(held))
                self.stream.flush()

    @property
    def to_file(self) -> bool:
        """True when the lines go to a file this log opened (not stdout or stderr)."""
        return self.owns_stream

    def close(self) -> None:
        """Close the file this log opened; stdout and stderr stay open."""
        if self.owns_stream and self.stream is not None:
            with self._lock:
                self.stream.close()
                self.stream = None

    def line(self, lvl: str, msg: str, **fields: Any) -> None:
        """Write one event: `lvl` is ngrok's level name, `fields` become key=value pairs (str()ed)."""
        if self.stream is None or _RANKS.get(lvl, 20) < self.min_rank:
            return
        now = dt.datetime.now().astimezone()
        if self.fmt == "json":
            record = {"t": now.isoformat(), "lvl": lvl, "msg": msg, **{k: str(v) for k, v in fields.items()}}
            text = json.dumps(record)
        else:
            parts = [f"t={now.strftime('%Y-%m-%dT%H:%M:%S%z')}", f"lvl={lvl}", f"msg={_value(msg)}"]
            parts += [f"{key}={_value(value)}" for key, value in fields.items()]
            text = " ".join(parts)
        with self._lock:
            if self.stream is None:  # closed by another thread meanwhile
                return
            if self._held is not None:
                if lvl in _KEPT_WHILE_HELD:
                    self._held.append(text + "\n")
                    del self._held[:-HELD_LINES]
                return
            self.stream.write(text + "\n")
            self.stream.flush()


def open_log_target(target: str, fmt: str = "logfmt", level: str = "debug") -> AgentLog:
    """The AgentLog for ngrok's `log` value: "stdout", "stderr", "false"/"" (none) or a file path.

    `fmt` is ngrok's `log_format` ("logfmt", "json", "term"; "" means logfmt); `level` its
    `log_level` ("debug", "info", "warn", "error", "crit"; "" means debug): lines below it are not
    written. A path is expanded (`~`), opened for appending, line-buffered, UTF-8, and owned by the
    returned log (`close`). Raises LogTargetError with a one-line message: an unknown format or
    level, or a file that cannot be opened (`cannot open log file /var/log/agent.log: permission
    denied`).
    """
    fmt = fmt or "logfmt"
    if fmt not in LOG_FORMATS:
        raise LogTargetError(f"invalid log format {fmt!r}: one of {', '.join(LOG_FORMATS)} expected")
    if (level or "debug") not in LOG_LEVELS:
        raise LogTargetError(f"invalid log level {level!r}: one of {', '.join(LOG_LEVELS)} expected")
    written = "json" if fmt == "json" else "logfmt"
    level = level or "debug"
    if target in ("", "false"):
        return AgentLog(None, written, level=level)
    if target == "stdout":
        return AgentLog(sys.stdout, written, level=level)
    if target == "stderr":
        return AgentLog(sys.stderr, written, level=level)
    path = os.path.expanduser(target)
    try:
        stream = open(path, "a", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115 (owned)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise LogTargetError(f"cannot open log file {path}: {reason}") from None
    return AgentLog(stream, written, owns_stream=True, level=level)


class AgentLogHandler(logging.Handler):
    """Routes Python logging (engine warnings, API errors) into the agent's log stream."""

    def __init__(self, log: AgentLog) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            fields: dict[str, Any] = {"obj": record.name}
            if record.exc_info and record.exc_info[1] is not None:
                fields["err"] = repr(record.exc_info[1])
            self.log.line(_LEVELS.get(record.levelno, "info"), message, **fields)
        except Exception:
            self.handleError(record)
