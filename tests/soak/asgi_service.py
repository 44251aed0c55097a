"""The soak's ASGI service (run by uvicorn in a subprocess): answers every request with the verdict
services.py defines, from what it received."""

from __future__ import annotations

from typing import Any

from tests.soak.services import verdict


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"]
            await send({"type": kind + ".complete"})  # lifespan.startup / lifespan.shutdown
            if kind == "lifespan.shutdown":
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    headers = dict(scope["headers"])
    target = scope["raw_path"].decode("latin-1")
    if scope["query_string"]:
        target += "?" + scope["query_string"].decode("latin-1")
    soak_id = headers.get(b"x-soak-id", b"").decode("latin-1")
    answer = verdict("asgi", soak_id, scope["method"], target, body)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
                (b"x-soak-id", soak_id.encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer if scope["method"] != "HEAD" else b""})
