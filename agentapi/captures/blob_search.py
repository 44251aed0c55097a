"""`BlobContains(field, needle)`: a database-side test that stored message bytes contain some bytes.

Captures keep raw bytes in a BinaryField, which Django's `contains` lookup does not support. This
expression uses the database's own byte search (SQLite `instr`, PostgreSQL `position`), so a body
search over thousands of captures never loads their bytes into Python. The match is exact and
case-sensitive: bytes are compared, not text.
"""

from __future__ import annotations

from typing import Any

from django.db.models import BinaryField, BooleanField, Func, Value


class BlobContains(Func):
    output_field = BooleanField()

    def __init__(self, field: str, needle: bytes, **extra: Any) -> None:
        super().__init__(field, Value(needle, output_field=BinaryField()), **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(compiler, connection, template="(instr(%(expressions)s) > 0)", **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # position(needle IN haystack): the needle comes first, so the arguments are swapped.
        swapped = self.copy()
        swapped.set_source_expressions(list(reversed(self.get_source_expressions())))
        return Func.as_sql(
            swapped, compiler, connection, template="(position(%(expressions)s) > 0)", arg_joiner=" IN ", **extra
        )

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:  # type: ignore[override]
        raise NotImplementedError(f"byte search is not implemented for {connection.vendor}")
