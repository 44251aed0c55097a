"""The command line's one error: what the operator sees as the start-up failure or the command's error."""

from __future__ import annotations


class AgentError(Exception):
    """A command line, config file or subcommand the agent refuses; the message is the whole story."""
