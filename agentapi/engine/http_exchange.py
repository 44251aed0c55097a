"""One request and its response crossing an HTTP tunnel: the exchange's state, and how it is
relayed between its public connection (http_proxy.py) and an upstream connection (upstream.py).

States: each side moves forward only.

  request    RECEIVING --whole request read--> COMPLETE

  response   AWAITING --first byte from the service--> STARTED --end of response--> FINISHED
               |                                          `--101 to its Upgrade--> UPGRADED (raw pipe)
               |--the Traffic Policy answers--> REFUSED  (custom-response, deny, 401...: never forwarded)
               `--the service fails first--> FAILED   (the agent's 502/504, recorded as the response)

  The agent's own answers (REFUSED, FAILED) sort below AWAITING, the service's (STARTED, UPGRADED,
  FINISHED) above it: `response < AWAITING` means "answered by the agent" (the rest of the request
  is read and dropped), `response >= STARTED` means "the service's response is under way".

Rules:
- The request head goes upstream rebuilt (http1.forwarded_head); body bytes follow as llhttp hands
  them over (re-chunked if they came chunked). Until an upstream is attached (dialling, waiting
  behind pipelined requests, re-dialling for a retry) they are buffered and the client's reading
  is paused (WAITING). The response is forwarded as the service's bytes, untouched.
- What went upstream is kept, up to RETRY_KEEP_BYTES, until the response starts, so the request can
  be sent again on a fresh connection: only after a reused connection was lost, only once, only
  before any answer, never an Upgrade; any method when the service's reset shows it never read the
  request (`unread`), else a replayable one (GET, HEAD, OPTIONS, TRACE or an Idempotency-Key) that
  was sent whole (Go's Transport rule). Nothing else is retried.
- The response timeout runs from the end of the request (uploads take what they take) until the
  first byte of the answer: none in time is the agent's 504. The exchange keeps only its
  `deadline`; the public connection's one timer watches it (no timer made and cancelled per
  request).
- The service failing before it answered (refused, reset, closed, malformed, oversized head,
  silent) gives the client the agent's page (FAILED); after it answered, closing the public
  connection is the only honest signal, and the record says the response broke off.
- The upstream goes back to the pool only after a COMPLETE HTTP/1.1 request that its answer did not
  overtake (`answered_early`), a keep-alive response and nothing left unsent (a service closes
  after answering HTTP/1.0 even when its answer does not say so). The public connection stays
  open only if the client asked, the request was read whole and no Upgrade was declined.
- Every upstream leaves the exchange through FlowControl.detach (pauses undone both ways).
- Traffic Policy (only for an endpoint that has one; the rest pay one `is None` test): the
  request phase runs when the exchange begins, on the request head, or once the whole body is in
  when an action needs it (verify-webhook; up to `policy_body_limit` bytes, else 413). Its changes
  go upstream (http_policy.policy_head); its answer (REFUSED) is captured with the request as
  received and the rest of the body read into the capture; close-connection closes without an
  answer (recorded as 444, nginx's "closed without response"); forward-internal sends the request
  to an internal endpoint's service through that endpoint's own policy (`route`). The response
  phase runs on the final response head: changed fields are written back, a custom-response
  replaces the service's answer (its connection is closed, not reused). Each capture keeps the
  steps in `policy_trace`.
- The capture is handed to the sink when the exchange begins (head first, then the body bytes
  that waited) and once more when it completes. It says whether each message crossed whole: a
  request the client cut or the answer overtook, a response cut by either side; a client that
  left before any answer is recorded as 499 (nginx's Client Closed Request).
- After a 101 to a WebSocket Upgrade of a captured exchange, the piped bytes are written on first
  and then shown to the record's FrameRecorder (websocket_frames.py: frame headers read, a budgeted
  payload prefix copied); new frames go to the sink by `sink.frames(record)`. Any other pipe, or
  an exchange without a capture, pays one `is None` test per read.
"""

from __future__ import annotations

import enum
import logging
import time
from typing import TYPE_CHECKING

from .capture_record import CaptureRecord
from .exchange_policy import ExchangePolicy
from .flow_control import WAITING
from .http1 import (
    CLIENT_CLOSED_REQUEST,
    LAST_CHUNK,
    RequestHead,
    chunk,
    error_response,
    final_head_span,
    forwarded_head,
    parse_stored_head,
)
from .http_policy import answer_bytes, policy_head, request_facts, request_head_bytes, response_head_bytes
from .policy.actions.base import REQUEST, RESPONSE
from .policy.facts import ResponseFacts
from .policy.outcomes import CloseConnection, ForwardInternal, Outcome, Respond
from .policy.response_compression import compressed_head
from .response_transform import CompressedBody
from .upstream_dial import dial_error
from .websocket_frames import CLIENT as FROM_CLIENT
from .websocket_frames import SERVER as FROM_SERVER
from .websocket_frames import FrameRecorder

if TYPE_CHECKING:
    from .http_proxy import ClientConnection, TunnelContext
    from .upstream import UpstreamConnection

log = logging.getLogger(__name__)

# Request bytes kept until the response starts, so a request that a reused connection lost before
# the service read it can be sent again on a fresh one; a larger request is not retried.
RETRY_KEEP_BYTES = 64 * 1024

# Methods a request may be sent twice with (Go's Transport rule); others need an Idempotency-Key.
_REPLAYABLE = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})

# nginx's status for a connection closed without a response (close-connection).
CLOSED_WITHOUT_RESPONSE = 444
# forward-internal hops followed at most (an internal endpoint may forward again).
MAX_INTERNAL_HOPS = 5


def _too_large(limit: int) -> Respond:
    body = b"The request body is larger than the %d bytes the traffic policy reads.\n" % limit
    return Respond(413, [("Content-Type", "text/plain")], body)


class RequestState(enum.IntEnum):
    RECEIVING = 0  # head read; body bytes may still come
    COMPLETE = 1  # the whole request was read from the client


class ResponseState(enum.IntEnum):
    REFUSED = -2  # answered by the Traffic Policy; never forwarded
    FAILED = -1  # the service failed before answering: the agent's error page
    AWAITING = 0
    STARTED = 1  # the service's bytes are being forwarded
    UPGRADED = 2  # the service accepted the Upgrade: a raw pipe both ways
    FINISHED = 3  # the service's response ended


# Module-level names: the hot path compares against these (a class attribute lookup costs more).
RECEIVING, COMPLETE = RequestState.RECEIVING, RequestState.COMPLETE
REFUSED, FAILED, AWAITING = ResponseState.REFUSED, ResponseState.FAILED, ResponseState.AWAITING
STARTED, UPGRADED, FINISHED = ResponseState.STARTED, ResponseState.UPGRADED, ResponseState.FINISHED


class Exchange:
    """One request/response on a public connection."""

    __slots__ = (
        "answered_early",
        "buffered",
        "client",
        "deadline",
        "final_head_due",
        "forwarded",
        "frames",
        "gathered_size",
        "gathering",
        "head",
        "held",
        "policy",
        "record",
        "recorded",
        "request",
        "response",
        "retried",
        "route",
        "sent",
        "sent_size",
        "started_ns",
        "transform",
        "upstream",
    )

    def __init__(self, client: ClientConnection, head: RequestHead, record: CaptureRecord | None) -> None:
        self.client = client
        self.head = head
        self.record = record
        self.recorded = False  # handed to the sink (only exchanges that began)
        self.started_ns = time.perf_counter_ns()
        self.request = RECEIVING
        self.response = AWAITING
        self.answered_early = False  # the service answered before the whole request reached it
        self.retried = False
        self.buffered: list[bytes] = []  # request bytes for an upstream not attached yet
        # Bytes after an Upgrade request's head: they belong to the new protocol, so they wait
        # for the upstream's 101 and are dropped if it declines.
        self.held: list[bytes] | None = None
        self.frames: FrameRecorder | None = None  # a captured WebSocket's frames, after its 101
        self.upstream: UpstreamConnection | None = None
        # When the response timeout fires (loop time; 0.0: not running). The connection's one
        # timer watches it (ClientConnection.watch_response): no timer per request.
        self.deadline = 0.0
        self.forwarded = b""  # the request head as sent upstream
        # What went upstream so far, kept (up to RETRY_KEEP_BYTES) until the response starts.
        self.sent: list[bytes] | None = []
        self.sent_size = 0
        # Traffic Policy: the exchange's run (from `begin`), the endpoint whose service answers
        # (forward-internal changes it), the body read whole for an action that needs it, and
        # whether the response phase waits for the final response head.
        ctx = client.ctx
        self.policy: ExchangePolicy | None = None
        self.route: TunnelContext = ctx
        policy = ctx.spec.policy
        self.gathering: list[bytes] | None = [] if policy is not None and policy.needs_request_body else None
        self.gathered_size = 0
        self.final_head_due = False
        self.transform: CompressedBody | None = None  # compress-response at work

    def __repr__(self) -> str:
        return f"<Exchange {self.head.method.decode('latin-1')} {self.request.name} {self.response.name}>"

    # --- the request, as the client sends it ------------------------------------------------
    def begin(self) -> None:
        """Its turn on the connection: run the policy, record it, send it to an upstream."""
        client = self.client
        ctx = client.ctx
        policy = ctx.spec.policy
        if policy is not None:
            self.policy = ExchangePolicy.start(
                policy,
                endpoint=ctx.endpoint,
                conn=client.conn,
                request=request_facts(self.head, scheme=ctx.public_scheme, start=time.time()),
                trace=self.record.policy_trace if self.record is not None else [],
                internal_exists=ctx.has_internal,
            )
            self.policy.trace[:0] = client.conn_trace
            if self.gathering is not None and self.request is RECEIVING:
                # The policy runs once the whole body is in (request_end). A client waiting for
                # leave to send it gets it from the agent, which is the one reading now (RFC 9110
                # 10.1.1); the service then gets the body whole and no Expect.
                expect = self.head.header(b"expect")
                if expect is not None and expect.lower() == b"100-continue" and client.transport is not None:
                    client.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            if not self._request_policy():
                return
        self._forward()

    def _request_policy(self) -> bool:
        """Run on_http_request (and the internal endpoints it forwards to): True to forward."""
        state = self.policy
        assert state is not None
        if self.gathering is not None:
            if self.gathered_size > self.client.ctx.policy_body_limit:
                limit = self.client.ctx.policy_body_limit
                self._policy_outcome(_too_large(limit))
                if self.record is not None:
                    self.record.mark_incomplete(
                        request=True,
                        reason=f"only the first {limit} bytes of the body were kept (the policy's read limit)",
                    )
                return False
            state.request.body = b"".join(self.gathering)
        outcome: Outcome | None = state.run(REQUEST)
        hops = 0
        while isinstance(outcome, ForwardInternal):
            hops += 1
            route = self.route.find_internal(outcome.url) if hops <= MAX_INTERNAL_HOPS else None
            if route is None:
                if outcome.on_error == "continue":
                    outcome = None
                    break
                if hops > MAX_INTERNAL_HOPS:
                    detail = f"forward-internal went round more than {MAX_INTERNAL_HOPS} internal endpoints (a loop?)"
                    outcome = Respond(508, [("Content-Type", "text/plain")], f"{detail}\n".encode())
                else:
                    outcome = Respond(
                        404,
                        [("ngrok-error-code", "ERR_NGROK_3200"), ("Content-Type", "text/plain")],
                        f"The internal endpoint {outcome.url} is offline.\n".encode("utf-8", "replace"),
                    )
                break
            self.route = route
            if route.policy is None:
                outcome = None
                break
            inner = ExchangePolicy.start(
                route.policy,
                endpoint=route.endpoint,
                conn=self.client.conn,
                request=state.request,
                trace=state.trace,
                internal_exists=route.has_internal,
            )
            inner.on_response = state.on_response
            outcome = inner.run(REQUEST)
            self.policy = state = inner
        if outcome is None:
            return True
        self._policy_outcome(outcome)
        return False

    def _policy_outcome(self, outcome: Outcome) -> None:
        if isinstance(outcome, CloseConnection):
            self._close_by_policy()
        elif isinstance(outcome, Respond):
            self._answer_locally(outcome)

    def _forward(self) -> None:
        client = self.client
        ctx = client.ctx
        route = self.route
        gathered, self.gathering = self.gathering, None
        head_in = self.head
        host_header = route.host_header
        if self.policy is not None:
            head_in = policy_head(self.head, self.policy.request, drop_expect=gathered is not None)
            if head_in.header(b"host") != self.head.header(b"host"):
                host_header = None  # the policy set Host (add-headers host): it wins
        head = forwarded_head(head_in, client_ip=client.client_ip, scheme=ctx.public_scheme, host_header=host_header)
        self.forwarded = head
        record = self.record
        if record is not None:
            # The head first, then the body bytes that arrived while this request waited its turn
            # behind pipelined ones (they are buffered, not yet sent).
            record.add_request(head)
            for payload in self.buffered:
                record.add_request(payload)
            self.recorded = True
            ctx.sink.record(record)  # type: ignore[union-attr]
        if gathered:
            for data in gathered:
                self.body(data)
            if self.request is COMPLETE and self.head.chunked:
                self._send_last_chunk()
        upstream = route.pool.take()
        if upstream is not None:
            self._attach(upstream, head)
        else:
            client.flow.pause(WAITING)
            ctx.loop.create_task(self._connect(head))

    def body(self, data: bytes) -> None:
        gathering = self.gathering
        if gathering is not None:
            # An action needs the whole body before the request may go on (verify-webhook).
            limit = self.client.ctx.policy_body_limit
            self.gathered_size += len(data)
            if self.gathered_size <= limit:
                gathering.append(data)
            elif self.policy is not None and self is self.client.current and self.response is AWAITING:
                # Past the limit while the client waits: answer now; the capture keeps what was read
                # and the rest as it comes (the REFUSED path below).
                gathering.append(data)
                self._policy_outcome(_too_large(limit))
            return
        payload = chunk(data) if self.head.chunked else data
        if self.response < AWAITING:
            # Answered by the agent: the rest of the request is read, captured and dropped.
            if self.response is REFUSED and self.record is not None and self.recorded:
                self.record.add_request(payload)
            return
        record = self.record
        if record is not None and self.recorded:
            record.add_request(payload)  # else `begin` records it after the head
        self.send(payload)

    def request_end(self) -> None:
        self.request = COMPLETE
        if self.gathering is not None:
            if self.policy is None:
                return  # not begun: `begin` runs the policy with the whole body
            if self._request_policy():
                self._forward()
                return
        if self.response < AWAITING:
            if self.response is REFUSED and self.head.chunked and self.record is not None and self.recorded:
                self.record.add_request(LAST_CHUNK)
            if self is self.client.current:
                self.client.finish(self, keep_alive=self.answer_keeps_alive)
            return
        if self.head.chunked:
            self._send_last_chunk()
        if self.upstream is not None:
            self.arm_timeout()

    def _send_last_chunk(self) -> None:
        if self.record is not None and self.recorded:
            self.record.add_request(LAST_CHUNK)
        self.send(LAST_CHUNK)

    def send(self, payload: bytes) -> None:
        upstream = self.upstream
        if upstream is not None:
            if self.sent is not None:
                self.keep_sent(payload)
            upstream.write(payload)
            frames = self.frames
            if frames is not None and frames.feed(FROM_CLIENT, payload):
                self.client.ctx.sink.frames(self.record)  # type: ignore[union-attr,arg-type]
        else:
            self.buffered.append(payload)
            self.client.flow.pause(WAITING)

    def keep_sent(self, data: bytes) -> None:
        sent = self.sent
        if sent is not None:
            self.sent_size += len(data)
            if self.sent_size > RETRY_KEEP_BYTES:
                self.sent = None
            else:
                sent.append(data)

    # --- the upstream ----------------------------------------------------------------------
    async def _connect(self, head: bytes) -> None:
        client = self.client
        route = self.route
        try:
            upstream = await route.pool.connect(route.upstream_timeout)
        except TimeoutError:
            self.fail(504, "timed out connecting to the local service")
            return
        except OSError as error:
            self.fail(502, dial_error(route.spec.upstream.netloc, error))
            return
        if client.closed or self is not client.current:
            route.pool.give_back(upstream)
            return
        self._attach(upstream, head)

    def _attach(self, upstream: UpstreamConnection, head: bytes) -> None:
        client = self.client
        self.upstream = upstream
        upstream.begin(self)
        if self.retried and self.sent:
            upstream.write(b"".join(self.sent))  # the first try's bytes, head included
        else:
            self.keep_sent(head)
            upstream.write(head)
        if self.buffered:
            for payload in self.buffered:
                self.keep_sent(payload)
                upstream.write(payload)
            self.buffered = []
        flow = client.flow
        if flow.write_blocked:
            flow.attach(upstream)
        if self.request is COMPLETE:
            self.arm_timeout()
        if client.holding is None and flow.reasons & WAITING:
            flow.resume(WAITING)

    def _drop_upstream(self) -> None:
        """Unhook the upstream and close it: whatever it is in the middle of cannot be reused."""
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            upstream.end()
            self.client.flow.detach(upstream)
            upstream.close()

    def arm_timeout(self) -> None:
        # From the end of the request: an upload may take as long as it takes.
        if not self.deadline and self.response is AWAITING:
            route = self.route
            self.deadline = deadline = route.loop.time() + route.upstream_timeout
            self.client.watch_response(deadline)

    def response_timed_out(self) -> None:
        if self is self.client.current and self.response is AWAITING:
            self.fail(504, "the local service did not answer in time")

    # --- the response (called by UpstreamConnection) ---------------------------------------
    def response_head(self, status: int) -> None:
        self.client.ctx.metrics.request_done(time.perf_counter_ns() - self.started_ns)
        if self.record is not None:
            self.record.status_code = status
        if self.policy is not None:
            self.policy.response_status(status)
            self.final_head_due = self.policy.policy.uses(RESPONSE) and status != 101

    def response_data(self, data: bytes) -> None:
        if self.response < AWAITING or self.response is FINISHED:
            return  # the policy replaced this response, or it is over
        if self.final_head_due:
            self.final_head_due = False
            rewritten = self._response_policy(data)
            if rewritten is None:
                return
            data = rewritten
        elif self.transform is not None:
            data = self.transform.feed(data)
        if self.response is AWAITING:
            self.deadline = 0.0
            self.answered_early = self.request is RECEIVING
            self.response = STARTED
            self.sent = None  # answered: no retry any more
        if self.record is not None:
            self.record.add_response(data)
        client = self.client
        if client.transport is not None and not client.closed:
            client.transport.write(data)

    def pipe_data(self, data: bytes) -> None:
        client = self.client
        if client.transport is not None and not client.closed:
            client.transport.write(data)
        frames = self.frames
        if frames is not None and frames.feed(FROM_SERVER, data):
            client.ctx.sink.frames(self.record)  # type: ignore[union-attr,arg-type]

    def response_done(self, *, keep_alive: bool) -> None:
        if self.response < AWAITING or self.response is FINISHED:
            return  # the policy replaced this response: its upstream is gone already
        client = self.client
        upstream = self.upstream
        self.upstream = None
        if self.transform is not None:
            tail = self.transform.end()
            if self.record is not None:
                self.record.add_response(tail)
            if client.transport is not None and not client.closed:
                client.transport.write(tail)
            if self.transform.close_delimited:
                keep_alive = False  # an HTTP/1.0 client reads the compressed body to the close
        self.response = FINISHED
        if upstream is not None:
            upstream.end()
            client.flow.detach(upstream)
            # Reuse only a connection whose request went out whole before it answered (else the
            # service may never read the rest of that body) and that holds nothing unsent; and
            # only after an HTTP/1.1 request: a service closes after answering HTTP/1.0 even when
            # its answer does not say so.
            if keep_alive and self.request is COMPLETE and not self.answered_early and self.head.version == "1.1":
                self.route.pool.give_back(upstream)  # which closes it unless it is idle()
            else:
                upstream.close()
        # A response before the whole request leaves unread body bytes; an Upgrade the upstream
        # declined leaves bytes of another protocol: close in both cases.
        keep_alive = keep_alive and self.head.keep_alive and self.request is COMPLETE and self.held is None
        client.finish(self, keep_alive=keep_alive)

    def switch_to_pipe(self) -> None:
        """The upstream accepted the Upgrade: from now on bytes flow untouched both ways."""
        self.deadline = 0.0
        self.complete_record()
        self.response = UPGRADED
        self._record_frames()
        held, self.held = self.held or [], None
        self.client.start_pipe(self, held)

    def _record_frames(self) -> None:
        """Start recording the frames of a captured WebSocket (not of another upgraded protocol)."""
        record = self.record
        upgrade = self.head.header(b"upgrade")
        if record is None or not self.recorded or upgrade is None or b"websocket" not in upgrade.lower():
            return
        self.frames = record.websocket = FrameRecorder()
        raw = record.response_raw
        if raw is not None and len(raw) == record.response_size:
            # Frames the service sent in the same read as its 101 (already relayed with it).
            end = final_head_span(bytes(raw))[1]
            if end and end < len(raw) and self.frames.feed(FROM_SERVER, bytes(raw[end:])):
                self.client.ctx.sink.frames(record)  # type: ignore[union-attr]

    def _end_frames(self) -> None:
        """The pipe closed: a frame cut mid-payload is recorded as far as it came, and the final
        counters go to the sink."""
        frames, self.frames = self.frames, None
        if frames is not None and self.record is not None:
            frames.end()
            self.client.ctx.sink.frames(self.record, final=True)  # type: ignore[union-attr]

    def upstream_lost(self, upstream: UpstreamConnection, error: Exception | None, *, unread: bool = False) -> None:
        """The upstream connection ended before the response did.

        `unread`: the service's socket was closed when the request arrived (it answered with a
        reset), so the service never read any of it.
        """
        client = self.client
        if self._may_resend(upstream, unread=unread or isinstance(error, (ConnectionResetError, BrokenPipeError))):
            # A pooled connection the local service closed as we reused it (keep-alive race):
            # nothing was answered; send the request again on a fresh connection.
            log.debug("tunnel %s: retrying %s on a fresh connection", client.ctx.spec.name, self.head.target)
            self.retried = True
            upstream.end()
            client.flow.detach(upstream)
            self.upstream = None
            self.deadline = 0.0
            client.flow.pause(WAITING)
            client.ctx.loop.create_task(self._connect(self.forwarded))
            return
        if self.response >= STARTED:
            # Piping, or forwarding a response whose end we did not see: only closing says so.
            if self.response is STARTED and self.record is not None:
                self.record.mark_incomplete(
                    response=True, reason="the local service closed the connection before the response was complete"
                )
            self.complete_record()
            self._end_frames()
            client.close()
            return
        detail = "the local service closed the connection without answering"
        if error is not None:
            detail = f"the local service reset the connection: {error}"
        self.fail(502, detail)

    def _may_resend(self, upstream: UpstreamConnection, *, unread: bool) -> bool:
        """Only a reused connection, only once, only before any answer, and only with every byte
        sent so far kept. Any method when the service never read the request (`unread`); else only
        a replayable one (Go's Transport rule: RFC 9110 9.2.2 idempotent methods or an
        Idempotency-Key), sent whole."""
        client = self.client
        if not (
            upstream.reused
            and not self.retried
            and self.response is AWAITING
            and self.sent is not None
            and self.held is None
            and self is client.current
            and not client.closed
        ):
            return False
        if unread:
            return True
        head = self.head
        replayable = head.method in _REPLAYABLE or head.header(b"idempotency-key") is not None
        return replayable and self.request is COMPLETE

    def upstream_malformed(self, detail: str) -> None:
        self._drop_upstream()
        if self.response >= STARTED:
            if self.record is not None:
                self.record.mark_incomplete(response=True, reason=f"the response broke off: {detail}")
            self.complete_record()
            self.client.close()
        else:
            self.fail(502, detail)

    # --- endings ----------------------------------------------------------------------------
    def fail(self, status: int, detail: str) -> None:
        """The service failed before answering: the agent's page is the response (FAILED)."""
        self._drop_upstream()
        client = self.client
        if self is not client.current or client.closed:
            self.abandon()
            return
        log.info(
            "tunnel %s: %s %s -> %d (%s)", client.ctx.spec.name, self.head.method, self.head.target, status, detail
        )
        page = error_response(status, detail)
        client.ctx.metrics.request_done(time.perf_counter_ns() - self.started_ns)
        if self.policy is not None:
            self.policy.response_status(status)
        if self.record is not None:
            self.record.restart_response()
            self.record.add_response(page)
            self.record.status_code = status
        self.response = FAILED
        if client.transport is not None:
            client.transport.write(page)
        client.finish(self, keep_alive=False)

    def _answer_locally(self, answer: Respond) -> None:
        """The policy answers without the upstream (REFUSED); the request's end finishes the
        exchange. The capture holds the request as received and the answer as sent."""
        self.response = REFUSED
        client = self.client
        page = answer_bytes(answer, keep_alive=self.answer_keeps_alive, head_only=self.head.method == b"HEAD")
        client.ctx.metrics.request_done(time.perf_counter_ns() - self.started_ns)
        if self.policy is not None:
            self.policy.response_status(answer.status)
        self._record_unforwarded(answer.status, page)
        transport = client.transport
        if transport is not None and not client.closed:
            transport.write(page)

    @property
    def answer_keeps_alive(self) -> bool:
        """Whether the connection stays open after the agent's own answer: only when the client
        asked, the answer is the policy's (not a failure) and the request was no Upgrade (its
        later bytes would be another protocol's)."""
        return self.head.keep_alive and not self.head.upgrade and self.response is REFUSED

    def _record_unforwarded(self, status: int, page: bytes) -> None:
        """Capture a request that never went upstream, with what the agent did instead."""
        record = self.record
        gathered, self.gathering = self.gathering, None
        if record is None:
            return
        record.add_request(request_head_bytes(self.head))
        for payload in self.buffered:
            record.add_request(payload)
        self.buffered = []
        for data in gathered or ():
            record.add_request(chunk(data) if self.head.chunked else data)
        if gathered is not None and self.request is COMPLETE and self.head.chunked:
            record.add_request(LAST_CHUNK)
        record.restart_response()
        if page:
            record.add_response(page)
        record.status_code = status
        self.recorded = True
        self.client.ctx.sink.record(record)  # type: ignore[union-attr]

    def _close_by_policy(self) -> None:
        """close-connection: no answer at all; the capture says so."""
        self.response = REFUSED
        self._record_unforwarded(CLOSED_WITHOUT_RESPONSE, b"")
        if self.record is not None:
            self.record.response_raw = bytearray()
            self.record.mark_incomplete(
                response=True, reason="the traffic policy closed the connection (close-connection)"
            )
        if self.policy is not None:
            self.policy.response_status(CLOSED_WITHOUT_RESPONSE)
        client = self.client
        if self is client.current:
            client.current = None
            self.complete_record()
        client.close()

    def _response_policy(self, data: bytes) -> bytes | None:
        """Run on_http_response on the final head at the start of `data`; the bytes to forward
        instead, or None when the policy replaced the response or closed the connection."""
        state = self.policy
        assert state is not None
        start, end = final_head_span(data)
        if not end:
            return data
        stored = parse_stored_head(data[start:end], response=True)
        facts = ResponseFacts(
            status=stored.status, reason=stored.reason, version=stored.version, headers=list(stored.headers)
        )
        original = list(stored.headers)
        outcome = state.run(RESPONSE, facts)
        if isinstance(outcome, Respond):
            self._replace_response(outcome)
            return None
        if isinstance(outcome, CloseConnection):
            self._drop_upstream()
            if self.record is not None:
                self.record.mark_incomplete(
                    response=True, reason="the traffic policy closed the connection (close-connection)"
                )
            self.response = REFUSED
            self.complete_record()
            self.client.close()
            return None
        coding = state.compress
        if coding is not None and self.head.method != b"HEAD" and facts.status not in (204, 304):
            compressed = compressed_head(facts.headers, coding, client_version=self.head.version)
            self.transform = CompressedBody(coding, chunked=compressed.chunked)
            facts.headers = compressed.headers
            # response_head_bytes keeps the framing it is given: here the compressed body's own.
            framing = [(name, value) for name, value in compressed.headers if name.lower() == "transfer-encoding"]
            head = response_head_bytes(facts, framing)
            return data[:start] + head + self.transform.feed(data[start:])
        if facts.headers == original and facts.status == stored.status:
            return data
        return data[:start] + response_head_bytes(facts, original) + data[end:]

    def _replace_response(self, answer: Respond) -> None:
        """A custom-response in on_http_response: the service's answer is dropped (its connection
        closed, never reused) and the agent's goes out instead."""
        self._drop_upstream()
        self.deadline = 0.0
        client = self.client
        keep_alive = self.head.keep_alive and self.request is COMPLETE and self.held is None
        page = answer_bytes(answer, keep_alive=keep_alive, head_only=self.head.method == b"HEAD")
        if self.record is not None:
            self.record.restart_response()
            self.record.add_response(page)
            self.record.status_code = answer.status
        self.response = REFUSED
        if client.transport is not None and not client.closed:
            client.transport.write(page)
        if self.request is COMPLETE:
            client.finish(self, keep_alive=keep_alive)

    def abandon(self) -> None:
        """The public side went away: drop the upstream connection, keep what was captured."""
        self.deadline = 0.0
        self._drop_upstream()
        record = self.record
        if record is not None and not self.recorded and self.policy is not None:
            # Begun, its body still being read for the policy (verify-webhook): recorded now.
            self._record_unforwarded(CLIENT_CLOSED_REQUEST, b"")
            record.status_code = None
        if record is not None and record.status_code is None:
            # The client left before the answer (nginx's 499): a final state, not "pending".
            record.status_code = CLIENT_CLOSED_REQUEST
            record.restart_response()
            record.response_raw = bytearray()
            record.mark_incomplete(response=True, reason="the client closed the connection before the response")
        elif record is not None and self.response is STARTED:
            record.mark_incomplete(
                response=True, reason="the client closed the connection before the whole response was sent"
            )
        self.complete_record()
        self._end_frames()

    def complete_record(self) -> None:
        """Hand the finished capture to the sink once, flagging a request that did not cross whole."""
        record = self.record
        if record is None or record.complete or not self.recorded:
            return
        if self.request is RECEIVING:
            if self.answered_early:
                reason = "the local service answered before the whole request body was sent"
            elif self.response is FAILED:
                reason = "the agent stopped reading the request after the local service failed"
            else:
                reason = "the client closed the connection before the whole request was sent"
            record.mark_incomplete(request=True, reason=reason)
        record.duration_ns = time.perf_counter_ns() - self.started_ns
        record.complete = True
        self.client.ctx.sink.record(record)  # type: ignore[union-attr]
