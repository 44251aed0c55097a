"""The list endpoint: newest first, keyset pages, and every filter ANDed."""

from __future__ import annotations

import gzip

import brotli
import pytest
import zstandard
from django.test import Client

from tests.inspector.conftest import request_bytes, response_bytes


def ids(client: Client, query: str = "") -> list[str]:
    response = client.get("/inspect/captures.json" + query)
    assert response.status_code == 200
    return [capture["id"] for capture in response.json()["captures"]]


def test_it_lists_newest_first_with_metadata_only(client, make_capture) -> None:
    old = make_capture(uri="/old")
    new = make_capture(uri="/new", status=None, response=None)
    body = client.get("/inspect/captures.json").json()
    assert [c["id"] for c in body["captures"]] == [new.id, old.id]
    first = body["captures"][0]
    assert first["status_code"] is None
    assert first["uri"] == "/new"
    assert set(first) == {
        "id",
        "tunnel_name",
        "start",
        "duration_ns",
        "method",
        "uri",
        "status_code",
        "request_size",
        "response_size",
        "remote_addr",
        "replay_of",
        "request_complete",
        "response_complete",
        "incomplete_reason",
        "policy_action",
        "truncated",
    }
    assert (first["request_complete"], first["response_complete"], first["truncated"]) == (True, True, False)
    assert body["next_before"] is None


def test_it_pages_by_id(client, make_capture) -> None:
    made = [make_capture(uri=f"/{n}").id for n in range(5)]
    first = client.get("/inspect/captures.json?limit=2").json()
    assert [c["id"] for c in first["captures"]] == made[:2:-1][:2]
    second = client.get(f"/inspect/captures.json?limit=2&before={first['next_before']}").json()
    assert [c["id"] for c in second["captures"]] == [made[2], made[1]]
    third = client.get(f"/inspect/captures.json?limit=2&before={second['next_before']}").json()
    assert [c["id"] for c in third["captures"]] == [made[0]]
    assert third["next_before"] is None


def test_path_method_and_status_filters_are_anded(client, make_capture) -> None:
    hit = make_capture(method="POST", uri="/api/orders?x=1", status=404)
    make_capture(method="GET", uri="/api/orders", status=404)
    make_capture(method="POST", uri="/api/orders", status=200)
    make_capture(method="POST", uri="/other", status=404)
    assert ids(client, "?path=API/ORDERS&method=POST&status=4xx") == [hit.id]
    assert ids(client, "?path=orders&method=post&status=404") == [hit.id]


def test_status_accepts_codes_classes_and_pending(client, make_capture) -> None:
    ok = make_capture(status=200)
    missing = make_capture(status=404)
    broken = make_capture(status=502)
    pending = make_capture(status=None, response=None)
    assert set(ids(client, "?status=5xx,pending")) == {broken.id, pending.id}
    assert set(ids(client, "?status=200,404")) == {ok.id, missing.id}


def test_a_bad_filter_value_is_reported_not_fatal(client, make_capture) -> None:
    make_capture()
    body = client.get("/inspect/captures.json?status=abc&duration_min=fast").json()
    assert len(body["captures"]) == 1
    assert len(body["filter_errors"]) == 2


def test_duration_filter_is_in_milliseconds(client, make_capture) -> None:
    make_capture(duration_ms=5)
    mid = make_capture(duration_ms=150.5)
    make_capture(duration_ms=2500)
    assert ids(client, "?duration_min=100&duration_max=1000") == [mid.id]


def test_size_filter_is_on_the_response_size(client, make_capture) -> None:
    small = make_capture(response=response_bytes(body=b"x" * 10))
    big = make_capture(response=response_bytes(body=b"x" * 3000))
    assert ids(client, "?size_min=2k") == [big.id]
    assert ids(client, "?size_max=500") == [small.id]


def test_header_filter_matches_name_and_value_of_either_message(client, make_capture) -> None:
    by_request = make_capture(request=request_bytes(headers={"X-Tenant": "acme-corp"}))
    by_response = make_capture(response=response_bytes(headers={"X-Tenant": "acme-ltd"}))
    make_capture(request=request_bytes(headers={"X-Other": "acme-corp"}))
    assert set(ids(client, "?header=x-tenant:acme")) == {by_request.id, by_response.id}
    assert ids(client, "?header=X-Tenant: acme-corp") == [by_request.id]
    assert set(ids(client, "?header=x-tenant")) == {by_request.id, by_response.id}


def test_body_filter_looks_in_bodies_not_heads(client, make_capture) -> None:
    in_request = make_capture(method="POST", request=request_bytes("POST", "/", body=b'{"order": "needle-42"}'))
    in_response = make_capture(response=response_bytes(body=b"<p>needle-42</p>"))
    make_capture(request=request_bytes(headers={"X-Note": "needle-42"}))  # in a header only
    assert set(ids(client, "?body=needle-42")) == {in_request.id, in_response.id}


def test_body_filter_searches_compressed_bodies_decoded(client, make_capture) -> None:
    gzipped = make_capture(
        response=response_bytes(headers={"Content-Encoding": "gzip"}, body=gzip.compress(b"hello needle"))
    )
    brotli_json = make_capture(
        response=response_bytes(
            headers={"content-encoding": "br", "Content-Type": "application/json"},
            body=brotli.compress(b'{"word": "needle"}'),
        )
    )
    zstd_request = make_capture(
        method="POST",
        request=request_bytes(
            "POST", "/", headers={"Content-Encoding": "zstd"}, body=zstandard.ZstdCompressor().compress(b"a needle")
        ),
    )
    make_capture(response=response_bytes(headers={"Content-Encoding": "gzip"}, body=gzip.compress(b"hay")))
    assert set(ids(client, "?body=needle")) == {gzipped.id, brotli_json.id, zstd_request.id}


def test_header_filter_matches_utf8_values_as_text(client, make_capture) -> None:
    hit = make_capture(request=request_bytes(headers={"X-User": "André"}).replace(b"Andr\xe9", "André".encode()))
    make_capture(request=request_bytes(headers={"X-User": "Andre"}))
    assert ids(client, "?header=x-user:André") == [hit.id]


def test_ids_restrict_the_answer_for_live_matching(client, make_capture) -> None:
    a = make_capture(uri="/a")
    b = make_capture(uri="/b")
    make_capture(uri="/a/c")
    assert ids(client, f"?ids={a.id},{b.id}&path=/a") == [a.id]


def test_body_filtered_pages_scan_a_bounded_number_of_rows(client, make_capture, monkeypatch) -> None:
    import dashboard.inspector.capture_list as capture_list

    monkeypatch.setattr(capture_list, "SCAN_LIMIT", 4)
    monkeypatch.setattr(capture_list, "_SCAN_BATCH", 2)
    matches = [make_capture(response=response_bytes(body=b"needle")) for _ in range(3)]
    # Six rows whose bytes match only in the head: the database narrows to them, Python rejects.
    for _ in range(6):
        make_capture(request=request_bytes(headers={"X-Needle": "needle"}))
    first = client.get("/inspect/captures.json?body=needle").json()
    assert first["captures"] == []
    assert first["next_before"] is not None  # not at the end: carry on from there
    found: list[str] = []
    cursor = first["next_before"]
    while cursor:
        page = client.get(f"/inspect/captures.json?body=needle&before={cursor}").json()
        found += [c["id"] for c in page["captures"]]
        cursor = page["next_before"]
    assert found == [m.id for m in reversed(matches)]


@pytest.mark.parametrize("query", ["?tunnel=api", "?tunnel=api&path=/"])
def test_tunnel_filter(client, make_capture, query) -> None:
    mine = make_capture(tunnel_name="api")
    make_capture(tunnel_name="web")
    assert ids(client, query) == [mine.id]
