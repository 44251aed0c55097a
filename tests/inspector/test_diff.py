"""Diff two captures: a replay against its original, request and response, headers and bodies,
JSON compared as JSON."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

from django.test import Client

from agentapi.models import Capture
from dashboard.inspector.capture_diff import body_diff, header_diff, line_diff
from tests.inspector.conftest import request_bytes, response_bytes

ORIGINAL = b'{"id": "evt_1", "data": {"amount": 4200, "currency": "eur"}, "items": [1, 2]}'
EDITED = b'{"items": [1, 2, 3], "id": "evt_1", "data": {"amount": 9900, "currency": "eur"}}'


def test_json_bodies_are_compared_as_json_with_each_change_by_path() -> None:
    diff = body_diff(ORIGINAL, EDITED)
    assert (diff["kind"], diff["same"]) == ("json", False)
    assert diff["changes"] == [
        {"path": "$.data.amount", "change": "changed", "a": "4200", "b": "9900"},
        {"path": "$.items[2]", "change": "added", "a": None, "b": "3"},
    ]
    rows = [row for hunk in diff["hunks"] for row in hunk["rows"] if row["op"] != "equal"]
    assert {"op": "replace", "a": ['    "amount": 4200,'], "b": ['    "amount": 9900,']} in rows


def test_the_same_json_spelled_differently_is_the_same_body() -> None:
    spelled = b'{ "items":[1,2], "data":{"currency":"eur","amount":4200}, "id":"evt_1" }'
    diff = body_diff(ORIGINAL, spelled)
    assert (diff["kind"], diff["same"], diff["changes"], diff["hunks"]) == ("json", True, [], [])


def test_a_json_number_and_its_float_spelling_differ() -> None:
    assert body_diff(b'{"a": 1}', b'{"a": 1.0}')["changes"] == [
        {"path": "$.a", "change": "changed", "a": "1", "b": "1.0"}
    ]


def test_keys_that_are_not_identifiers_are_quoted_in_the_path() -> None:
    changes = body_diff(b'{"a-b": {"c d": 1}}', b'{"a-b": {"c d": 2}}')["changes"]
    assert changes[0]["path"] == '$["a-b"]["c d"]'


def test_text_is_diffed_by_lines_with_context_around_each_change() -> None:
    a = "\n".join(f"line {n}" for n in range(1, 21))
    b = a.replace("line 10", "line ten")
    (hunk,) = line_diff(a, b)["hunks"]
    assert (hunk["a_start"], hunk["b_start"]) == (7, 7)
    assert [row["op"] for row in hunk["rows"]] == ["equal", "replace", "equal"]
    assert hunk["rows"][0]["a"] == ["line 7", "line 8", "line 9"]


def test_text_past_the_limit_is_not_diffed_and_says_so(monkeypatch) -> None:
    monkeypatch.setattr("dashboard.inspector.capture_diff.TEXT_LIMIT", 10)
    assert line_diff("x" * 11, "y")["cut"] is True


def test_binary_bodies_give_the_first_differing_byte() -> None:
    diff = body_diff(b"\x00\x01\x02\x03", b"\x00\x01\xff\x03\x04")
    assert (diff["kind"], diff["first_difference"], diff["a_size"], diff["b_size"]) == ("binary", 2, 4, 5)


def test_headers_are_matched_by_name_whatever_the_case() -> None:
    rows = header_diff(
        [("Content-Type", "application/json"), ("Stripe-Signature", "t=1,v1=aa"), ("X-Old", "1")],
        [("content-type", "application/json"), ("Stripe-Signature", "t=2,v1=bb"), ("X-New", "2")],
    )
    assert [(row["name"], row["change"]) for row in rows] == [
        ("Content-Type", "same"),
        ("Stripe-Signature", "changed"),
        ("X-Old", "removed"),
        ("X-New", "added"),
    ]


# --- the endpoints -------------------------------------------------------------------------------
def diff_of(client: Client, query: str) -> dict[str, Any]:
    response = client.get("/inspect/diff.json?" + query)
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_a_replay_alone_is_compared_with_its_original(client: Client, make_capture: Callable[..., Capture]) -> None:
    original = make_capture(
        method="POST",
        uri="/hooks",
        request=request_bytes("POST", "/hooks", headers={"Stripe-Signature": "t=1,v1=aa"}, body=ORIGINAL),
        response=response_bytes(200, headers={"Content-Type": "application/json"}, body=b'{"ok": true}'),
    )
    replay = make_capture(
        method="POST",
        uri="/hooks",
        request=request_bytes("POST", "/hooks", headers={"Stripe-Signature": "t=2,v1=bb"}, body=EDITED),
        response=response_bytes(400, headers={"Content-Type": "application/json"}, body=b'{"ok": false}'),
        status=400,
        replay_of=original.id,
    )
    diff = diff_of(client, f"b={replay.id}")
    assert (diff["a"]["id"], diff["b"]["id"]) == (original.id, replay.id)
    request_headers = {row["name"]: row["change"] for row in diff["request"]["headers"]}
    assert request_headers["Stripe-Signature"] == "changed"
    assert request_headers["Content-Length"] == "changed"
    assert diff["request"]["body"]["changes"][0]["path"] == "$.data.amount"
    assert diff["response"]["start_line"] == {"a": "HTTP/1.1 200 OK", "b": "HTTP/1.1 400 OK", "same": False}
    assert diff["response"]["body"]["changes"] == [{"path": "$.ok", "change": "changed", "a": "true", "b": "false"}]


def test_a_compressed_body_compares_by_its_content(client: Client, make_capture: Callable[..., Capture]) -> None:
    plain = make_capture(response=response_bytes(body=ORIGINAL))
    zipped = make_capture(response=response_bytes(headers={"Content-Encoding": "gzip"}, body=gzip.compress(ORIGINAL)))
    diff = diff_of(client, f"a={plain.id}&b={zipped.id}")
    assert diff["response"]["body"]["same"] is True
    assert not diff["response"]["same"]  # the headers differ: Content-Encoding, Content-Length


def test_a_capture_without_a_response_is_compared_on_its_request(
    client: Client, make_capture: Callable[..., Capture]
) -> None:
    done = make_capture()
    pending = make_capture(response=None, status=None)
    diff = diff_of(client, f"a={done.id}&b={pending.id}")
    assert diff["response"] is None
    assert diff["notes"] == ["no response to compare: b has none"]
    assert diff["request"]["same"] is True


def test_bad_pairs_are_refused_with_a_reason(client: Client, make_capture: Callable[..., Capture]) -> None:
    capture = make_capture()
    cases = {
        "": (400, "b is needed: /inspect/diff?a=<id>&b=<id>, or b=<a replay's id> alone"),
        f"b={capture.id}": (400, f"{capture.id} is not a replay: name the capture to compare it with as a"),
        "b=airt_nope": (404, "no capture 'airt_nope' is stored"),
        f"a=airt_nope&b={capture.id}": (404, "no capture 'airt_nope' is stored"),
    }
    for query, (status, message) in cases.items():
        response = client.get("/inspect/diff.json?" + query)
        assert (response.status_code, response.json()) == (status, {"error": message}), query


def page_boot(content: bytes) -> dict[str, Any]:
    return dict(json.loads(content.split(b'id="diff-boot" type="application/json">')[1].split(b"</script>")[0]))


def test_the_diff_page_carries_the_diff_for_its_script(client: Client, make_capture: Callable[..., Capture]) -> None:
    a, b = make_capture(uri="/a"), make_capture(uri="/b")
    response = client.get(f"/inspect/diff?a={a.id}&b={b.id}")
    assert response.status_code == 200
    assert page_boot(response.content)["diff"]["request"]["start_line"]["a"] == "GET /a HTTP/1.1"


def test_the_diff_page_shows_why_it_cannot_compare(client: Client, db: None) -> None:
    missing = client.get("/inspect/diff?b=airt_nope")
    assert missing.status_code == 404
    assert page_boot(missing.content)["error"] == "no capture 'airt_nope' is stored"
