"""A captured body as the content views see it, and its text: all of it for checks, a prefix for display.

Rules:
- `Body.data` is the body with transfer framing and content coding undone (message_body), within
  AGENT_DECODED_BODY_LIMIT. `Body.complete` is False when those bytes are not the whole body that
  crossed (cut by the capture limit, or the decoded body cut at its limit): a syntax error at the
  end of a cut body is the cut, not the sender's mistake.
- Checks (is this JSON? is this XML?) read the whole body: `whole_text`. Only what is drawn is cut,
  to `MAX_TEXT` characters, and the view then says so (`cut_note`). A check on the cut text would
  call valid JSON of 868 KB broken at column 524287 (issue 9).
- Text is read in the charset Content-Type names (RFC 9110 8.3.2), UTF-8 when it names none or one
  Python does not know (RFC 8259 8.1 for JSON). A body that does not decode, or holds a NUL, is
  binary: None. A multi-byte character cut by a limit at the very end is dropped, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import content_type

# What a view draws at most (characters of text); the download and the copy button have everything.
MAX_TEXT = 512 * 1024


@dataclass(frozen=True, slots=True)
class Body:
    """A body to show. `data`: bytes (decoded); `content_type`: the Content-Type value as sent;
    `complete`: whether `data` is the whole body (False: cut by a limit)."""

    data: bytes
    content_type: str = ""
    complete: bool = True

    @property
    def mime_type(self) -> str:
        return content_type.mime_type(self.content_type)

    @property
    def charset(self) -> str:
        return content_type.charset(self.content_type)


def _decode(data: bytes, charset: str) -> str | None:
    try:
        text = data.decode(charset)
    except LookupError:  # a charset Python does not know: UTF-8 is the web's default
        return _decode(data, "utf-8") if charset != "utf-8" else None
    except UnicodeDecodeError as error:
        if error.reason != "unexpected end of data" or error.end != len(data):
            return None
        text = data[: error.start].decode(charset)  # a character cut at the end by a limit
    return None if "\x00" in text else text


def whole_text(body: Body) -> str | None:
    """All of the body as text (for syntax checks), or None when it is binary."""
    return _decode(body.data, body.charset)


def decode_text(body: Body) -> str | None:
    """The first MAX_TEXT bytes of the body as text (for display), or None when they look binary."""
    return _decode(body.data[:MAX_TEXT], body.charset)


def cut_for_display(text: str) -> tuple[str, str]:
    """(the text drawn, the note saying how much of it): at most MAX_TEXT characters."""
    if len(text) <= MAX_TEXT:
        return text, ""
    return text[:MAX_TEXT], f"showing the first {MAX_TEXT:,} of {len(text):,} characters"


def cut_note(body: Body) -> str:
    """The note of a view that draws the first MAX_TEXT bytes of the body as they are."""
    if len(body.data) <= MAX_TEXT:
        return ""
    return f"showing the first {MAX_TEXT:,} of {len(body.data):,} bytes"
