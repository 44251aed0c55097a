"""The soak's clients, its API operator and the ledger that judges every answer and capture.

Each request carries a unique id (header X-Soak-Id). The ledger keeps, per id, what was sent (the
body's length and SHA-256, not the body) and knows the exact bytes the service must answer
(services.verdict_of), so "answered" means byte-equal to the service's own answer, and a capture is
"whole" when its request raw ends with the body sent and its response raw with that answer. A
request to the resetting path must instead get the agent's 502.

Clients (threads, each a loop until the stop event; every wait bounded by a timeout):
- webhooks: urllib POSTs of JSON (urllib always sends `Connection: close`), 4 at a time;
- one-shot: http.client, a new connection per request (curl, a browser's first visit);
- keep-alive: one requests.Session per thread, mixed methods, now and then a 64-300 KB body;
- pipelined: several requests in one write on a raw socket, responses read back in order;
- long-poll: requests that the service answers after seconds.
The operator uses the API as a person or a script does, every second or so, and checks that the
tunnel list always equals the tunnels the soak believes are running.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.soak.services import verdict_of
from tests.support.agent_process import AgentProcess
from tests.support.http_wire import read_response

TIMEOUT = 30.0  # per request; the long poll answers in 3 s, the agent's upstream timeout is 60 s
EXAMPLES = 5  # failures kept verbatim per kind and tunnel, for the report


@dataclass(frozen=True)
class Target:
    """A tunnel as the clients see it."""

    tunnel: str
    service: str
    host: str
    port: int
    resets: bool = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class Sent:
    service: str
    method: str
    target: str
    length: int
    sha256: str
    expect_reset: bool

    def expected_answer(self, soak_id: str) -> bytes:
        return verdict_of(self.service, soak_id, self.method, self.target, self.length, self.sha256)


@dataclass
class Ledger:
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, Sent] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    by_client: Counter[str] = field(default_factory=Counter)
    by_tunnel: Counter[str] = field(default_factory=Counter)  # answered, per tunnel
    examples: dict[str, list[str]] = field(default_factory=dict)
    captures_seen: set[str] = field(default_factory=set)
    _kept: Counter[tuple[str, str]] = field(default_factory=Counter)
    _serial: int = 0

    def clock(self) -> str:
        return f"t+{time.monotonic() - self.started:.1f}s"

    def note(self, kind: str, text: str, tunnel: str = "") -> None:
        with self.lock:
            self.counts[kind] += 1
            if tunnel:
                self.counts[f"{kind}:{tunnel}"] += 1
            self._kept[kind, tunnel] += 1
            if self._kept[kind, tunnel] <= EXAMPLES:
                where = f" on {tunnel}" if tunnel else ""
                self.examples.setdefault(kind, []).append(f"{self.clock()}{where}: {text}")

    def count(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.counts[kind] += n

    # --- requests -------------------------------------------------------------------------------
    def new_id(self, client: str) -> str:
        """A fresh request id, counted as sent."""
        with self.lock:
            self._serial += 1
            soak_id = f"{client}-{self._serial}"
            self.counts["sent"] += 1
            self.by_client[client] += 1
        return soak_id

    def register(self, soak_id: str, target: Target, method: str, path: str, body: bytes) -> None:
        sent = Sent(
            service=target.service,
            method=method,
            target=path,
            length=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            expect_reset=target.resets and path.startswith("/reset/"),
        )
        with self.lock:
            self.sent[soak_id] = sent

    def settle(self, soak_id: str, where: str, status: int | None, body: bytes | None, error: str = "") -> None:
        """Judges what came back for one request: `status`/`body`, or `error` if nothing did."""
        sent = self.sent[soak_id]
        what = f"{soak_id} {sent.method} {where}{sent.target}"
        if sent.expect_reset:
            if status == 502:
                self.count("reset_502")
            else:
                self.note(
                    "reset_not_502", f"{what}: expected the agent's 502, got {status} {error} {_cut(body)}", where
                )
            return
        if error:
            self.note("lost", f"{what}: {error}", where)
        elif status != 200 or body != sent.expected_answer(soak_id):
            self.note("lost", f"{what}: got {status} {_cut(body)}", where)
        else:
            with self.lock:
                self.counts["answered"] += 1
                self.by_tunnel[where] += 1

    # --- captures -------------------------------------------------------------------------------
    def check_capture(self, capture: dict[str, Any], *, final: bool) -> None:
        """A capture must hold the whole request and answer, or say that it does not."""
        # Every soak path ends with the request's id; the header says it too, if the capture kept it.
        soak_id = capture["request"]["uri"].split("?")[0].rsplit("/", 1)[-1]
        sent = self.sent.get(soak_id)
        tunnel = capture["tunnel_name"]
        where = f"capture {capture['id']} ({soak_id})"
        if sent is None:
            self.note("captures_unknown", f"{where}: not a request the soak sent: {capture['request']['uri']}", tunnel)
            return
        flagged = (
            capture.get("request_complete") is False
            or capture.get("response_complete") is False
            or bool(capture.get("incomplete_reason"))
        )
        response = capture.get("response")
        if response is None and not flagged and not final:
            return  # still in flight: judged later
        with self.lock:
            first_time = capture["id"] not in self.captures_seen
            self.captures_seen.add(capture["id"])
        self.count("capture_checks")
        if flagged:
            if first_time:
                self.note("captures_flagged", f"{where}: flagged {capture.get('incomplete_reason')!r}", tunnel)
            return
        problems = []
        raw = base64.b64decode(capture["request"]["raw"])
        tail = raw[len(raw) - sent.length :] if sent.length else b""
        if not raw.startswith(f"{sent.method} {sent.target} HTTP/1.1\r\n".encode()):
            problems.append(f"request raw does not start with the request line: {_cut(raw, 60)}")
        if hashlib.sha256(tail).hexdigest() != sent.sha256:
            problems.append(f"request raw ({len(raw)} bytes) does not end with the {sent.length}-byte body sent")
        if capture["request"]["headers"].get("X-Soak-Id") != [soak_id]:
            problems.append(f"headers lack X-Soak-Id: {soak_id}: {capture['request']['headers']}")
        if response is None:
            problems.append("no response, not flagged incomplete")
        elif sent.expect_reset:
            if response["status_code"] != 502:
                problems.append(f"reset path recorded {response['status_code']}, not 502")
        else:
            answer = sent.expected_answer(soak_id)
            response_raw = base64.b64decode(response["raw"])
            if response["status_code"] != 200 or not response_raw.endswith(answer):
                problems.append(f"response {response['status_code']} raw does not end with the service's answer")
        if problems and first_time:
            self.note("captures_bad", f"{where}: {'; '.join(problems)}", tunnel)
        elif not problems:
            self.count("capture_whole_checks")

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests_sent": self.counts["sent"],
                "answered": self.counts["answered"],
                "lost": self.counts["lost"],
                "reset_502": self.counts["reset_502"],
                "reset_not_502": self.counts["reset_not_502"],
                "captures_checked": len(self.captures_seen),
                "capture_checks": self.counts["capture_checks"],
                "captures_bad": self.counts["captures_bad"],
                "captures_flagged": self.counts["captures_flagged"],
                "captures_unknown": self.counts["captures_unknown"],
                "tunnel_list_checks": self.counts["tunnel_list_checks"],
                "tunnel_list_mismatches": self.counts["tunnel_list_mismatch"],
                "api_calls": self.counts["api_calls"],
                "api_errors": self.counts["api_error"],
                "tunnel_restarts": self.counts["tunnel_restarts"],
                "replays": self.counts["replays"],
                "failures_by_tunnel": {
                    kind: count for kind, count in sorted(self.counts.items()) if ":" in kind and count
                },
                "requests_by_client": dict(self.by_client),
                "answered_by_tunnel": dict(self.by_tunnel),
                "examples": {kind: list(texts) for kind, texts in self.examples.items()},
            }


def _cut(body: bytes | None, limit: int = 160) -> str:
    if body is None:
        return ""
    text = body[:limit].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > limit else ""))


def _body_for(soak_id: str, size: int) -> bytes:
    unit = soak_id.encode() + b";"
    return (unit * (size // len(unit) + 1))[:size]


def _size(rng: random.Random) -> int:
    return rng.randint(64 * 1024, 300 * 1024) if rng.random() < 0.05 else rng.randint(1, 2000)


# --- clients --------------------------------------------------------------------------------------


class Client(threading.Thread):
    """A loop of requests until `stop` is set; `pause` seconds between them."""

    kind = ""
    pause = 0.0

    def __init__(self, index: int, ledger: Ledger, stop: threading.Event, targets: list[Target]) -> None:
        super().__init__(name=f"{self.kind}-{index}", daemon=True)
        self.ledger = ledger
        self.stop = stop
        self.targets = targets
        self.rng = random.Random(f"{self.kind}-{index}")
        self.crash = ""

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.once()
                if self.pause:
                    self.stop.wait(self.pause)
        except Exception as error:  # a bug in the harness itself: reported, never swallowed
            self.crash = f"{self.name}: {error!r}"
            self.ledger.note("harness_crash", self.crash)
        finally:
            self.close()

    def once(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def request(self, target: Target, method: str, prefix: str, size: int = 0) -> tuple[str, str, bytes]:
        """A fresh id, the path `prefix/id` and a body of `size` bytes, registered in the ledger."""
        soak_id = self.ledger.new_id(self.name)
        path = f"{prefix}/{soak_id}"
        body = _body_for(soak_id, size)
        self.ledger.register(soak_id, target, method, path, body)
        return soak_id, path, body


class WebhookClient(Client):
    """urllib POSTs of JSON with `Connection: close`, as webhook senders do: in bursts of back-to-back
    deliveries to one tunnel (a provider flushing its queue), then a pause."""

    kind = "webhook"
    burst = 20
    pause = 0.5  # after each burst: 4 senders stay near 100 new connections/s, far from port exhaustion

    def once(self) -> None:
        target = self.rng.choice(self.targets)
        for _ in range(self.burst):
            if self.stop.is_set():
                return
            self.deliver(target)

    def deliver(self, target: Target) -> None:
        soak_id = self.ledger.new_id(self.name)
        path = f"/hook/{soak_id}"
        body = json.dumps({"event": "invoice.paid", "id": soak_id, "pad": "x" * self.rng.randint(0, 3000)}).encode()
        self.ledger.register(soak_id, target, "POST", path, body)
        request = urllib.request.Request(
            target.url + path, data=body, headers={"Content-Type": "application/json", "X-Soak-Id": soak_id}
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                self.ledger.settle(soak_id, target.tunnel, response.status, response.read())
        except urllib.error.HTTPError as error:
            self.ledger.settle(soak_id, target.tunnel, error.code, error.read())
        except OSError as error:
            self.ledger.settle(soak_id, target.tunnel, None, None, f"{type(error).__name__}: {error}")


class OneShotClient(Client):
    """http.client, one new connection per request."""

    kind = "oneshot"
    pause = 0.03

    def once(self) -> None:
        target = self.rng.choice(self.targets)
        method = self.rng.choice(["GET", "GET", "POST", "DELETE"])
        prefix = "/reset" if target.resets and self.rng.random() < 0.3 else "/one"
        soak_id, path, body = self.request(target, method, prefix, size=_size(self.rng) if method == "POST" else 0)
        connection = http.client.HTTPConnection(target.host, target.port, timeout=TIMEOUT)
        try:
            connection.request(method, path, body=body or None, headers={"X-Soak-Id": soak_id})
            response = connection.getresponse()
            self.ledger.settle(soak_id, target.tunnel, response.status, response.read())
        except (OSError, http.client.HTTPException) as error:
            self.ledger.settle(soak_id, target.tunnel, None, None, f"{type(error).__name__}: {error}")
        finally:
            connection.close()


class KeepAliveClient(Client):
    """One requests.Session (a pool of keep-alive connections) for everything this thread sends."""

    kind = "keepalive"
    pause = 0.005

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.session = requests.Session()

    def once(self) -> None:
        target = self.rng.choice(self.targets)
        method = self.rng.choice(["GET", "POST", "PUT", "PATCH", "GET"])
        prefix = "/reset" if target.resets and self.rng.random() < 0.2 else "/ka"
        size = _size(self.rng) if method in ("POST", "PUT", "PATCH") else 0
        soak_id, path, body = self.request(target, method, prefix, size=size)
        try:
            response = self.session.request(
                method, target.url + path, data=body or None, headers={"X-Soak-Id": soak_id}, timeout=TIMEOUT
            )
            self.ledger.settle(soak_id, target.tunnel, response.status_code, response.content)
        except requests.RequestException as error:
            self.ledger.settle(soak_id, target.tunnel, None, None, f"{type(error).__name__}: {error}")

    def close(self) -> None:
        self.session.close()


class LongPollClient(KeepAliveClient):
    kind = "longpoll"
    pause = 0.0

    def once(self) -> None:
        target = self.rng.choice(self.targets)
        method = self.rng.choice(["GET", "POST"])
        soak_id, path, body = self.request(target, method, "/poll/3", size=200 if method == "POST" else 0)
        try:
            response = self.session.request(
                method, target.url + path, data=body or None, headers={"X-Soak-Id": soak_id}, timeout=TIMEOUT
            )
            self.ledger.settle(soak_id, target.tunnel, response.status_code, response.content)
        except requests.RequestException as error:
            self.ledger.settle(soak_id, target.tunnel, None, None, f"{type(error).__name__}: {error}")


class PipelinedClient(Client):
    """Batches of requests in one write on a raw socket; the answers must come back in order."""

    kind = "pipelined"
    pause = 0.05
    batch = 5
    batches_per_connection = 20

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sock: socket.socket | None = None
        self.target: Target | None = None
        self.used = 0

    def once(self) -> None:
        if self.sock is None or self.used >= self.batches_per_connection:
            self.close()
            self.target = self.rng.choice(self.targets)
            self.sock = socket.create_connection((self.target.host, self.target.port), timeout=TIMEOUT)
            self.reader = self.sock.makefile("rb")
            self.used = 0
        assert self.target is not None
        target, self.used = self.target, self.used + 1
        batch = []
        payload = b""
        for _ in range(self.batch):
            method = self.rng.choice(["GET", "POST"])
            size = self.rng.randint(0, 3000) if method == "POST" else 0
            soak_id, path, body = self.request(target, method, "/pipe", size=size)
            head = f"{method} {path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\nX-Soak-Id: {soak_id}\r\n"
            if method == "POST":
                head += f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
            payload += head.encode() + b"\r\n" + body
            batch.append((soak_id, method))
        try:
            self.sock.sendall(payload)
        except OSError as error:
            for soak_id, _ in batch:
                self.ledger.settle(soak_id, target.tunnel, None, None, f"pipelined write failed: {error!r}")
            self.close()
            return
        for position, (soak_id, method) in enumerate(batch):
            try:
                response = read_response(self.reader, method=method)
            except (OSError, ValueError) as error:
                response, failure = None, f"{type(error).__name__}: {error}"
            else:
                failure = "" if response else "connection closed"
            if response is None:
                for later, _ in batch[position:]:
                    self.ledger.settle(
                        soak_id=later,
                        where=target.tunnel,
                        status=None,
                        body=None,
                        error=f"pipelined answer {position + 1} of {self.batch}: {failure}",
                    )
                self.close()
                return
            self.ledger.settle(soak_id, target.tunnel, response.status, response.body)
            if response.wants_close():
                for later, _ in batch[position + 1 :]:
                    self.ledger.settle(
                        later, target.tunnel, None, None, f"closed after pipelined answer {position + 1}"
                    )
                self.close()
                return

    def close(self) -> None:
        if self.sock is not None:
            self.reader.close()
            self.sock.close()
            self.sock = None


# --- the operator ---------------------------------------------------------------------------------


class Operator(threading.Thread):
    """Uses the API every `pause` seconds: lists and reads tunnels and captures, replays one, and
    now and then stops the `cycle` tunnel and starts it again under the same name."""

    def __init__(
        self,
        agent: AgentProcess,
        ledger: Ledger,
        stop: threading.Event,
        running: dict[str, str],
        cycle: Callable[[], dict[str, Any]],
        pause: float = 1.0,
    ) -> None:
        super().__init__(name="operator", daemon=True)
        self.agent = agent
        self.ledger = ledger
        self.stop = stop
        self.running = running  # name -> public_url: what the soak believes is running
        self.cycle_definition = cycle
        self.pause = pause
        self.crash = ""
        self.rng = random.Random("operator")

    def call(self, method: str, path: str, expected: int, body: Any = None, **kwargs: Any) -> Any:
        self.ledger.count("api_calls")
        try:
            response = self.agent.api(method, path, body, **kwargs)
        except requests.RequestException as error:
            self.ledger.note("api_error", f"{method} {path}: {error!r}")
            return None
        if response.status_code != expected:
            self.ledger.note("api_error", f"{method} {path}: {response.status_code} {response.text[:300]}")
            return None
        return response.json() if response.content else {}

    def check_tunnel_list(self) -> None:
        listed = self.call("GET", "/api/tunnels", 200)
        if listed is None:
            return
        self.ledger.count("tunnel_list_checks")
        seen = {tunnel["name"]: tunnel["public_url"] for tunnel in listed["tunnels"]}
        if seen != self.running:
            missing = sorted(set(self.running) - set(seen))
            extra = sorted(set(seen) - set(self.running))
            moved = sorted(name for name in set(seen) & set(self.running) if seen[name] != self.running[name])
            self.ledger.note(
                "tunnel_list_mismatch", f"API lists {sorted(seen)}; missing {missing}, extra {extra}, moved {moved}"
            )

    def run(self) -> None:
        steps = [self.tunnel_detail, self.captures, self.replay, self.captures, self.tunnel_detail]
        step = 0
        try:
            while not self.stop.wait(self.pause):
                self.check_tunnel_list()
                if step % 12 == 11:
                    self.restart_cycle()
                else:
                    steps[step % len(steps)]()
                step += 1
        except Exception as error:
            self.crash = f"operator: {error!r}"
            self.ledger.note("harness_crash", self.crash)

    def tunnel_detail(self) -> None:
        name = self.rng.choice(sorted(self.running))
        detail = self.call("GET", "/api/tunnels/" + name, 200)
        if detail is not None and (detail["name"], detail["public_url"]) != (name, self.running[name]):
            self.ledger.note("api_error", f"GET /api/tunnels/{name} answered {detail['name']} {detail['public_url']}")

    def captures(self) -> None:
        listed = self.call("GET", "/api/requests/http", 200, params={"limit": "200"})
        if listed is None:
            return
        for capture in listed["requests"]:
            self.ledger.check_capture(capture, final=False)
        if listed["requests"]:
            chosen = self.rng.choice(listed["requests"])
            detail = self.call("GET", chosen["uri"], 200)
            if detail is not None:
                if detail["id"] != chosen["id"]:
                    self.ledger.note("api_error", f"GET {chosen['uri']} answered capture {detail['id']}")
                self.ledger.check_capture(detail, final=False)

    def replay(self) -> None:
        listed = self.call("GET", "/api/requests/http", 200, params={"limit": "50", "tunnel_name": "threaded"})
        if not listed:
            return
        candidates = [c for c in listed["requests"] if c["response"] and c["request"]["method"] == "POST"]
        if candidates:
            chosen = self.rng.choice(candidates)
            if self.call("POST", "/api/requests/http", 204, {"id": chosen["id"]}) is not None:
                self.ledger.count("replays")

    def restart_cycle(self) -> None:
        """Stop `cycle` and start it again under the same name; then it must carry a request."""
        if self.call("DELETE", "/api/tunnels/cycle", 204) is None:
            return
        del self.running["cycle"]
        self.check_tunnel_list()
        tunnel = self.call("POST", "/api/tunnels", 201, self.cycle_definition())
        if tunnel is None:
            return
        self.running["cycle"] = tunnel["public_url"]
        self.ledger.count("tunnel_restarts")
        self.check_tunnel_list()
        host, port = tunnel["public_url"].removeprefix("http://").rsplit(":", 1)
        target = Target("cycle", "threaded", host, int(port))
        soak_id = self.ledger.new_id("operator")
        path = f"/after-restart/{soak_id}"
        body = b'{"after": "restart"}'
        self.ledger.register(soak_id, target, "POST", path, body)
        try:
            response = requests.post(target.url + path, data=body, headers={"X-Soak-Id": soak_id}, timeout=TIMEOUT)
            self.ledger.settle(soak_id, "cycle", response.status_code, response.content)
        except requests.RequestException as error:
            self.ledger.settle(soak_id, "cycle", None, None, f"{type(error).__name__}: {error}")
