"""The storage line ("N captures, X MB of 50 MB") without a whole-table count per page load: one
full count, then only the rows stored since, a full count again when rows left (at most every
MIN_RECOUNT_SECONDS) or every RECOUNT_SECONDS."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from agentapi.models import Capture
from dashboard.inspector.storage_use import (
    MIN_RECOUNT_SECONDS,
    RECOUNT_SECONDS,
    StorageTally,
    StorageUse,
    storage_line,
    storage_use,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def full_counts(queries: CaptureQueriesContext) -> int:
    """Queries that count the whole table (a COUNT with no id range)."""
    return sum(1 for q in queries.captured_queries if "COUNT(" in q["sql"] and '"id" >' not in q["sql"])


def stored(capture: Capture) -> int:
    return capture.stored_size


def test_the_first_read_counts_once_then_adds_only_new_rows(make_capture: Callable[..., Capture], clock: Clock) -> None:
    tally = StorageTally(clock)
    first = [make_capture() for _ in range(3)]
    with CaptureQueriesContext(connection) as queries:
        assert tally.read() == (3, sum(map(stored, first)), True)
    assert full_counts(queries) == 1
    later = [make_capture() for _ in range(2)]
    clock.now += 10
    with CaptureQueriesContext(connection) as queries:
        assert tally.read() == (5, sum(map(stored, first + later)), True)
        assert tally.read() == (5, sum(map(stored, first + later)), True)
    assert full_counts(queries) == 0


def test_evicted_rows_make_the_line_approximate_until_the_next_count(
    make_capture: Callable[..., Capture], clock: Clock
) -> None:
    tally = StorageTally(clock)
    captures = [make_capture() for _ in range(4)]
    tally.read()
    Capture.objects.filter(id__lte=captures[1].id).delete()  # the store evicts the oldest
    clock.now += MIN_RECOUNT_SECONDS - 1
    count, _, exact = tally.read()
    assert (count, exact) == (4, False)
    clock.now += 1
    assert tally.read() == (2, sum(map(stored, captures[2:])), True)


def test_a_clear_is_counted_at_once(make_capture: Callable[..., Capture], clock: Clock) -> None:
    tally = StorageTally(clock)
    make_capture()
    tally.read()
    Capture.objects.all().delete()
    assert tally.read() == (0, 0, True)
    made = make_capture()
    assert tally.read() == (1, made.stored_size, True)


def test_a_row_deleted_from_the_middle_is_seen_at_the_periodic_count(
    make_capture: Callable[..., Capture], clock: Clock
) -> None:
    tally = StorageTally(clock)
    captures = [make_capture() for _ in range(3)]
    tally.read()
    captures[1].delete()
    assert tally.read()[0] == 3
    clock.now += RECOUNT_SECONDS
    assert tally.read()[0] == 2


@pytest.mark.parametrize(
    ("use", "line"),
    [
        (StorageUse(1234, 12_345_678, 50_000_000, True), "1,234 captures, 12 MB of 50 MB"),
        (StorageUse(1, 1_500_000, 50_000_000, True), "1 capture, 1.5 MB of 50 MB"),
        (StorageUse(3, 2_000, 50_000_000, False), "about 3 captures, < 0.1 MB of 50 MB"),
        (StorageUse(0, 0, 0, True), "0 captures, 0 MB (no size limit)"),
        (StorageUse(5, 3_000_000, None, True), "5 captures, 3 MB (this agent stores no new captures)"),
        (
            StorageUse(40, 42_000_000, 50_000_000, True, dropped=1234),
            "40 captures, 42 MB of 50 MB; 1,234 not kept: the database could not keep up",
        ),
        (
            StorageUse(40, 42_000_000, 50_000_000, True, cut=1500),
            "40 captures, 42 MB of 50 MB; 1,500 cut to 64 KiB a message: the database could not keep up",
        ),
        (
            StorageUse(40, 42_000_000, 50_000_000, True, dropped=3, cut=1500),
            "40 captures, 42 MB of 50 MB; 3 not kept, 1,500 cut to 64 KiB a message: the database could not keep up",
        ),
    ],
)
def test_the_storage_line_reads_as_people_say_it(use: StorageUse, line: str) -> None:
    assert storage_line(use) == line


def test_without_an_agent_the_budget_is_the_setting(
    make_capture: Callable[..., Capture], clock: Clock, settings
) -> None:
    settings.AGENT_INSPECT_DB_SIZE = 20_000_000
    make_capture()
    use = storage_use(StorageTally(clock))
    assert use.budget == 20_000_000
    assert use.as_json()["line"].endswith(" of 20 MB")


@pytest.mark.django_db
def test_the_status_page_and_the_storage_endpoint_show_the_line(client: Client, settings) -> None:
    settings.AGENT_INSPECT_DB_SIZE = 50_000_000
    answer = client.get("/inspect/storage.json").json()
    assert answer["line"].endswith(" of 50 MB") and answer["budget"] == 50_000_000
    page = client.get("/status").content
    boot = json.loads(page.split(b'id="status-extras" type="application/json">')[1].split(b"</script>")[0])
    assert boot["storage"]["line"] == answer["line"]
    assert answer["line"].encode() in page


@pytest.mark.django_db
def test_the_storage_endpoint_counts_captures_not_kept_and_kept_in_part(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the running agent says (AgentRuntime.captures_dropped/captures_cut, workers included)
    # reaches the JSON and the line; the sink's own counting is tested in test_capture_sink_batching.
    from types import SimpleNamespace

    from dashboard.inspector import storage_use as module

    runtime = SimpleNamespace(inspect_db_size=50_000_000, captures_dropped=2, captures_cut=7)
    monkeypatch.setattr(module, "current_runtime", lambda: runtime)
    answer = client.get("/inspect/storage.json").json()
    assert (answer["dropped"], answer["cut"]) == (2, 7)
    assert answer["line"].endswith("; 2 not kept, 7 cut to 64 KiB a message: the database could not keep up")
