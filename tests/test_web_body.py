"""The one capped, timed body reader (``engine.web.body``) both the API and the webhooks use, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from engine.web.body import BodyRefused, read_body
from tests.test_api_helpers import serving

MAX_BYTES = 1000


def _app(timeout_s: float = 5.0) -> web.Application:
    async def echo_length(request: web.Request) -> web.Response:
        try:
            body = await read_body(request, MAX_BYTES, timeout_s)
        except BodyRefused as exc:
            resp = web.Response(status=exc.status, text=str(exc))
            resp.force_close()
            return resp
        return web.Response(text=str(len(body)))

    app = web.Application()
    app.router.add_post("/", echo_length)
    return app


async def _raw(url: str, data: bytes, wait_s: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), wait_s)
    finally:
        writer.close()


async def test_a_body_up_to_the_cap_is_read_whole_announced_or_chunked() -> None:
    async def chunks(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"x" * 100

    async with serving(_app()) as url, aiohttp.ClientSession() as session:
        async with session.post(url, data=b"x" * MAX_BYTES) as resp:
            assert (resp.status, await resp.text()) == (200, str(MAX_BYTES))
        async with session.post(url, data=chunks(10)) as resp:
            assert (resp.status, await resp.text()) == (200, str(MAX_BYTES))
        async with session.post(url, data=chunks(11)) as resp:  # chunked: found out while reading
            assert resp.status == 413


async def test_a_body_announced_too_big_is_refused_before_a_byte_of_it_is_sent() -> None:
    async with serving(_app()) as url:
        answer = await _raw(url, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413") and b"over 1000 bytes" in answer


async def test_a_stalled_body_is_refused_in_time() -> None:
    async with serving(_app(timeout_s=0.3)) as url:
        started = asyncio.get_running_loop().time()
        answer = await _raw(url, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
        assert answer.startswith(b"HTTP/1.1 408") and asyncio.get_running_loop().time() - started < 3.0
