"""The inspector and status pages, static files, and the Host check on the UI."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from django.http import HttpResponse

from agentapi.models import Capture


def boot_of(response: HttpResponse, element_id: str = "inspector-boot") -> dict[str, Any]:
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode(), re.S
    )
    assert match, "no boot data in the page"
    return json.loads(match.group(1))


def test_the_inspector_is_at_the_root_and_at_inspect_http(client, make_capture) -> None:
    capture = make_capture(uri="/hello")
    for path in ("/", "/inspect/http"):
        response = client.get(path)
        assert response.status_code == 200
        assert boot_of(response)["page"]["captures"][0]["id"] == capture.id


def test_filters_come_back_into_the_form_and_the_first_page(client, make_capture) -> None:
    make_capture(uri="/a", method="GET")
    posted = make_capture(uri="/a", method="POST")
    response = client.get("/inspect/http?path=/a&method=POST&body=")
    boot = boot_of(response)
    assert [c["id"] for c in boot["page"]["captures"]] == [posted.id]
    assert boot["filters_active"] is True
    assert boot["filter_query"] == "path=%2Fa&method=POST"
    page = response.content.decode()
    assert 'name="path" value="/a"' in page
    assert 'id="filter-reset"' in page


def test_the_status_page_lists_tunnels(client, db) -> None:
    response = client.get("/status")
    assert response.status_code == 200
    assert boot_of(response, "status-boot") == {"tunnels": [], "urls": {"socket": "/ws/inspector"}}


def test_a_foreign_host_is_refused(db) -> None:
    from django.test import Client

    assert Client(HTTP_HOST="evil.example").get("/").status_code == 403


def test_a_lan_host_in_the_allow_list_works(db, settings) -> None:
    from django.test import Client

    settings.AGENT_WEB_ALLOW_HOSTS = ["192.168.0.0/16"]
    assert Client(HTTP_HOST="192.168.1.5:4040").get("/").status_code == 200


async def test_static_handler_serves_vendored_chart_library() -> None:
    from asgiref.testing import ApplicationCommunicator

    from dashboard.asgi import application

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/static/vendor/uplot/uPlot.iife.min.js",
        "headers": [(b"host", b"127.0.0.1:4040")],
        "query_string": b"",
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(5)
    assert start["status"] == 200
    body = b""
    while True:
        message = await communicator.receive_output(5)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    assert b"uPlot" in body


def test_the_first_page_of_ten_thousand_captures_is_quick(client, db) -> None:
    raw = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    Capture.objects.bulk_create(
        [
            Capture(
                id=f"airt_big{n:023d}",
                tunnel_name="web",
                remote_addr="127.0.0.1",
                start="2025-01-01T00:00:00Z",
                method="GET",
                uri=f"/x/{n}",
                request_raw=raw,
                request_size=len(raw),
                response_raw=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                response_size=38,
                status_code=200,
            )
            for n in range(10_000)
        ],
        batch_size=1000,
    )
    started = time.perf_counter()
    response = client.get("/")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert len(boot_of(response)["page"]["captures"]) == 100
    assert elapsed < 1.0
    started = time.perf_counter()
    client.get("/inspect/captures.json?body=nothing-like-this")
    assert time.perf_counter() - started < 1.0
