"""Shared by the API tests: the app on a free port over real sockets, tokens, a client (no tests here)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from engine.api.app import ApiOptions, make_app
from engine.api.auth import create_token
from engine.context import Context


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class Api:
    """A client of the running app with one token (or none)."""

    def __init__(self, base: str, session: aiohttp.ClientSession, token: str | None = None) -> None:
        self.base, self.session, self.token = base, session, token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**out, **(extra or {})}

    def as_(self, token: str | None) -> Api:
        return Api(self.base, self.session, token)

    async def call(self, method: str, path: str, *, json_body: Any = None, data: Any = None,
                   headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> Reply:
        kwargs: dict[str, Any] = {"headers": self.headers(headers), "params": params}
        if json_body is not None:
            kwargs["json"] = json_body
        elif data is not None:
            kwargs["data"] = data
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            raw = await resp.read()
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = raw.decode(errors="replace")
            return Reply(resp.status, body, dict(resp.headers))

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.call("POST", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.call("DELETE", path, **kw)


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """The app on a free port; yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    try:
        addr = runner.addresses[0]
        yield f"http://{addr[0]}:{addr[1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def api_client(ctx: Context, role: str = "admin", options: ApiOptions | None = None,
                     **app_kwargs: Any) -> AsyncIterator[Api]:
    """The API over a real socket, and a client holding a fresh token of ``role``."""
    token = await create_token(ctx.redis, role, f"test-{role}")
    async with serving(make_app(ctx, options=options, **app_kwargs)) as base, aiohttp.ClientSession() as session:
        yield Api(base, session, token)


async def tokens(redis: aioredis.Redis, *roles: str) -> dict[str, str]:
    return {role: await create_token(redis, role, f"test-{role}") for role in roles}
