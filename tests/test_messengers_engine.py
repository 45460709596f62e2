"""Messengers through the whole engine: dispatcher → HTTP gateway simulator → signed webhooks →
correlation → results. The SMS fallback goes to the SMSC simulator over SMPP when that
connector is present, else to the recording test double.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from connectors.messengers import ViberConnector, WhatsAppConnector
from connectors.messengers.endpoint import webhook_routes
from connectors.registry import webhook_secrets
from engine.calendar.clock import ScaledClock
from engine.config.settings import Settings
from engine.domain.outcomes import Channel, Outcome
from simulators.gateway import GatewaySimulator
from simulators.gateway.knobs import Knobs
from tests.fakes import RecordingConnector
from tests.harness import context, final_count, load_wave, make_settings, results, running, task, wait_until
from tests.test_messengers_support import serve, viber_config, wa_config

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


def _settings(redis_url: str, gateway_url: str) -> Settings:
    return make_settings(redis_url, channels={
        "whatsapp": {"connector": wa_config(gateway_url)},
        "viber": {"connector": viber_config(gateway_url)},
    })


async def _webhooks(settings: Settings, sink: Any) -> web.Application:
    app = web.Application()
    app.add_routes(webhook_routes(sink, webhook_secrets(settings)))
    return app


async def test_viber_without_account_cascades_to_sms_exactly(redis: aioredis.Redis, redis_url: str) -> None:
    knobs = Knobs(seed=7, no_account_share=0.3, delivered_min_s=0.01, delivered_max_s=0.05, read_share=0.0)
    async with GatewaySimulator(knobs) as sim:
        settings = _settings(redis_url, sim.url)
        ctx = context(settings, ScaledClock(NOON_MSK), redis)
        rows = [task(n, channel="viber", cascade=["sms"]) for n in range(1000)]
        await load_wave(ctx, "w1", DAY, rows)
        viber = ViberConnector.from_config(settings.channel(Channel.VIBER).connector)
        sms = RecordingConnector(channel=Channel.SMS, outcome=Outcome.DELIVERED, late_after_s=0.01)
        async with running(ctx, [viber, sms]) as runner:
            async with serve(await _webhooks(settings, runner.correlation.record)) as hooks:
                knobs.viber_webhook_url = f"{hooks}/webhooks/viber"

                async def done() -> bool:
                    return await final_count(ctx, "w1") >= 1000

                await wait_until(done, timeout_s=90)
                await sim.wait_webhooks()
    without = {r["phone"] for r in rows if not sim.has_account("viber", r["phone"])}
    assert 250 < len(without) < 350
    sms_phones = [s.phone for s in sms.sent]
    assert sorted(sms_phones) == sorted(without), "exactly the numbers without Viber got an SMS"
    recs = await results(redis, "w1")
    finals = {r["task_id"]: r for r in recs if r["kind"] == "result" and r["final"]}
    assert len(finals) == 1000
    delivered_viber = {r["task_id"] for r in finals.values() if r["channel"] == "viber" and r["outcome"] in
                       ("delivered", "read")}
    got_sms = {s.task_id for s in sms.sent}
    assert not delivered_viber & got_sms, "nobody got both a delivered Viber message and an SMS"
    assert Counter(sim.stats.accepted["viber"].values()).keys() <= {1}


async def test_whatsapp_429_storm_and_5xx_burst(redis: aioredis.Redis, redis_url: str) -> None:
    # The simulator takes 40/s while the account is configured for 80/s: a storm of 429s.
    knobs = Knobs(seed=3, rate_limit_per_s=40, rate_burst=5, retry_after_s=0.2, error_share=0.05, error_status=503,
                  delivered_min_s=0.01, delivered_max_s=0.05, read_share=0.3, duplicate_share=0.2)
    async with GatewaySimulator(knobs) as sim:
        settings = _settings(redis_url, sim.url)
        ctx = context(settings, ScaledClock(NOON_MSK), redis)
        await load_wave(ctx, "w1", DAY, [task(n, channel="whatsapp") for n in range(300)])
        wa = WhatsAppConnector.from_config(settings.channel(Channel.WHATSAPP).connector)
        async with running(ctx, [wa]) as runner:
            async with serve(await _webhooks(settings, runner.correlation.record)) as hooks:
                knobs.whatsapp_webhook_url = f"{hooks}/webhooks/whatsapp"
                sim.burst("whatsapp", 40, 503)

                async def done() -> bool:
                    return await final_count(ctx, "w1") >= 300

                await wait_until(done, timeout_s=90)
                await sim.wait_webhooks()
                await asyncio.sleep(0.3)
    finals = Counter(r["task_id"] for r in await results(redis, "w1") if r["kind"] == "result" and r["final"])
    assert len(finals) == 300 and max(finals.values()) == 1
    assert max(sim.stats.accepted["whatsapp"].values()) == 1, "the simulator accepted a message twice"
    assert sim.stats.throttled["whatsapp"] > 0 and sim.stats.server_errors["whatsapp"] >= 40
