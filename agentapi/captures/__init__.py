"""Reading stored captures back, for every reader (the agent API, the inspector, the admin).

- `summary`: the one metadata-only shape of a capture (lists, live deltas, the head of a detail).
- `message_body`: a stored message taken apart (head, de-chunked body, content coding undone).
- `header_text`, `content_type`, `content_coding`: header bytes as text, the media type and charset,
  content codings undone within a bound.
- `content_views`: how a body is shown (json, xml, html, form, multipart, image, text, hex), by
  priority; `body_text` (a body and its text: whole for checks, cut for drawing), `syntax_views`
  (JSON, XML and HTML checked on the whole body), `multipart` (parts as spans of the body).
- `blob_search`: a byte search inside the database (`BlobContains`), never loading the bytes.

No views, URLs or consumers here, and nothing of the project package (`dashboard`): readers import
this package, it imports none of them.
"""
