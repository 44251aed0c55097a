from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from agentapi import views as api_views

urlpatterns = [
    re_path(r"^api$", api_views.RootView.as_view()),
    path("api/", include("agentapi.urls")),
    path("admin/", admin.site.urls),
    path("", include("dashboard.inspector.urls")),
]

# Errors outside DRF's views still answer API clients in ngrok's error shape.
handler500 = "agentapi.errors.server_error"
