"""The flags every command takes (`agent/cli.mdx`, `agent/upgrade-v2-v3.mdx`'s help text), and the log.

| flag           | here                                                                          |
|----------------|-------------------------------------------------------------------------------|
| `--config`     | config files, merged in order; repeats and splits on commas (Go string slice) |
| `--log`        | `stdout`, `stderr`, `false` (default) or a file path (appended, line by line)   |
| `--log-format` | `logfmt`, `json` or `term` (`term` writes logfmt: the console is the colour)  |
| `--log-level`  | `debug`, `info` (default), `warn`, `error`, `crit`                            |
| `--web-addr`   | ours: the API and inspector address (the config file's `web_addr`)            |
| `--metadata`   | the session's, on commands other than http/tcp/tls: accepted and logged       |
| `--authtoken`, `--region`, `--api-key` | cloud session settings: accepted and logged           |

A flag wins over the config file's key (`log`, `log_format`, `log_level`, `web_addr`), as in ngrok.
On `http`, `tcp` and `tls`, `--metadata`, `--authtoken` and `--region` are the endpoint's flags
(flags.py), as ngrok's subcommand flags shadow the root's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agentapi import serve
from agentapi.config_file import LOG_LEVELS
from agentapi.logfmt import LOG_FORMATS

from .go_flags import split_list

SESSION_FLAGS = ("--authtoken", "--region", "--api-key", "--metadata")


def add_global_flags(parser: argparse.ArgumentParser, *, sub: bool, endpoint: bool = False) -> None:
    """The flags of every command. `sub`: a subcommand's parser (its defaults leave the root's
    values alone); `endpoint`: http/tcp/tls, whose own table has the session flags."""
    default = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--config",
        action="append",
        default=argparse.SUPPRESS if sub else [],
        help="path to config files; they are merged if multiple",
    )
    parser.add_argument(
        "--web-addr", default=default, help=f"API and inspector address (default {serve.DEFAULT_WEB_ADDR})"
    )
    parser.add_argument("--log", default=default, help="path to log file, 'stdout', 'stderr' or 'false'")
    parser.add_argument("--log-format", default=default, choices=LOG_FORMATS, help="log record format")
    parser.add_argument("--log-level", default=default, choices=LOG_LEVELS, help="logging level")
    parser.add_argument("--api-key", default=default, help=argparse.SUPPRESS)
    parser.add_argument(
        "--workers",
        type=_workers,
        default=default,
        metavar="N",
        help="engine processes sharing each tunnel's port (SO_REUSEPORT; default 1); this agent's own, not ngrok's",
    )
    if endpoint:
        return
    parser.add_argument("--authtoken", default=default, help="accepted and logged: this agent needs no account")
    parser.add_argument("--region", default=default, help=argparse.SUPPRESS)
    parser.add_argument(
        "--metadata", dest="session_metadata", default=default, help="the session's metadata: accepted and logged"
    )


def _workers(text: str) -> int:
    """--workers: a whole number from 1 (this process alone) to 64."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: a whole number expected") from None
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError(f"invalid value {count}: from 1 to 64")
    return count


def config_paths(options: dict[str, Any]) -> list[Path]:
    """The --config files, in order (each value may hold several, comma-separated); [] when none."""
    return [Path(path).expanduser() for path in split_list(options.get("config") or [])]


def session_flags_given(options: dict[str, Any]) -> list[str]:
    """The cloud session flags given on the command line (not the endpoint's own --metadata)."""
    given = [name for name in ("--authtoken", "--region", "--api-key") if options.get(name[2:].replace("-", "_"))]
    if options.get("session_metadata"):
        given.append("--metadata")
    return given
