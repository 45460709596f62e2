"""A request body read whole, capped in size and in time: the API's JSON bodies and the webhooks'.

At most ``max_bytes``: refused before a byte is read when ``Content-Length`` says more, and the
read itself is capped too (a chunked body, or a decompressed one, says nothing beforehand).
Whole within ``timeout_s``: a client that stalls its body must not hold a handler (and its
admission slot) for ever. Either refusal leaves the rest of the body unread, so the caller
answers and closes the connection rather than draining it.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from aiohttp import web

READ_CHUNK = 1 << 16


class BodyRefused(Exception):
    """The body was not read whole; the caller turns this into its answer and closes the connection."""

    #: The HTTP status that says why.
    status: ClassVar[int]


class BodyTooLarge(BodyRefused):
    """Over ``max_bytes``."""

    status = 413

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"request body over {max_bytes} bytes")
        self.max_bytes = max_bytes


class BodyStalled(BodyRefused):
    """Not whole within ``timeout_s``."""

    status = 408

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the request body did not arrive within {timeout_s:g} s")
        self.timeout_s = timeout_s


async def read_body(request: web.BaseRequest, max_bytes: int, timeout_s: float) -> bytes:
    """The whole body, or :class:`BodyTooLarge` / :class:`BodyStalled`."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise BodyTooLarge(max_bytes)
    chunks = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.read(READ_CHUNK):
                chunks += chunk
                if len(chunks) > max_bytes:
                    raise BodyTooLarge(max_bytes)
    except TimeoutError:
        raise BodyStalled(timeout_s) from None
    return bytes(chunks)
