"""Every tunable of the agent, read from the environment in this one place.

Defaults give the zero-setup embedded mode: SQLite (WAL) under the data directory and the in-memory
channel layer. `DATABASE_URL` switches to PostgreSQL, `REDIS_URL` to the Redis channel layer.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from dashboard.data_dir import KEY_FILE, data_dir, stored_key

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, got {raw!r}")


def env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


# Read, never made here: importing the settings writes nothing. manage.py makes the directory and
# keeps a generated key in it before Django reads this file (dashboard/data_dir.py).
DATA_DIR = data_dir()


def _secret_key() -> str:
    if key := os.environ.get("AGENT_SECRET_KEY"):
        return key
    # The per-installation key kept beside the database, so sessions survive restarts without set-up.
    stored = stored_key(DATA_DIR)
    if stored == "":
        raise ImproperlyConfigured(f"{DATA_DIR / KEY_FILE} is empty: delete it, a new key is made on the next start")
    # No key kept (settings imported outside manage.py, as by the tests): one for this process only.
    return stored or secrets.token_urlsafe(50)


SECRET_KEY = _secret_key()
DEBUG = env_bool("AGENT_DEBUG", False)
# The Host check is done by HostAllowListMiddleware with ngrok's rules (web_allow_hosts).
ALLOWED_HOSTS = ["*"]

# --- the agent ------------------------------------------------------------------------------
AGENT_VERSION = "3.30.0"
# Host part of every public URL (the listeners bind to it).
AGENT_PUBLIC_HOST = env_str("AGENT_PUBLIC_HOST", "127.0.0.1")
# Extra hosts the web interface answers to, on top of localhost (ngrok's `web_allow_hosts`).
AGENT_WEB_ALLOW_HOSTS = env_list("AGENT_WEB_ALLOW_HOSTS")
# Bytes of each HTTP message (head + body) kept in a capture; the rest streams uncaptured.
AGENT_CAPTURE_LIMIT = env_int("AGENT_CAPTURE_LIMIT", 1024 * 1024)
# Bytes a compressed body may decode to for display (inspector, admin, HAR); past it the decoded
# body is cut and flagged, so a decompression bomb costs this much memory and no more.
AGENT_DECODED_BODY_LIMIT = env_int("AGENT_DECODED_BODY_LIMIT", 8 * 1024 * 1024)
# Total stored size of captures before the oldest are evicted (ngrok's `inspect_db_size`).
AGENT_INSPECT_DB_SIZE = env_int("AGENT_INSPECT_DB_SIZE", 50 * 1000 * 1000)
# Seconds the local service has to start its answer before a 504 (a tunnel's `response_timeout`
# wins). Ten minutes: longer than ngrok's edge waits (its documented HTTP limits have no response
# timeout, only a 5-minute idle timeout), so long polls and slow webhooks behave as with ngrok.
AGENT_UPSTREAM_TIMEOUT = env_int("AGENT_UPSTREAM_TIMEOUT", 600)
# PEM files for https public URLs; unset: a self-signed certificate made in AGENT_DATA_DIR/tls.
AGENT_TLS_CERT = env_str("AGENT_TLS_CERT", "")
AGENT_TLS_KEY = env_str("AGENT_TLS_KEY", "")
if bool(AGENT_TLS_CERT) != bool(AGENT_TLS_KEY):
    raise ImproperlyConfigured("AGENT_TLS_CERT and AGENT_TLS_KEY go together")
# Seconds a public connection may take to send a request head (408 after), and may sit idle
# between requests before it is closed.
AGENT_HEAD_TIMEOUT = env_int("AGENT_HEAD_TIMEOUT", 30)
AGENT_IDLE_TIMEOUT = env_int("AGENT_IDLE_TIMEOUT", 90)
# Bytes a local service's response head may take; a larger one is answered with a recorded 502.
AGENT_RESPONSE_HEAD_LIMIT = env_int("AGENT_RESPONSE_HEAD_LIMIT", 64 * 1024)
# Captures waiting for the database before new ones are dropped (forwarding never waits).
AGENT_CAPTURE_QUEUE = env_int("AGENT_CAPTURE_QUEUE", 20000)
# Seconds between refreshes of this agent's tunnel rows; rows without a refresh for
# AGENT_STALE_AFTER_BEATS periods belong to an agent that died and are removed by any agent.
AGENT_HEARTBEAT_SECONDS = env_float("AGENT_HEARTBEAT_SECONDS", 15.0)
AGENT_STALE_AFTER_BEATS = env_int("AGENT_STALE_AFTER_BEATS", 4)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "agentapi",
    "dashboard.inspector",
]

MIDDLEWARE = [
    "agentapi.host_allow_list.HostAllowListMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "dashboard.asgi.application"
WSGI_APPLICATION = None

# The agent's SQLite connections (why each pragma: where DATABASES takes them, below).
SQLITE_OPTIONS: dict[str, Any] = {
    "init_command": (
        "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA secure_delete=FAST;"
    ),
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'agent.sqlite3'}"),
        # 0 under ASGI (Django's advice): each sync view runs in a thread of its own, and kept
        # connections would pile up file handles until a garbage collection.
        conn_max_age=env_int("AGENT_DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the inspector read while the capture writer writes; IMMEDIATE avoids lock upgrades.
    # 16 KiB pages (set before WAL, so only a new database takes them): a capture's body spans a
    # quarter of the overflow pages, which halved the writer's CPU per stored 1 MiB body and cut
    # about 9% of the agent's CPU per small inspected request (issue 11's bench, same-run A/B).
    # secure_delete FAST: Debian's SQLite is built with SECURE_DELETE on (upstream's default is
    # off), so evicting a capture wrote every page of its body again as zeros, through the WAL
    # and the checkpoint: 3.2 ms of CPU per stored MiB against 1.3 with FAST (make bench-store
    # with --pragma). FAST zeroes a deleted row's bytes only inside pages written anyway, not a
    # body's own (overflow) pages; the deletes a person asks for (clear, delete one) run with it
    # ON and truncate the log (agentapi/capture_erasure.py).
    DATABASES["default"]["OPTIONS"] = dict(SQLITE_OPTIONS)

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TZ", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["agentapi.go_json.GoJSONRenderer"],
    # The real agent refuses non-JSON bodies (a defence against cross-site form posts).
    "DEFAULT_PARSER_CLASSES": ["agentapi.json_body.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "agentapi.errors.ngrok_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "agentapi.api_schema.AgentAutoSchema",
}

# The OpenAPI description served at /api/schema (shapes in agentapi/api_schema.py).
SPECTACULAR_SETTINGS = {
    "TITLE": "tunnel-agent API",
    "DESCRIPTION": "The ngrok agent API (tunnels, endpoints, captured requests, status) as this agent serves it.",
    "VERSION": AGENT_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["agentapi.api_schema.only_the_api"],
    "POSTPROCESSING_HOOKS": ["agentapi.api_schema.with_components"],
    "SCHEMA_PATH_PREFIX": "/api",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("AGENT_LOG_LEVEL", "WARNING")},
}
