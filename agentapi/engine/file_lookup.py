"""What a request path names under the built-in file server's root: a file, a directory listing,
a redirect or a refusal. Blocking file-system calls: run it in a worker thread, never on the loop.

Rules (ngrok serves a directory "like python3 -m http.server", with Go's http.FileServer; ours
where marked):
- The path is the request target up to `?`, in origin form (absolute form is reduced to it by
  the caller); anything else is 400. It is split on `/` and each segment percent-decoded alone,
  so an encoded slash can never join two segments. Empty and `.` segments are skipped (`//` and
  `/./` name what they would without them).
- Never anything outside the root (ours, stricter than Go's path.Clean): a segment that decodes
  to `..`, or holds `/` (`%2f`), `\\` (raw or `%5c`) or NUL (`%00`) is refused (403) however it
  is spelled. Names are file-system bytes (`%ff` is the byte 0xff). The path is resolved with
  every symlink followed, and one that leads outside the root is refused (403); the file is then
  opened without following a last symlink and non-blocking (a FIFO put in its place cannot hang
  the thread), checked to be a regular file, and on Linux its open descriptor's own path is
  checked against the root again (a directory swapped for a symlink in between is caught).
- A directory is answered only at its path ending in `/`; without it, a redirect (301) adds the
  `/` (the query kept), so relative links in its listing resolve. A file is answered only
  without a trailing `/` (redirected otherwise), as Go does. A directory holding a regular file
  `index.html` is answered with it; `/dir/index.html` itself redirects to `/dir/` (Go's rule, so
  a page has one URL). Otherwise the listing (file_listing.py).
- Anything else (a socket, a device, a FIFO) is refused (403); a name that does not exist, or an
  error reading it, is 404.
- Content types: by extension (Python's mimetypes, which reads the system's mime.types like
  Go's mime package), `text/*` with `charset=utf-8` added as Go does; an unknown extension is
  sniffed from the first 512 bytes: UTF-8 text without control characters is
  `text/plain; charset=utf-8` (an empty file too), anything else `application/octet-stream`.
- A file of at most SMALL_FILE bytes is read whole here (the answer then needs no second trip
  to a thread); a larger one is handed over open, for sendfile.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from dataclasses import dataclass
from urllib.parse import quote_from_bytes, unquote_to_bytes

from .file_listing import MAX_ENTRIES, listing_page

SMALL_FILE = 64 * 1024
_SNIFF_BYTES = 512
_INDEX = "index.html"
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_TEXT_CONTROLS = frozenset(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D, 0x1B}

if not mimetypes.inited:
    mimetypes.init()  # once, here: worker threads must not race to read the system's tables


@dataclass(frozen=True, slots=True)
class Refused:
    """No content: `status` 400, 403 or 404, and why (for the page and the log)."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Redirect:
    """301 to `location` (an absolute path, with the query if there was one)."""

    location: bytes


@dataclass(frozen=True, slots=True)
class Listing:
    """A directory's listing page (text/html; charset=utf-8)."""

    page: bytes


@dataclass(frozen=True, slots=True)
class Found:
    """A regular file: its size, mtime (ns) and content type, and either its whole `content`
    (SMALL_FILE bytes at most) or an open descriptor `fd` the caller must close."""

    size: int
    mtime_ns: int
    content_type: str
    content: bytes | None = None
    fd: int = -1


Lookup = Refused | Redirect | Listing | Found


def lookup(root: str, target: bytes) -> Lookup:
    """What `target` (an origin-form request target) names under `root` (a real path: no
    symlinks in it). Blocking: call it from a worker thread."""
    if not target.startswith(b"/"):
        return Refused(400, "the request target is not a path")
    raw_path, question, query = target.partition(b"?")
    suffix = b"?" + query if question else b""
    names: list[str] = []
    for raw in raw_path.split(b"/"):
        segment = unquote_to_bytes(raw)
        if segment in (b"", b"."):
            continue
        if segment == b".." or b"/" in segment or b"\\" in segment or b"\x00" in segment:
            return Refused(403, "the path leaves the served directory or holds a forbidden character")
        names.append(os.fsdecode(segment))
    trailing = raw_path.endswith(b"/")
    if names and names[-1] == _INDEX and not trailing:
        return Redirect(_path_of(names[:-1], directory=True) + suffix)
    path = os.path.join(root, *names)
    try:
        real = os.path.realpath(path, strict=True)
        info = os.stat(real)
    except (OSError, ValueError):
        return Refused(404, "no such file or directory")
    if not _inside(root, real):
        return Refused(403, "the path leads outside the served directory")
    if stat.S_ISDIR(info.st_mode):
        if not trailing and names:
            return Redirect(_path_of(names, directory=True) + suffix)
        index = _index(root, real)
        if index is not None:
            return index
        try:
            return Listing(_listing(real, _path_of(names, directory=True), top=not names))
        except OSError:
            return Refused(403, "the directory cannot be read")
    if not stat.S_ISREG(info.st_mode):
        return Refused(403, "not a regular file")
    if trailing:
        return Redirect(_path_of(names, directory=False) + suffix)
    return _found(root, real)


def _index(root: str, directory: str) -> Found | None:
    """The directory's index.html (a regular file inside the root, through symlinks), if any."""
    try:
        real = os.path.realpath(os.path.join(directory, _INDEX), strict=True)
        if not (_inside(root, real) and stat.S_ISREG(os.stat(real).st_mode)):
            return None
    except (OSError, ValueError):
        return None
    found = _found(root, real)
    return found if isinstance(found, Found) else None


def _found(root: str, path: str) -> Lookup:
    """Open a regular file inside `root`; read it whole when small."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return Refused(404, "no such file")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return Refused(403, "not a regular file")
        opened = _opened_path(fd)
        if opened is not None and not _inside(root, opened):
            return Refused(403, "the path leads outside the served directory")
        name = os.path.basename(path)
        small = info.st_size <= SMALL_FILE
        head = os.pread(fd, info.st_size if small else _SNIFF_BYTES, 0) if info.st_size else b""
        kind = content_type(name, head[:_SNIFF_BYTES])
        if small:
            return Found(size=len(head), mtime_ns=info.st_mtime_ns, content_type=kind, content=head)
        found = Found(size=info.st_size, mtime_ns=info.st_mtime_ns, content_type=kind, fd=fd)
        fd = -1  # the caller's now
        return found
    except OSError:
        return Refused(404, "the file cannot be read")
    finally:
        if fd >= 0:
            os.close(fd)


def _opened_path(fd: int) -> str | None:
    """The real path of an open descriptor (Linux's /proc); None where that cannot be known."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _path_of(names: list[str], *, directory: bool) -> bytes:
    """The URL path of `names` (percent-encoded file-system bytes)."""
    path = b"/" + b"/".join(quote_from_bytes(os.fsencode(name)).encode("ascii") for name in names)
    if directory and names:
        path += b"/"
    return path


def _listing(directory: str, url_path: bytes, *, top: bool) -> bytes:
    entries: list[tuple[str, bool]] = []
    more = 0
    with os.scandir(directory) as scan:
        for entry in scan:
            if len(entries) >= MAX_ENTRIES:
                more += 1
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            entries.append((entry.name, is_dir))
    return listing_page(url_path, entries, top=top, more=more)


def content_type(name: str, start: bytes) -> str:
    """The Content-Type of a file called `name` whose first bytes are `start` (see the banner)."""
    kind, _ = mimetypes.guess_type(name, strict=False)
    if kind is None:
        return "text/plain; charset=utf-8" if _looks_like_text(start) else "application/octet-stream"
    if kind.startswith("text/"):
        return kind + "; charset=utf-8"
    return kind


def _looks_like_text(start: bytes) -> bool:
    if any(byte in _TEXT_CONTROLS for byte in start):
        return False
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as error:
        # A character cut by the 512-byte window is still text.
        return error.start >= len(start) - 3 and error.reason == "unexpected end of data"
    return True
