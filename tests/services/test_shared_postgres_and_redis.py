"""The multi-process setup for real: agents sharing one PostgreSQL and one Redis.

These talk to the services named by DATABASE_URL and REDIS_URL (defaults: the local ones). When the
services are down the tests fail, loudly: a skipped test would hide a broken deployment mode.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
import requests
from channels_redis.pubsub import RedisPubSubChannelLayer

from tests.integration.test_http_tunnel import wait_for_captures
from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream

pytestmark = pytest.mark.services

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL server of DATABASE_URL, dropped afterwards."""
    try:
        admin = psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL at {DATABASE_URL} is not reachable (start it; see README): {error}")
    name = f"agent_e2e_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(DATABASE_URL)
    yield urlunsplit(parts._replace(path="/" + name))
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable (start it; see README): {error}")
    return REDIS_URL


def test_two_agents_share_tunnels_and_captures_through_postgres(
    tmp_path, upstream: Upstream, database_url: str, redis_url: str
) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
    first = AgentProcess(tmp_path / "one", env=env).start()
    second = AgentProcess(tmp_path / "two", env=env).start()
    try:
        tunnel = first.start_tunnel(name="shared", proto="http", addr=str(upstream.port))
        assert requests.post(tunnel["public_url"] + "/pg", data=b"\x00\xffbinary", timeout=10).ok
        [capture] = wait_for_captures(second, 1)  # written by the first, read by the second
        assert capture["tunnel_name"] == "shared"
        assert base64.b64decode(capture["request"]["raw"]).endswith(b"\r\n\r\n\x00\xffbinary")
        names = [t["name"] for t in second.api("GET", "/api/tunnels").json()["tunnels"]]
        assert names == ["shared"]
        duplicate = second.api("POST", "/api/tunnels", {"name": "shared", "addr": "1"})
        assert duplicate.status_code == 400
        assert duplicate.json()["details"]["err"] == 'tunnel "shared" already exists'
        assert requests.get(tunnel["public_url"] + "/second-request", timeout=10).ok
        # The second agent routes the stop over Redis to the first, which holds the listener.
        assert second.api("DELETE", "/api/tunnels/shared").status_code == 204
        with pytest.raises(requests.ConnectionError):
            requests.get(tunnel["public_url"] + "/gone", timeout=10)
        assert first.api("GET", "/api/tunnels").json()["tunnels"] == []
        assert second.api("DELETE", "/api/tunnels/shared").status_code == 404
    finally:
        first.stop()
        second.stop()
    # The first agent removed its rows when it stopped.
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM agentapi_tunnel").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM agentapi_capture").fetchone() == (2,)


def test_captures_are_announced_on_the_redis_channel_layer(
    tmp_path, upstream: Upstream, database_url: str, redis_url: str
) -> None:
    agent = AgentProcess(tmp_path / "one", env={"DATABASE_URL": database_url, "REDIS_URL": redis_url}).start()

    async def listen() -> dict:
        layer = RedisPubSubChannelLayer(hosts=[redis_url])
        channel = await layer.new_channel()
        await layer.group_add("captures", channel)
        try:
            tunnel = await asyncio.to_thread(agent.start_tunnel, name="web", proto="http", addr=str(upstream.port))
            await asyncio.to_thread(requests.get, tunnel["public_url"] + "/announced", timeout=10)
            return await asyncio.wait_for(layer.receive(channel), 10)
        finally:
            await layer.group_discard("captures", channel)
            await layer.flush()

    try:
        message = asyncio.run(listen())
    finally:
        agent.stop()
    assert message["type"] == "captures.stored"
    [summary] = message["created"] or message["updated"]
    assert summary["uri"] == "/announced"
    assert summary["status_code"] == 200


def test_capture_ids_sort_bytewise_on_postgresql(database_url: str, tmp_path) -> None:
    agent = AgentProcess(tmp_path / "one", env={"DATABASE_URL": database_url}).start()  # migrates
    agent.stop()
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "INSERT INTO agentapi_capture (id, tunnel_name, remote_addr, start, duration_ns, method, uri,"
            " request_raw, request_size, stored_size, replay_of) VALUES"
            " ('airt_a', 't', '', now(), 0, 'GET', '/', '', 0, 0, ''),"
            " ('airt_Z', 't', '', now(), 0, 'GET', '/', '', 0, 0, '')"
        )
        ordered = [r[0] for r in connection.execute("SELECT id FROM agentapi_capture ORDER BY id")]
        assert ordered == ["airt_Z", "airt_a"]  # bytewise, whatever the database's collation


def test_rows_of_an_agent_that_died_on_another_host_are_removed(database_url: str, tmp_path) -> None:
    AgentProcess(tmp_path / "migrate", env={"DATABASE_URL": database_url}).start().stop()
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "INSERT INTO agentapi_tunnel (name, tunnel_id, proto, public_url, addr, inspect, definition, agent_id,"
            " agent_channel, heartbeat, created) VALUES"
            " ('dead', 'a1', 'http', 'http://10.9.9.9:1', 'http://localhost:1', true, '{}', 'elsewhere:1:x', '',"
            "  now() - interval '10 minutes', now()),"
            " ('alive', 'a2', 'http', 'http://10.9.9.9:2', 'http://localhost:2', true, '{}', 'elsewhere:2:y', '',"
            "  now(), now())"
        )
    agent = AgentProcess(tmp_path / "one", env={"DATABASE_URL": database_url}).start()
    try:
        names = [t["name"] for t in agent.api("GET", "/api/tunnels").json()["tunnels"]]
    finally:
        agent.stop()
    assert names == ["alive"]  # the other host's agent that still beats keeps its tunnel
