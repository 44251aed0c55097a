"""The inspector's list says which captures the Traffic Policy answered instead of the service."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client

from agentapi.models import Capture

LIMITED = [
    {
        "phase": "on_http_request",
        "rule": "limit",
        "action": "rate-limit",
        "outcome": "429, bucket 1.2.3.4",
        "terminal": True,
    }
]


def test_each_row_names_the_action_that_answered_or_nothing(
    client: Client, make_capture: Callable[..., Capture]
) -> None:
    served = make_capture(uri="/served")
    limited = make_capture(uri="/limited", status=429)
    limited.policy_trace, limited.policy_action = LIMITED, "rate-limit"
    limited.save(update_fields=["policy_trace", "policy_action"])
    rows = {row["id"]: row for row in client.get("/inspect/captures.json").json()["captures"]}
    assert rows[limited.id]["policy_action"] == "rate-limit"
    assert rows[served.id]["policy_action"] == ""
    # The page's first rows (rendered into it) carry the same mark.
    boot = client.get("/inspect/http").context["boot"]
    assert [row["policy_action"] for row in boot["page"]["captures"]] == ["rate-limit", ""]
