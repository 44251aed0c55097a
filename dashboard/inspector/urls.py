"""Routes of the inspector UI (pages and their JSON endpoints); the agent API lives under /api."""

from __future__ import annotations

from django.urls import path, re_path

from . import tool_views, views

_ID = r"(?P<capture_id>[A-Za-z0-9_-]+)"
_SIDE = r"(?P<side>request|response)"

urlpatterns = [
    path("", views.inspector, name="inspector"),
    path("inspect/http", views.inspector, name="inspector-http"),
    path("status", views.status, name="status-page"),
    path("inspect/captures.json", views.captures_json, name="inspector-captures"),
    path("inspect/export.har", tool_views.export_har, name="inspector-export-har"),
    path("inspect/replay", views.replay, name="inspector-replay"),
    path("inspect/captures/clear", views.captures_clear, name="inspector-clear"),
    path("inspect/captures/count.json", views.captures_count, name="inspector-count"),
    re_path(rf"^inspect/captures/{_ID}$", views.capture_delete, name="inspector-capture-delete"),
    re_path(rf"^inspect/captures/{_ID}/replay$", views.capture_replay, name="inspector-capture-replay"),
    re_path(rf"^inspect/captures/{_ID}\.json$", views.capture_json, name="inspector-capture"),
    re_path(rf"^inspect/captures/{_ID}\.har$", views.capture_har, name="inspector-har-one"),
    re_path(rf"^inspect/captures/{_ID}/curl$", views.capture_curl, name="inspector-curl"),
    re_path(rf"^inspect/captures/{_ID}/replay-seed\.json$", views.replay_seed, name="inspector-replay-seed"),
    re_path(rf"^inspect/captures/{_ID}/{_SIDE}\.raw$", views.capture_raw, name="inspector-raw"),
    re_path(rf"^inspect/captures/{_ID}/{_SIDE}/body$", views.capture_body, name="inspector-body"),
    re_path(
        rf"^inspect/captures/{_ID}/{_SIDE}/parts/(?P<index>[0-9]{{1,4}})$", views.capture_part, name="inspector-part"
    ),
    # Webhook tools (tool_views.py).
    re_path(rf"^inspect/captures/{_ID}/as/(?P<language>[a-z]+)$", tool_views.copy_as, name="inspector-copy-as"),
    re_path(rf"^inspect/captures/{_ID}/resign-seed\.json$", tool_views.resign_seed, name="inspector-resign-seed"),
    path("inspect/diff", tool_views.diff_page, name="inspector-diff"),
    path("inspect/diff.json", tool_views.diff_json, name="inspector-diff-json"),
    path("inspect/import.har", tool_views.import_har_file, name="inspector-import-har"),
    path("inspect/storage.json", tool_views.storage_json, name="inspector-storage"),
]
