"""What the simulators' HTTP control endpoints share: input checks that answer one line.

Bad input to a control endpoint (``POST /restart``, ``/queues/<name>``, ``/inbound``, ``/mo``,
``/inbound/whatsapp``, ``GET /reach``) is answered ``400`` with one ``text/plain`` line naming
the field (``down_s: expected a number from 0 to 300``); the handler raises :class:`BadInput`
and :func:`one_line_errors` (an aiohttp middleware) writes it. Anything unexpected becomes a
one-line ``500`` logged without the request body: a control call never gets a traceback, and
the server keeps serving. Values are never echoed back: they may be phone numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NoReturn

from aiohttp import web

log = logging.getLogger("simulators")

#: Control bodies are small; anything larger is refused before it is parsed.
MAX_BODY_BYTES = 64 * 1024
#: A client that sends its body slower than this is answered 408 (and the handler freed).
BODY_TIMEOUT_S = 5.0


class BadInput(Exception):
    """Answered ``400 <field>: <reason>``."""

    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason, self.status = field, reason, status


class Conflict(BadInput):
    """The input is well formed but the simulator cannot do it now (``409``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason, status=409)


def _line(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text.replace("\n", " ") + "\n", content_type="text/plain")


@web.middleware
async def one_line_errors(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadInput as exc:
        return _line(exc.status, str(exc))
    except web.HTTPException:
        raise
    except Exception as exc:
        log.error("control %s %s failed: %s", request.method, request.path, type(exc).__name__)
        return _line(500, f"internal error: {type(exc).__name__}")


async def json_object(request: web.Request, allowed: Iterable[str] = (),
                      required: Iterable[str] = ()) -> dict[str, Any]:
    """The request's body: a JSON object with only ``allowed`` keys and every ``required`` one.
    An empty body is an empty object."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadInput("body", f"larger than {MAX_BODY_BYTES} bytes", status=413)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            raw = await request.content.read(MAX_BODY_BYTES + 1)
    except TimeoutError:
        raise BadInput("body", f"not received within {BODY_TIMEOUT_S:g} s", status=408) from None
    if len(raw) > MAX_BODY_BYTES:
        raise BadInput("body", f"larger than {MAX_BODY_BYTES} bytes", status=413)
    if not raw.strip():
        body: Any = {}
    else:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadInput("body", "not valid JSON") from None
    if not isinstance(body, dict):
        raise BadInput("body", "expected a JSON object")
    allowed_set = set(allowed)
    if allowed_set:
        unknown = sorted(k for k in body if k not in allowed_set)
        if unknown:
            raise BadInput(str(unknown[0])[:40], "unknown field")
    for key in required:
        if key not in body:
            raise BadInput(key, "required")
    return body


def number_in(data: Mapping[str, Any], key: str, low: float, high: float, default: float | None = None) -> float:
    """A finite number in ``[low, high]`` (JSON number, or the text of one in a query string)."""
    if key not in data:
        if default is None:
            raise BadInput(key, "required")
        return default
    value = data[key]
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise BadInput(key, f"expected a number from {low:g} to {high:g}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not low <= value <= high:
        raise BadInput(key, f"expected a number from {low:g} to {high:g}")
    return float(value)


def int_in(data: Mapping[str, Any], key: str, low: int, high: int, default: int | None = None) -> int:
    """An integer in ``[low, high]``."""
    if key not in data:
        if default is None:
            raise BadInput(key, "required")
        return default
    value = data[key]
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(key, f"expected an integer from {low} to {high}")
    return value


def text_in(data: Mapping[str, Any], key: str, *, max_len: int, min_len: int = 1, default: str | None = None) -> str:
    if key not in data or data[key] is None:
        if default is None:
            raise BadInput(key, "required")
        return default
    value = data[key]
    if not isinstance(value, str) or not min_len <= len(value) <= max_len:
        raise BadInput(key, f"expected a string of {min_len} to {max_len} characters")
    return value


def phone_in(data: Mapping[str, Any], key: str, *, min_digits: int = 3, max_digits: int = 20,
             default: str | None = None) -> str:
    """Digits (a leading ``+`` allowed and dropped)."""
    value = text_in(data, key, max_len=max_digits + 1, default=default)
    digits = value[1:] if value.startswith("+") else value
    if not digits.isdigit() or not min_digits <= len(digits) <= max_digits or not digits.isascii():
        raise BadInput(key, f"expected {min_digits} to {max_digits} digits")
    return digits


class OneLineParser(argparse.ArgumentParser):
    """A simulator's command line refuses bad input in one line and exit 2, like ``volna``'s."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")
