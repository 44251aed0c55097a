"""What the agent stores: the running tunnels (a mirror of the engine) and the HTTP captures."""

from __future__ import annotations

from django.db import models


class Tunnel(models.Model):
    """A running tunnel. The engine is the truth; this row lets the API, admin and peers see it."""

    name = models.CharField(max_length=200, unique=True)
    tunnel_id = models.CharField(max_length=32, unique=True)
    proto = models.CharField(max_length=8)
    public_url = models.CharField(max_length=300)
    addr = models.CharField(max_length=300)
    inspect = models.BooleanField(default=True)
    # The definition as given (config file or API body), for the endpoints view and restarts.
    definition = models.JSONField(default=dict)
    # Which agent process owns the listener (several agents may share one database).
    agent_id = models.CharField(max_length=64, db_index=True)
    # The owner's channel on the channel layer: another agent's API routes a stop there.
    agent_channel = models.CharField(max_length=200, blank=True, default="")
    # Refreshed by the owner every HEARTBEAT_SECONDS; rows left by an agent that died (on any host)
    # are removed once it is stale.
    heartbeat = models.DateTimeField(null=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_url} -> {self.addr})"


class Capture(models.Model):
    """One HTTP exchange as it crossed a tunnel.

    `request_raw`/`response_raw` hold the message bytes as forwarded (head and body) up to the
    capture limit; `*_size` is the true size on the wire, so a cut is never silent.
    """

    id = models.CharField(max_length=40, primary_key=True)  # airt_<KSUID>: sorts by time
    tunnel_name = models.CharField(max_length=200)
    remote_addr = models.CharField(max_length=64)
    start = models.DateTimeField()
    duration_ns = models.BigIntegerField(default=0)
    method = models.CharField(max_length=32)
    uri = models.TextField()
    request_size = models.BigIntegerField()
    response_size = models.BigIntegerField(null=True)
    status_code = models.IntegerField(null=True)
    # Bytes this row holds, for the inspect_db_size budget (kept here to avoid LENGTH() scans).
    stored_size = models.BigIntegerField(default=0)
    replay_of = models.CharField(max_length=40, blank=True, default="")
    # Whether each message crossed whole (as opposed to cut by the capture limit, which the sizes
    # tell): a client that left mid-upload, a service that closed mid-response. Why, when not.
    # Database defaults too: rows written by an older agent sharing the database stay valid.
    request_complete = models.BooleanField(default=True, db_default=True)
    response_complete = models.BooleanField(default=True, db_default=True)
    incomplete_reason = models.CharField(max_length=300, blank=True, default="", db_default="")
    # What the endpoint's Traffic Policy did, action by action: [{phase, rule, action, outcome,
    # terminal}] (agentapi.engine.policy.trace.TraceEntry.as_json); [] when it has no policy.
    policy_trace = models.JSONField(default=list, blank=True, db_default=[])
    # The action that answered the request itself (the trace's terminal entry: basic-auth, deny,
    # rate-limit, custom-response, redirect...), "" when the service answered. Kept apart from the
    # trace so "blocked by policy" is a plain indexed column on every database.
    policy_action = models.CharField(max_length=64, blank=True, default="", db_default="")
    # The bytes come last, in the table too (migration 0008): on SQLite, reading a column stored
    # after a large value walks that value's overflow pages, and lists read only the metadata.
    request_raw = models.BinaryField()
    response_raw = models.BinaryField(null=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["tunnel_name", "-id"], name="capture_tunnel_newest"),
            models.Index(fields=["status_code"], name="capture_status"),
            models.Index(fields=["method"], name="capture_method"),
            # Partial: only captures a policy answered have an entry, so endpoints without a
            # policy pay nothing for it on insert. Newest first, as the inspector lists them,
            # with the action beside the id for `?policy=rate-limit`.
            models.Index(
                fields=["-id", "policy_action"],
                name="capture_policy_answered",
                condition=~models.Q(policy_action=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.uri} -> {self.status_code or 'pending'}"

    @property
    def request_truncated(self) -> bool:
        return len(self.request_raw) < self.request_size

    @property
    def response_truncated(self) -> bool:
        return self.response_raw is not None and len(self.response_raw) < (self.response_size or 0)


class WebSocketFrame(models.Model):
    """One WebSocket frame of an upgraded capture (the 101), as it crossed (RFC 6455 5.2).

    `payload` holds its first bytes, unmasked, up to the connection's budget; `size` is the true
    payload length, so a cut is never silent. `seq` numbers the connection's frames in the order
    their headers were read, both directions together. Deleted with its capture (by the store).
    """

    # No database constraint and no ORM cascade: with a cascading relation, Django (5.2 emulates
    # ON DELETE CASCADE) loads every capture row, bodies and all, before a "clear all". Frames go
    # with their capture in the store: evicted by the same id range, and the rows a delete left
    # behind are swept (OrmCaptureStore).
    capture = models.ForeignKey(
        Capture, on_delete=models.DO_NOTHING, db_constraint=False, related_name="websocket_frames"
    )
    seq = models.IntegerField()
    direction = models.CharField(max_length=8)  # "client" (to the service) or "server"
    time = models.FloatField()  # epoch seconds
    opcode = models.SmallIntegerField()
    fin = models.BooleanField(default=True)
    compressed = models.BooleanField(default=False)  # RSV1: permessage-deflate (RFC 7692)
    size = models.BigIntegerField()
    payload = models.BinaryField()
    close_code = models.IntegerField(null=True)

    class Meta:
        ordering = ["capture", "seq"]
        constraints = [models.UniqueConstraint(fields=["capture", "seq"], name="websocket_frame_seq")]

    def __str__(self) -> str:
        return f"{self.capture_id} #{self.seq} {self.direction} opcode {self.opcode} ({self.size} bytes)"

    @property
    def truncated(self) -> bool:
        return len(self.payload) < self.size


class WebSocketTotals(models.Model):
    """Counters for the whole WebSocket connection of a capture, recorded frames or not: frames
    and payload bytes each way, how many frames were recorded, and why reading stopped ("" when
    it did not: bytes that broke RFC 6455's framing stop the recorder, never the pipe)."""

    capture = models.OneToOneField(  # as WebSocketFrame.capture: swept by the store, not cascaded
        Capture, on_delete=models.DO_NOTHING, db_constraint=False, primary_key=True, related_name="websocket"
    )
    client_frames = models.BigIntegerField(default=0)
    server_frames = models.BigIntegerField(default=0)
    client_bytes = models.BigIntegerField(default=0)
    server_bytes = models.BigIntegerField(default=0)
    recorded = models.IntegerField(default=0)
    stopped = models.CharField(max_length=300, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.capture_id}: {self.client_frames} frames in, {self.server_frames} out"
