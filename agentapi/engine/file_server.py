"""The built-in file server behind a `file:///dir` tunnel (ngrok's "Serving file directories",
snippets/gateway/shared/http-end-source.mdx: "like python3 -m http.server").

Design: each such tunnel gets its own small HTTP/1.1 server on 127.0.0.1 (an ephemeral port),
started when the tunnel opens and closed when it stops (engine.py). The tunnel's upstream points
at it, so the proxy, the capture, Traffic Policy and the metrics see an ordinary local service.

Rules:
- Requests are parsed by http1.RequestParser (llhttp; a head over MAX_HEAD_BYTES is 431, bad
  bytes 400, then the connection closes). Requests are answered one at a time in order
  (pipelining works), each once its body is read (and dropped). HTTP/1.1 connections stay open
  unless the request says close; HTTP/1.0 ones close after the answer (as http.server does); a
  connection idle for IDLE_SECONDS is closed.
- GET and HEAD only; any other method is 405 with `Allow: GET, HEAD`. HEAD sends GET's head.
- What a path names, and every refusal (`..`, encoded slashes, backslashes, NUL, symlinks out
  of the root: 403; missing: 404): file_lookup.py, run in a worker thread (no file-system call
  on the loop: a big directory or a slow disk never stalls the agent).
- Conditional and range requests: file_conditional.py (ETag, Last-Modified, 304, 412, 206 with
  Content-Range, 416 with `Content-Range: bytes */size`). `Accept-Ranges: bytes` on files.
- Bodies: a small file was read with its lookup and goes out with its head in one write; a larger
  one is sent with os.sendfile straight from the page cache (the socket is ours, not a transport,
  so the loop only waits for it to be writable), or read in chunks in a worker thread where there
  is no sendfile. A file that shrinks while it is sent closes the connection (its length was
  announced).
- Every answer has Date and Content-Length (0 for 304 and HEAD's own length for HEAD) and no
  Server field; error pages are short text/plain.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from email.utils import formatdate

from .file_conditional import Answer, decide, validators
from .file_lookup import Found, Listing, Redirect, Refused, lookup
from .http1 import Body, ProtocolError, RequestEnd, RequestHead, RequestParser, Upgrade, origin_form, reason_phrase

log = logging.getLogger(__name__)

IDLE_SECONDS = 120.0
_READ_SIZE = 64 * 1024
_SENDFILE_CHUNK = 4 * 1024 * 1024
_METHODS = (b"GET", b"HEAD")


@dataclass(eq=False)
class FileServer:
    """One tunnel's file server. `start` it, point the tunnel at `port`, `close` it when done."""

    root: str  # real path: no symlinks in it
    listener: socket.socket
    port: int
    connections: set[asyncio.Task[None]] = field(default_factory=set)
    accepting: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, root: str, *, host: str = "127.0.0.1") -> FileServer:
        """Listen on `host`, an ephemeral port, serving the directory `root`.

        Raises OSError when the directory is gone or the socket cannot be bound.
        """
        loop = asyncio.get_running_loop()
        real = await loop.run_in_executor(None, _real_directory, root)
        listener = socket.create_server((host, 0), backlog=1024)
        listener.setblocking(False)
        server = cls(root=real, listener=listener, port=int(listener.getsockname()[1]))
        server.accepting = loop.create_task(server._accept(), name=f"file-server:{server.port}")
        return server

    async def close(self) -> None:
        """Stop accepting and end every connection (a response under way is cut)."""
        tasks = [task for task in (self.accepting, *self.connections) if task is not None]
        for task in tasks:
            task.cancel()
        self.listener.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, _ = await loop.sock_accept(self.listener)
            except OSError as error:  # out of descriptors, say: keep serving the others
                log.warning("file server %s: accept failed: %s", self.root, error)
                await asyncio.sleep(0.1)
                continue
            connection.setblocking(False)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._serve(connection))
            self.connections.add(task)
            task.add_done_callback(self.connections.discard)

    async def _serve(self, connection: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        parser = RequestParser()
        head: RequestHead | None = None
        try:
            while True:
                try:
                    data = await asyncio.wait_for(loop.sock_recv(connection, _READ_SIZE), IDLE_SECONDS)
                except TimeoutError:
                    return
                if not data:
                    return
                for event in parser.feed(data):
                    if isinstance(event, RequestHead):
                        head = event
                    elif isinstance(event, RequestEnd) and head is not None:
                        # HTTP/1.0 closes after each answer (as http.server does): no keep-alive dance.
                        keep_alive = head.keep_alive and not head.upgrade and head.version != "1.0"
                        await self._answer(connection, head, keep_alive=keep_alive)
                        if not keep_alive:
                            return
                        head = None
                    elif isinstance(event, Upgrade):
                        return  # what follows is another protocol; its request was answered
                    elif isinstance(event, Body):
                        pass  # a body is read and dropped
                if parser.error is not None:
                    await _send_error(connection, parser.error)
                    return
        except (ConnectionError, BrokenPipeError, OSError) as error:
            log.debug("file server %s: connection ended: %s", self.root, error)
        finally:
            connection.close()

    async def _answer(self, connection: socket.socket, head: RequestHead, *, keep_alive: bool) -> None:
        loop = asyncio.get_running_loop()
        if head.method not in _METHODS:
            await loop.sock_sendall(
                connection,
                _simple(405, b"GET and HEAD only\n", keep_alive=keep_alive, extra=b"Allow: GET, HEAD\r\n"),
            )
            return
        target = origin_form(head.target)[0]
        found = await loop.run_in_executor(None, lookup, self.root, target)
        head_only = head.method == b"HEAD"
        if isinstance(found, Refused):
            body = b"%d %s: %s\n" % (found.status, reason_phrase(found.status).encode(), found.reason.encode())
            await loop.sock_sendall(connection, _simple(found.status, body, keep_alive=keep_alive, head_only=head_only))
        elif isinstance(found, Redirect):
            body = b'<a href="%s">Moved Permanently</a>.\n' % html.escape(found.location.decode("latin-1")).encode(
                "latin-1"
            )
            extra = b"Location: %s\r\n" % found.location
            await loop.sock_sendall(
                connection, _simple(301, body, keep_alive=keep_alive, head_only=head_only, extra=extra, is_html=True)
            )
        elif isinstance(found, Listing):
            await loop.sock_sendall(
                connection, _simple(200, found.page, keep_alive=keep_alive, head_only=head_only, is_html=True)
            )
        else:
            try:
                await self._send_file(connection, head, found, keep_alive=keep_alive)
            finally:
                if found.fd >= 0:
                    os.close(found.fd)

    async def _send_file(self, connection: socket.socket, head: RequestHead, found: Found, *, keep_alive: bool) -> None:
        loop = asyncio.get_running_loop()
        file = validators(found.mtime_ns, found.size)
        answer = decide(head.method, head.headers, file, found.size)
        fields = [
            b"ETag: %s\r\n" % file.etag,
            b"Last-Modified: %s\r\n" % formatdate(file.last_modified, usegmt=True).encode("ascii"),
        ]
        if answer.status in (304, 412):
            body = b"" if answer.status == 304 else b"412 Precondition Failed\n"
            await loop.sock_sendall(
                connection,
                _simple(
                    answer.status, body, keep_alive=keep_alive, head_only=head.method == b"HEAD", extra=b"".join(fields)
                ),
            )
            return
        if answer.status == 416:
            extra = b"Content-Range: bytes */%d\r\n" % found.size
            body = b"416 Range Not Satisfiable\n"
            await loop.sock_sendall(connection, _simple(416, body, keep_alive=keep_alive, extra=extra))
            return
        fields.append(b"Content-Type: %s\r\nAccept-Ranges: bytes\r\n" % found.content_type.encode("latin-1"))
        if answer.status == 206:
            fields.append(b"Content-Range: bytes %d-%d/%d\r\n" % (answer.start, answer.end - 1, found.size))
        length = answer.end - answer.start
        response_head = _head(answer.status, length, keep_alive=keep_alive, extra=b"".join(fields))
        if head.method == b"HEAD" or length == 0:
            await loop.sock_sendall(connection, response_head)
        elif found.content is not None:
            await loop.sock_sendall(connection, response_head + found.content[answer.start : answer.end])
        else:
            await loop.sock_sendall(connection, response_head)
            await _send_range(connection, found.fd, answer)


async def _send_range(connection: socket.socket, fd: int, answer: Answer) -> None:
    """The file's bytes start .. end on the socket: sendfile where there is one."""
    loop = asyncio.get_running_loop()
    offset, end = answer.start, answer.end
    sendfile = getattr(os, "sendfile", None)
    while offset < end:
        count = min(end - offset, _SENDFILE_CHUNK)
        if sendfile is not None:
            try:
                sent = sendfile(connection.fileno(), fd, offset, count)
            except BlockingIOError:
                await _writable(connection)
                continue
        else:
            data = await loop.run_in_executor(None, os.pread, fd, min(count, _READ_SIZE), offset)
            await loop.sock_sendall(connection, data)
            sent = len(data)
        if sent == 0:
            raise ConnectionError("the file shrank while it was sent")
        offset += sent


async def _writable(connection: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    fd = connection.fileno()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


async def _send_error(connection: socket.socket, error: ProtocolError) -> None:
    body = b"%d %s: %s\n" % (
        error.status,
        reason_phrase(error.status).encode(),
        error.detail.encode("utf-8", "replace"),
    )
    with contextlib.suppress(OSError):
        await asyncio.get_running_loop().sock_sendall(connection, _simple(error.status, body, keep_alive=False))


def _real_directory(root: str) -> str:
    real = os.path.realpath(root, strict=True)
    if not os.path.isdir(real):
        raise NotADirectoryError(f"{root} is not a directory")
    return real


def _head(status: int, length: int, *, keep_alive: bool, extra: bytes = b"") -> bytes:
    """A response head; a 304 has no Content-Length (RFC 9110 8.6: it would have to be the 200's)."""
    connection = b"" if keep_alive else b"Connection: close\r\n"
    framing = b"" if status == 304 else b"Content-Length: %d\r\n" % length
    return b"HTTP/1.1 %d %s\r\nDate: %s\r\n%s%s%s\r\n" % (
        status,
        reason_phrase(status).encode("ascii"),
        _now(),
        framing,
        extra,
        connection,
    )


def _simple(
    status: int, body: bytes, *, keep_alive: bool, head_only: bool = False, extra: bytes = b"", is_html: bool = False
) -> bytes:
    """A whole answer with a short body (nothing after the head for HEAD and 304)."""
    kind = b"text/html; charset=utf-8" if is_html else b"text/plain; charset=utf-8"
    fields = (b"Content-Type: %s\r\n" % kind if body else b"") + extra
    head = _head(status, len(body), keep_alive=keep_alive, extra=fields)
    return head if head_only or status == 304 else head + body


_date_cache: tuple[int, bytes] = (0, b"")


def _now() -> bytes:
    """The Date field's value: now as an IMF-fixdate (RFC 9110 5.6.7), made once a second."""
    global _date_cache
    seconds = int(time.time())
    if _date_cache[0] != seconds:
        _date_cache = (seconds, formatdate(seconds, usegmt=True).encode("ascii"))
    return _date_cache[1]
