"""Helpers of the messenger tests (no tests here): tasks, requests, configs, a recording server.

The OpenAPI specs are read in place from ``../shared/specs`` (never copied into the repo);
the 1 MB Meta spec is parsed once per session (C YAML loader when available).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from engine.domain.models import Attempt, Task
from engine.domain.outcomes import Channel
from engine.domain.scenarios import Messages, Scenario, WhatsAppTemplate
from engine.port import LateEvent, SendRequest

SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs"
META_SPEC = SPECS / "meta-business-messaging-api_v23.0.yaml"
ROUTEMOBILE_SPEC = SPECS / "routemobile-viber-business-messages-openapi.yaml"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def load_spec(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        spec: dict[str, Any] = yaml.load(fh, Loader=_Loader)  # CSafeLoader / SafeLoader
    return spec


SCENARIO = Scenario(
    name="soft",
    messages=Messages(
        viber="{creditor}: долг {amount:money} по л/с {account}",
        whatsapp=WhatsAppTemplate(name="debt_reminder_soft", language="ru",
                                  body_params=["creditor", "account", "amount:money"]),
    ),
)

VARS: dict[str, str | int | float | bool | None] = {"creditor": "Водоканал", "account": "12-345", "amount": 1234.5}


def phone(n: int) -> str:
    return f"+7916{n:07d}"


def request(n: int, channel: Channel, target: str, *, text: str | None = None, attempt: int = 1,
            vars: dict[str, Any] | None = None) -> SendRequest:
    task = Task(task_id=f"t{n}", wave_id="w1", campaign_id="c1", debtor_id=f"d{n}", channel=channel,
                phone=phone(n), scenario="soft", vars=VARS if vars is None else vars)
    att = Attempt(task_id=task.task_id, wave_id="w1", number=attempt, channel=channel)
    if channel is Channel.VIBER and text is None:
        text = f"Водоканал: долг 1 234,50 ₽ по л/с 12-345 (#{n})"
    return SendRequest(task=task, attempt=att, target=target, text=text, scenario=SCENARIO)


FAST_HTTP = {"connect_timeout_s": 1.0, "read_timeout_s": 2.0, "backoff_base_s": 0.01, "backoff_max_s": 0.05,
             "retry_budget_s": 5.0, "max_attempts": 6, "health_probe_s": 0.05, "unhealthy_retry_s": 30.0}


def wa_config(base_url: str, *, token: str = "sim-wa-token", **http: Any) -> dict[str, Any]:
    return {"base_url": base_url, "http": {**FAST_HTTP, **http},
            "accounts": [{"name": "wa-test", "phone_number_id": "1000000001", "access_token": token}],
            "app_secret": "sim-app-secret", "verify_token": "verify-me"}


def viber_config(base_url: str, *, password: str = "sim-password", **http: Any) -> dict[str, Any]:
    return {"base_url": base_url, "http": {**FAST_HTTP, **http},
            "accounts": [{"name": "viber-test", "username": "volna", "password": password}],
            "callback_token": "sim-callback-token", "callback_hmac_secret": "sim-hmac-secret"}


class Recorder:
    """A sink that records events (the core's correlation in production)."""

    def __init__(self) -> None:
        self.events: list[LateEvent] = []

    async def __call__(self, event: LateEvent) -> None:
        self.events.append(event)

    def by_id(self) -> dict[str, list[LateEvent]]:
        out: dict[str, list[LateEvent]] = {}
        for e in self.events:
            out.setdefault(e.correlation_id, []).append(e)
        return out


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free port (a real socket); yields its base URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


Handler = Callable[[web.Request, Any], Awaitable[web.Response]]


def capture_app(bodies: list[tuple[str, dict[str, str], Any]], answer: Handler | None = None) -> web.Application:
    """Records every request (path, headers, JSON body); answers with ``answer`` or 200 ``{}``."""

    async def handle(req: web.Request) -> web.Response:
        raw = await req.read()
        import json

        data = json.loads(raw) if raw else None
        bodies.append((req.path, dict(req.headers), data))
        if answer is not None:
            return await answer(req, data)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)
