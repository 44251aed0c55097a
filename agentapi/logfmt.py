"""The agent's log lines in ngrok's logfmt, which pyngrok and npm `ngrok` read to find the API.

`t=2026-01-02T03:04:05+0000 lvl=info msg="starting web service" obj=web addr=127.0.0.1:4040`
Values with spaces, quotes or `=` are quoted; level names are ngrok's (dbug, info, warn, eror, crit).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, TextIO

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


class AgentLog:
    """Writes one line per event, flushed, in logfmt or JSON."""

    def __init__(self, stream: TextIO | None, fmt: str = "logfmt") -> None:
        self.stream = stream
        self.fmt = fmt

    def line(self, lvl: str, msg: str, **fields: Any) -> None:
        if self.stream is None:
            return
        now = dt.datetime.now().astimezone()
        if self.fmt == "json":
            record = {"t": now.isoformat(), "lvl": lvl, "msg": msg, **{k: str(v) for k, v in fields.items()}}
            text = json.dumps(record)
        else:
            parts = [f"t={now.strftime('%Y-%m-%dT%H:%M:%S%z')}", f"lvl={lvl}", f"msg={_value(msg)}"]
            parts += [f"{key}={_value(value)}" for key, value in fields.items()]
            text = " ".join(parts)
        self.stream.write(text + "\n")
        self.stream.flush()


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
