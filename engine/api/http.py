"""What every handler shares: the error type, JSON answers (declared models), validated JSON bodies, id checks.

Errors leave as ``{"error": "..."}`` (plus, for some, a few documented fields). Messages
go through :func:`engine.domain.phones.mask_text` on the way out, so no phone number ever
leaves in an error, whatever raised it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from engine.api.models import STREAM_ID_PATTERN, Error
from engine.domain.phones import mask_text
from engine.web.body import BodyRefused, read_body

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STREAM_ID = re.compile(STREAM_ID_PATTERN)

JSON_TYPES = ("application/json", "application/problem+json")


class ApiError(Exception):
    """A refusal with an HTTP status; ``extra`` fields are added beside ``error``."""

    def __init__(self, status: int, message: str, *, close: bool = False, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        #: Close the connection after answering: the rest of the body is not read (413, 408).
        self.close = close
        self.headers = headers
        self.extra = extra


def model_response(answer: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers, content_type="application/json",
                        text=answer.model_dump_json(by_alias=True))


def answers(model: type[M], status: int = 200) -> Callable[[Callable[[web.Request], Awaitable[M]]], Handler]:
    """The handler returns a ``model`` (mypy holds it to that), which leaves as JSON with ``status``.

    The OpenAPI document takes the answer's schema from here (``volna_answer``), so what a
    handler builds and what the document promises are the same model.
    """

    def wrap(fn: Callable[[web.Request], Awaitable[M]]) -> Handler:
        @functools.wraps(fn)
        async def handler(request: web.Request) -> web.StreamResponse:
            answer = await fn(request)
            if type(answer) is not model:  # what the document promises is exactly this model
                raise TypeError(f"{fn.__qualname__} answered a {type(answer).__name__}, not its {model.__name__}")
            return model_response(answer, status)

        handler.volna_answer = (status, model)  # type: ignore[attr-defined]
        return handler

    return wrap


def error_response(status: int, message: str, *, headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> web.Response:
    return model_response(Error(error=mask_text(message), **(extra or {})), status, headers)


def check_stream_id(value: str, what: str) -> str:
    if not _STREAM_ID.match(value):
        raise ApiError(400, f"{what} is not a stream id (<milliseconds>-<sequence>, as in an event's id)")
    return value


def int_query(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}")
    return value


async def read_json(request: web.Request, model: type[M], max_bytes: int, timeout_s: float) -> M:
    """Parse and validate a JSON body: 415 not JSON, 413 too large, 408 too slow, 400 malformed or invalid."""
    ctype = request.content_type
    if request.body_exists and ctype not in JSON_TYPES and ctype != "application/octet-stream":
        raise ApiError(415, f"expected Content-Type application/json, got {ctype}")
    try:
        body = await read_body(request, max_bytes, timeout_s)
    except BodyRefused as exc:  # the rest of the body is not read: close rather than drain it
        raise ApiError(exc.status, str(exc), close=True) from None
    if not body.strip():
        raise ApiError(400, "a JSON object is required in the body")
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed JSON: the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        # Strict: a date is a "YYYY-MM-DD" string, not a number of seconds; no number passes for a string.
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise ApiError(400, validation_message(exc)) from None


def validation_message(exc: ValidationError) -> str:
    """Field paths and messages only: never the input values (they may be phone numbers)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "invalid body: " + "; ".join(parts)
