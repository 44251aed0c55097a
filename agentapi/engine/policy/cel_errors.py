"""The error a CEL macro raises on bad input; cel.py turns it into PolicyRuntimeError naming the
expression."""

from __future__ import annotations


class CelFunctionError(Exception):
    """A macro refused its arguments, e.g. `base64.decode: 'x' is not valid base64`."""
