"""The ngrok agent's error body, for every error the API gives.

Exactly four keys in this order, then a newline (the renderer adds it):
`{"error_code":102,"status_code":400,"msg":"invalid tunnel configuration","details":{"err":"..."}}`.
`msg` is a short fixed phrase that clients show as the exception message.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

from . import go_json

log = logging.getLogger(__name__)


class AgentAPIError(exceptions.APIException):
    error_code = 100
    msg = "error"

    def __init__(self, err: str, *, status_code: int | None = None) -> None:
        super().__init__(err)
        self.err = err
        if status_code is not None:
            self.status_code = status_code


class InvalidTunnelConfig(AgentAPIError):
    status_code = status.HTTP_400_BAD_REQUEST
    error_code = 102
    msg = "invalid tunnel configuration"


class TunnelStartFailed(AgentAPIError):
    status_code = status.HTTP_502_BAD_GATEWAY
    error_code = 103
    msg = "failed to start tunnel"


class NotFound(AgentAPIError):
    status_code = status.HTTP_404_NOT_FOUND
    error_code = 100


class TunnelNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f'tunnel "{name}" not found')
        self.msg = f'tunnel "{name}" not found'


class RequestNotFound(NotFound):
    def __init__(self, request_id: str) -> None:
        super().__init__(f'request "{request_id}" not found')
        self.msg = f'request "{request_id}" not found'


class ResourceNotFound(NotFound):
    msg = "not found"

    def __init__(self, path: str) -> None:
        super().__init__(f"no API resource at {path}")


class NotJSON(AgentAPIError):
    """A body that is not JSON: refused before anything is done (a cross-site form cannot send JSON)."""

    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    error_code = 100
    msg = "request bodies must be JSON"

    def __init__(self, content_type: str) -> None:
        if content_type:
            super().__init__(f'Content-Type "{content_type}" is not accepted; send application/json')
        else:
            super().__init__("a request body needs Content-Type: application/json")


class TunnelOwnedElsewhere(AgentAPIError):
    status_code = status.HTTP_409_CONFLICT
    error_code = 100
    msg = "tunnel is owned by another agent"


class BadRequest(AgentAPIError):
    status_code = status.HTTP_400_BAD_REQUEST
    error_code = 100
    msg = "bad request"


class AgentUnavailable(AgentAPIError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    error_code = 100
    msg = "the tunnel engine is not running in this process"


def error_body(status_code: int, error_code: int, msg: str, err: str) -> dict[str, Any]:
    return {"error_code": error_code, "status_code": status_code, "msg": msg, "details": {"err": err}}


def ngrok_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, exceptions.UnsupportedMediaType):
        request = context.get("request")
        exc = NotJSON(request.content_type if request is not None else "")
    if isinstance(exc, AgentAPIError):
        code, error_code, msg, err = exc.status_code, exc.error_code, exc.msg, exc.err
    elif isinstance(exc, Http404):
        code, error_code, msg, err = 404, 100, "not found", str(exc) or "not found"
    elif isinstance(exc, exceptions.ParseError):
        code, error_code, msg, err = 400, 100, "invalid JSON body", str(exc.detail)
    elif isinstance(exc, exceptions.MethodNotAllowed):
        code, error_code, msg, err = 405, 100, "method not allowed", str(exc.detail)
    elif isinstance(exc, exceptions.APIException):
        code, error_code, msg, err = exc.status_code, 100, "error", str(exc.detail)
    else:
        log.exception("unexpected error in the API", exc_info=exc)
        code, error_code, msg, err = 500, 100, "internal error", f"{type(exc).__name__}: {exc}"
    response = Response(error_body(code, error_code, msg, err), status=code)
    if isinstance(exc, exceptions.MethodNotAllowed):
        response["Allow"] = ", ".join(context["view"].allowed_methods) if context.get("view") else ""
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500: the error shape under /api, Django's page elsewhere.

    DRF's handler above covers errors inside a view; this one covers the rest (a middleware, the
    renderer), so an API client never gets an HTML page to parse.
    """
    if request.path == "/api" or request.path.startswith("/api/"):
        body = go_json.encode_document(
            error_body(500, 100, "internal error", "the agent failed to answer this request")
        )
        return HttpResponse(body, status=500, content_type="application/json")
    return defaults.server_error(request)
