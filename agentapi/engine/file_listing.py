"""The built-in file server's directory listing page (ngrok: "like python3 -m http.server").

Rules:
- One HTML5 page: the title and heading say `Directory listing for <path>`; a `../` link to the
  parent comes first except at the root; then one link per entry, sorted by name (case-folded,
  then as written), a directory's name ending in `/`.
- Every name is shown HTML-escaped (a name may hold `<`, `&`, quotes) and linked relative,
  percent-encoded from its file-system bytes (a name may hold `#`, `?`, `%`, spaces or bytes
  that are not UTF-8; it is shown with U+FFFD for those).
- At most MAX_ENTRIES entries are listed; the page says how many more there are.
"""

from __future__ import annotations

import html
import os
from urllib.parse import quote_from_bytes, unquote_to_bytes

MAX_ENTRIES = 10_000


def listing_page(url_path: bytes, entries: list[tuple[str, bool]], *, top: bool, more: int = 0) -> bytes:
    """The page for the directory at `url_path` (percent-encoded, ending in `/`) holding
    `entries` (file-system name, is a directory); `more` entries were left out."""
    shown_path = html.escape(_shown(unquote_to_bytes(url_path)))
    lines = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>Directory listing for {shown_path}</title></head>",
        f"<body><h1>Directory listing for {shown_path}</h1><hr><ul>",
    ]
    if not top:
        lines.append('<li><a href="../">../</a></li>')
    for name, is_dir in sorted(entries, key=lambda entry: (entry[0].casefold(), entry[0])):
        slash = "/" if is_dir else ""
        href = quote_from_bytes(os.fsencode(name)) + slash
        lines.append(f'<li><a href="{html.escape(href)}">{html.escape(_shown(os.fsencode(name)))}{slash}</a></li>')
    lines.append("</ul>")
    if more:
        lines.append(f"<p>{more} more entries are not listed.</p>")
    lines.append("<hr></body></html>\n")
    return "\n".join(lines).encode("utf-8")


def _shown(name: bytes) -> str:
    return name.decode("utf-8", "replace")
