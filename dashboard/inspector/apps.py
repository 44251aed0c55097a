from __future__ import annotations

from django.apps import AppConfig


class InspectorConfig(AppConfig):
    name = "dashboard.inspector"
    label = "inspector"
    verbose_name = "Traffic inspector"
