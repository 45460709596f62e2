"""The app factory's hooks: webhooks (routes or a sub-app) and /metrics beside the API, outside its auth."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from connectors.messengers.endpoint import WebhookSecrets, make_webhook_app, webhook_routes
from engine.api.app import make_app
from engine.api.cli import AccessLog
from engine.calendar.clock import ScaledClock
from tests.harness import context, make_settings
from tests.test_api_helpers import serving

NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
SECRETS = WebhookSecrets(whatsapp_app_secrets=("app-secret",), whatsapp_verify_token="verify-me")
HANDSHAKE = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "4242"}


async def sink(event: Any) -> None:
    return None


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text="volna_up 1\n", content_type="text/plain")


@pytest.mark.parametrize("mount", ["routes", "subapp"])
async def test_webhooks_and_metrics_are_served_beside_the_api(redis: aioredis.Redis, redis_url: str,
                                                              mount: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    webhooks = (webhook_routes(sink, SECRETS) if mount == "routes"
                else make_webhook_app(sink, SECRETS, prefix=""))
    app = make_app(ctx, webhooks=webhooks, metrics=metrics)
    async with serving(app) as base, aiohttp.ClientSession() as session:
        async with session.get(f"{base}/webhooks/whatsapp", params=HANDSHAKE) as resp:
            assert resp.status == 200 and await resp.text() == "4242"  # no bearer token asked
        async with session.post(f"{base}/webhooks/whatsapp", data=b"{}") as resp:
            assert resp.status == 401 and await resp.text() == "signature missing"  # its own check
        async with session.get(f"{base}/metrics") as resp:
            assert resp.status == 200 and "volna_up 1" in await resp.text()
        async with session.get(f"{base}/api/v1/waves") as resp:
            assert resp.status == 401


def test_access_log_masks_phones_and_drops_queries(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.access")
    access = AccessLog(logger, "")
    request = make_mocked_request("DELETE", "/api/v1/stoplist/phone/8%20916%20123-45-67?x=+79161234567")
    with caplog.at_level(logging.INFO, logger="test.access"):
        access.log(request, web.Response(status=200), 0.0123)
        access.log(make_mocked_request("GET", "/api/v1/results?wave=w1&since=1"), web.Response(), 0.001)
    lines = [r.getMessage() for r in caplog.records]
    assert "/api/v1/stoplist/phone/*** 200" in lines[0] and "916" not in lines[0] and "?" not in lines[0]
    assert "GET /api/v1/results 200" in lines[1] and "since" not in lines[1]
