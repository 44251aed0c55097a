"""Migration 0008: on SQLite the capture table is rebuilt with its byte columns last, rows and
indexes kept; elsewhere it changes nothing in the database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("agentapi", "0007_websocket_frames")]
AFTER = [("agentapi", "0008_capture_bytes_last")]


def migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.fixture
def before_0008() -> Iterator[None]:
    migrate(BEFORE)
    yield
    migrate(executor_leaves())


def executor_leaves() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def columns() -> list[str]:
    with connection.cursor() as cursor:
        return [c.name for c in connection.introspection.get_table_description(cursor, "agentapi_capture")]


def indexes() -> set[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "agentapi_capture")
    return {name for name, c in constraints.items() if c["index"] and not c["primary_key"] and not c["unique"]}


def test_the_rows_survive_and_on_sqlite_the_bytes_come_last(before_0008: None) -> None:
    order_before, indexes_before = columns(), indexes()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO agentapi_capture (id, tunnel_name, remote_addr, start, duration_ns, method, uri,"
            " request_raw, request_size, response_raw, response_size, status_code, stored_size, replay_of,"
            " incomplete_reason, request_complete, response_complete, policy_action, policy_trace)"
            " VALUES ('airt_1', 'web', '::1', '2026-11-30 09:00:00', 5, 'POST', '/a', %s, 3, %s, 10, 201, 13,"
            " '', 'cut', false, true, 'deny', '[]')",
            [b"req", b"\x00\xffresponse"],
        )
    migrate(AFTER)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, request_raw, response_raw, status_code, incomplete_reason, request_complete,"
            " policy_action FROM agentapi_capture"
        )
        (row,) = cursor.fetchall()
    assert (row[0], bytes(row[1]), bytes(row[2]), row[3], row[4], bool(row[5]), row[6]) == (
        "airt_1", b"req", b"\x00\xffresponse", 201, "cut", False, "deny",
    )  # fmt: skip
    assert indexes() == indexes_before
    if connection.vendor == "sqlite":
        assert columns()[-2:] == ["request_raw", "response_raw"]
        assert sorted(columns()) == sorted(order_before)
    else:
        assert columns() == order_before
