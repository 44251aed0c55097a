"""The agent's data directory and its secret key: read by the settings, made by `manage.py`.

Importing the settings writes nothing (tests, mypy's Django plugin, an ASGI server importing
`dashboard.asgi`): without `AGENT_SECRET_KEY` or a key file they use a key made in memory for the
process. `manage.py` calls `prepare` before Django reads the settings, so every command (`agent`,
`migrate`, `createsuperuser`...) finds the directory SQLite lives in, and the key kept there makes
sessions survive restarts. Nothing here imports Django.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
KEY_FILE = "secret_key"


def data_dir() -> Path:
    """`AGENT_DATA_DIR`, by default `data/` beside manage.py."""
    return Path(os.environ.get("AGENT_DATA_DIR", str(BASE_DIR / "data")))


def stored_key(directory: Path) -> str | None:
    """The key kept in the data directory, as written ("" for an empty file); None when there is none."""
    try:
        return (directory / KEY_FILE).read_text().strip()
    except FileNotFoundError:
        return None


def prepare(directory: Path) -> None:
    """Create the data directory and, unless `AGENT_SECRET_KEY` is set, keep a generated key in it
    (mode 0600). An existing key is never replaced; of two first starts at once, the first key
    written wins and both use it. Raises OSError (a directory that cannot be made or written)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILE
    if os.environ.get("AGENT_SECRET_KEY") or path.exists():
        return
    # Written whole under another name, then linked into place: no reader sees a partial key.
    fd, temporary = tempfile.mkstemp(prefix=f".{KEY_FILE}.", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process kept its key first
    finally:
        os.unlink(temporary)
