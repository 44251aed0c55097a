"""Deleting the captures a person asked to delete (clear all, clear the filtered ones, delete one)
so that their bytes leave the database file, not only the list.

Rules:
- The agent's SQLite connections run with `secure_delete=FAST` (dashboard/settings.py): eviction
  then frees a body's pages without writing them again as zeros, which cost more than storing the
  body. A person's delete is rare and asks for the bytes to go: it runs with `secure_delete=ON`
  (every freed page overwritten with zeros), and the connection's own setting comes back after.
- After the delete the write-ahead log is checkpointed and truncated, so its older copies of the
  pages go too. A reader in the middle of a read keeps the log: the checkpoint waits for it at
  most CHECKPOINT_WAIT_MS, then does what it can and the log is overwritten later (best effort,
  never an error).
- Other databases (PostgreSQL) are left to their own vacuuming: nothing is done there.
- WebSocket frames have no cascade (models.WebSocketFrame); the capture store sweeps those of
  deleted captures later, with the writer's setting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection
from django.db.models import QuerySet

from .models import Capture

log = logging.getLogger(__name__)

# How long the checkpoint after a delete waits for readers and the capture writer (SQLite's
# busy timeout, restored after): a person's delete must not hang behind a long search.
CHECKPOINT_WAIT_MS = 1000
# Ids per DELETE ... WHERE id IN (...): within every database's parameter limit.
_IDS_PER_DELETE = 500


def erase(captures: QuerySet[Capture]) -> int:
    """Delete `captures` so that their bytes leave the database file; the rows deleted (0: none
    matched)."""
    with overwriting_deleted_bytes():
        deleted, _ = captures.delete()
    return deleted


def erase_ids(ids: list[str]) -> None:
    """Delete the captures of `ids` (any number) as `erase` does, in statements of bounded size."""
    with overwriting_deleted_bytes():
        for start in range(0, len(ids), _IDS_PER_DELETE):
            Capture.objects.filter(id__in=ids[start : start + _IDS_PER_DELETE]).delete()


@contextmanager
def overwriting_deleted_bytes() -> Iterator[None]:
    """Deletes inside overwrite the freed pages with zeros (SQLite), and the write-ahead log is
    truncated after them. Raises what the block raises; the pragmas' and the checkpoint's own
    failures are logged, never raised."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA secure_delete")
        (before,) = cursor.fetchone()
        cursor.execute("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA secure_delete={int(before)}")
                cursor.execute("PRAGMA busy_timeout")
                (wait,) = cursor.fetchone()
                cursor.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
                try:
                    cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    cursor.fetchall()
                finally:
                    cursor.execute(f"PRAGMA busy_timeout={int(wait)}")
        except DatabaseError:
            log.warning("could not restore secure_delete or truncate the log after deleting captures", exc_info=True)
