"""Export HAR exports what the list shows: every filtered capture, streamed, no silent cap.

Regression: "Export HAR" used to export the newest 1,000 captures and say nothing about the rest.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext

from agentapi.models import Capture
from dashboard.inspector import export_stream
from tests.inspector.conftest import request_bytes, response_bytes


def store(count: int, *, start: int = 1, uri: str = "/item", body: bytes = b"") -> list[str]:
    """`count` captures with ids that sort in creation order, in one bulk insert."""
    rows = []
    for number in range(start, start + count):
        request = request_bytes("POST" if body else "GET", f"{uri}/{number}", body=body)
        response = response_bytes(200, body=b"ok")
        rows.append(
            Capture(
                id=f"airt_{number:027d}",
                tunnel_name="web",
                remote_addr="10.1.2.3",
                start=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                duration_ns=1_000_000,
                method="POST" if body else "GET",
                uri=f"{uri}/{number}",
                request_raw=request,
                request_size=len(request),
                response_raw=response,
                response_size=len(response),
                status_code=200,
                stored_size=len(request) + len(response),
            )
        )
    Capture.objects.bulk_create(rows, batch_size=500)
    return [row.id for row in rows]


def streamed(response: Any) -> StreamingHttpResponse:
    assert isinstance(response, StreamingHttpResponse), "the export is streamed, not built in memory"
    return response


def chunks_of(response: Any) -> Iterator[bytes]:
    content = streamed(response).streaming_content
    assert isinstance(content, Iterator)
    return content


def har(response: Any) -> dict[str, Any]:
    return json.loads(b"".join(chunks_of(response)))["log"]


@pytest.mark.django_db
def test_export_har_holds_every_capture_past_a_thousand(client: Client) -> None:
    ids = store(1234)
    log = har(client.get("/inspect/export.har"))
    assert [entry["_id"] for entry in log["entries"]] == ids
    assert log["comment"] == "1234 captures: every stored capture, oldest first"


@pytest.mark.django_db
def test_export_har_of_a_filtered_view_holds_exactly_its_set(client: Client) -> None:
    wanted = store(1100, uri="/api")
    store(300, start=5000, uri="/other")
    log = har(client.get("/inspect/export.har?path=/api&method=GET"))
    assert [entry["_id"] for entry in log["entries"]] == wanted
    assert log["comment"] == "1100 captures: every capture matching path=%2Fapi&method=GET, oldest first"


@pytest.mark.django_db
def test_export_har_checks_body_filters_on_the_bytes_of_every_row(client: Client, monkeypatch) -> None:
    monkeypatch.setattr(export_stream, "ID_PAGE", 50)
    wanted = store(120, body=b'{"event": "invoice.paid"}')
    store(80, start=1000, body=b'{"event": "invoice.created"}')
    log = har(client.get("/inspect/export.har?body=invoice.paid"))
    assert [entry["_id"] for entry in log["entries"]] == wanted


@pytest.mark.django_db
def test_export_har_reads_the_store_page_by_page_as_it_streams(client: Client, monkeypatch) -> None:
    monkeypatch.setattr(export_stream, "ID_PAGE", 100)
    monkeypatch.setattr(export_stream, "BLOCK_CHARS", 1)
    store(1050)
    chunks = chunks_of(client.get("/inspect/export.har"))
    with CaptureQueriesContext(connection) as first:
        next(chunks)
        next(chunks)  # the first entry: one page of ids and one group of rows read
    with CaptureQueriesContext(connection) as rest:
        tail = b"".join(chunks)
    assert len(first.captured_queries) <= 3
    # 11 pages of ids, each with its group of rows: the rest is read as it goes out.
    assert len(rest.captured_queries) >= 20
    assert tail.endswith(b'"comment": "1050 captures: every stored capture, oldest first"}}\n')


@pytest.mark.django_db
def test_rows_read_at_once_are_bounded_by_their_stored_bytes(monkeypatch) -> None:
    monkeypatch.setattr(export_stream, "GROUP_BYTES", 1000)
    store(10, body=b"x" * 300)  # about 500 stored bytes a row: two rows a group
    with CaptureQueriesContext(connection) as queries:
        captures = list(export_stream.filtered_captures(export_stream.CaptureFilter()))
    assert len(captures) == 10
    assert len(queries.captured_queries) == 1 + 1 + 5  # newest id, one page of ids, five groups


@pytest.mark.django_db
def test_captures_stored_after_the_export_started_are_not_in_it(client: Client, monkeypatch) -> None:
    monkeypatch.setattr(export_stream, "BLOCK_CHARS", 1)
    ids = store(5)
    chunks = chunks_of(client.get("/inspect/export.har"))
    next(chunks)
    next(chunks)
    store(3, start=100)  # a busy tunnel: the export still ends, with the set it started with
    rest = b"".join(chunks)
    assert rest.count(b'"_id"') == len(ids) - 1
    assert b"airt_000000000000000000000000100" not in rest


@pytest.mark.django_db
def test_a_filter_the_list_cannot_read_is_named_in_the_file(client: Client) -> None:
    store(3)
    log = har(client.get("/inspect/export.har?status=abc"))
    assert len(log["entries"]) == 3
    assert "not applied: status 'abc'" in log["comment"]


@pytest.mark.django_db
def test_an_empty_store_exports_an_empty_har(client: Client) -> None:
    log = har(client.get("/inspect/export.har"))
    assert (log["version"], log["entries"], log["comment"]) == (
        "1.2",
        [],
        "0 captures: every stored capture, oldest first",
    )


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_export_is_an_async_stream(settings) -> None:
    settings.AGENT_WEB_ALLOW_HOSTS = ["testserver"]  # AsyncClient's Host
    ids = await sync_to_async(store)(1001)
    client = AsyncClient()
    response = streamed(await client.get("/inspect/export.har"))
    assert response.is_async
    content = response.streaming_content
    assert isinstance(content, AsyncIterator)
    body = b"".join([chunk async for chunk in content])
    log = json.loads(body)["log"]
    assert [entry["_id"] for entry in log["entries"]] == ids
