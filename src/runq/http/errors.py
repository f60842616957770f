"""Errors over HTTP: the same stable codes as the native protocol, with HTTP statuses.

Every error body is ``{"error": {"code": "...", "message": "..."}}``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    ValidationException,
)
from litestar.openapi import ResponseSpec
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from runq import errors as e

from .bodies import Malformed

log = logging.getLogger("runq.http")


class ErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str


class ErrorReply(msgspec.Struct, frozen=True):
    error: ErrorBody


ALIASES: Final = {"job_state": "state"}  # Python names of parameters -> their names
# Most specific first: the first class an error is an instance of gives its status.
STATUS: Final[list[tuple[type[e.RunqError], int]]] = [
    (Malformed, HTTP_400_BAD_REQUEST),
    (e.FrameTooLarge, HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (e.ProtocolError, HTTP_422_UNPROCESSABLE_ENTITY),
    (e.Unauthorized, 401),
    (e.TooManyAttempts, 429),
    (e.UnknownToken, HTTP_404_NOT_FOUND),
    (e.AuthError, 403),
    (e.UnknownJob, HTTP_404_NOT_FOUND),
    (e.IllegalTransition, HTTP_409_CONFLICT),
    (e.StaleFence, HTTP_409_CONFLICT),
    (e.JobError, HTTP_409_CONFLICT),
    (e.Conflict, HTTP_409_CONFLICT),
    (e.UnknownSchedule, HTTP_404_NOT_FOUND),
    (e.UnknownLimit, HTTP_404_NOT_FOUND),
    (e.ScheduleError, HTTP_422_UNPROCESSABLE_ENTITY),
    (e.UnknownFile, HTTP_404_NOT_FOUND),
    (e.FileTooLarge, HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (e.FileError, HTTP_422_UNPROCESSABLE_ENTITY),
    (e.TaskError, HTTP_422_UNPROCESSABLE_ENTITY),
    (e.ConfigError, HTTP_400_BAD_REQUEST),
    (e.Unavailable, HTTP_503_SERVICE_UNAVAILABLE),
    (e.StoreError, HTTP_503_SERVICE_UNAVAILABLE),
]


def error_response(status: int, code: str, message: str) -> Response[ErrorReply]:
    return Response(ErrorReply(ErrorBody(code, message)), status_code=status)


def status_of(exc: e.RunqError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return HTTP_400_BAD_REQUEST


def runq_error(_: Request[Any, Any, Any], exc: e.RunqError) -> Response[ErrorReply]:
    return error_response(status_of(exc), exc.code, exc.message)


def validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorReply]:
    details = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in details:
        if isinstance(item, dict):
            where = ALIASES.get(str(item.get("key")), item.get("key"))
            text = str(item.get("message", ""))
            parts.append(f"{where}: {text}" if where else text)
    message = "; ".join(parts) or str(exc.detail)
    return error_response(HTTP_422_UNPROCESSABLE_ENTITY, e.ProtocolError.code, message)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorReply]:
    status = exc.status_code
    if status == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        return error_response(status, e.FrameTooLarge.code, "the request body is too large")
    if isinstance(exc, NotFoundException):
        return error_response(status, "not_found", "no such page or resource")
    code = e.ProtocolError.code if status < 500 else "internal_error"
    reply = error_response(status, code, str(exc.detail))
    if exc.headers:  # e.g. Allow on 405
        reply.headers.update(exc.headers)
    return reply


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorReply]:
    log.error("internal error serving %s %s: %r", request.method, request.url.path, exc)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "internal error")


HANDLERS: Final[dict[type[Exception] | int, Any]] = {
    e.RunqError: runq_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    HTTP_500_INTERNAL_SERVER_ERROR: internal_error,
}


def documented(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error replies a route may give."""
    return {
        status: ResponseSpec(ErrorReply, description=HTTPStatus(status).phrase)
        for status in statuses
    }


ERRORS: Final = documented(400, 401, 403, 404, 409, 413, 422, 429, 503)
