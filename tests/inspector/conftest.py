from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from agentapi.models import Capture

_numbers = itertools.count(1)


@pytest.fixture
def client() -> Client:
    # The web interface answers only to local Host names (web_allow_hosts).
    return Client(HTTP_HOST="127.0.0.1:4040")


def request_bytes(
    method: str = "GET", target: str = "/", headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1:5000"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body and not any(name.lower() == "transfer-encoding" for name in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    lines += ["X-Forwarded-For: 10.1.2.3", "X-Forwarded-Host: demo.example:5000", "X-Forwarded-Proto: https"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def response_bytes(status: int = 200, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} OK"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if not any(name.lower() == "transfer-encoding" for name in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@pytest.fixture
def make_capture(db: Any) -> Callable[..., Capture]:
    def make(
        *,
        method: str = "GET",
        uri: str = "/",
        request: bytes | None = None,
        response: bytes | None = b"",
        status: int | None = 200,
        duration_ms: float = 12.5,
        tunnel_name: str = "web",
        request_size: int | None = None,
        response_size: int | None = None,
        capture_id: str | None = None,
        replay_of: str = "",
    ) -> Capture:
        raw_request = request if request is not None else request_bytes(method, uri)
        raw_response = None if response is None else (response or response_bytes(status or 200))
        return Capture.objects.create(
            id=capture_id or f"airt_{next(_numbers):027d}",
            tunnel_name=tunnel_name,
            remote_addr="10.1.2.3",
            start=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            duration_ns=int(duration_ms * 1_000_000),
            method=method,
            uri=uri,
            request_raw=raw_request,
            request_size=request_size if request_size is not None else len(raw_request),
            response_raw=raw_response,
            response_size=(response_size if response_size is not None else len(raw_response))
            if raw_response is not None
            else None,
            status_code=status,
            stored_size=len(raw_request) + len(raw_response or b""),
            replay_of=replay_of,
        )

    return make
