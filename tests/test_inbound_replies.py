"""Replies that say stop (issue 14, acceptance 3): "Стоп." in an MO SMS split into two
concatenated parts arriving on binds of two different dispatchers, and "STOP" in WhatsApp (the
gateway simulator's signed webhook into the webhook endpoint), each put the debtor on the
stop-list within 1 s; nothing is sent to that debtor afterwards by any dispatcher, while the
others' messages go."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, date, datetime

import aiohttp
import redis.asyncio as aioredis

from connectors.messengers.endpoint import WebhookSecrets, make_webhook_app
from connectors.smpp import SmppConnector
from engine.calendar.clock import ScaledClock
from engine.dispatch.correlation import Correlation
from engine.dispatch.finisher import Finisher
from engine.dispatch.inbound import Inbound
from engine.dispatch.lifecycle import Lifecycle
from engine.domain.outcomes import Channel
from engine.port import InboundEvent
from engine.store import keys
from simulators.gateway import GatewaySimulator
from simulators.gateway import Knobs as GatewayKnobs
from simulators.smsc import Knobs, SmscSimulator
from tests.harness import context, load_wave, make_settings, results, task, wait_until
from tests.test_messengers_support import serve
from tests.test_smpp_engine import runners
from tests.test_smpp_support import account

DAY = date(2026, 12, 7)
SMS_DEBTOR, WA_DEBTOR, OTHER = "+79161230001", "+79161230002", "+79161230003"


def msk(hour: int) -> int:
    return int(datetime(DAY.year, DAY.month, DAY.day, hour - 3, tzinfo=UTC).timestamp() * 1000)


async def test_stop_by_sms_in_two_parts_on_two_binds_and_by_whatsapp(redis_url: str, redis: aioredis.Redis) -> None:
    clock = ScaledClock(msk(7))  # the window opens at 08:00: the debtors' messages wait in the queue
    settings = make_settings(redis_url)
    ctxs = [context(settings, clock, aioredis.from_url(redis_url, decode_responses=True)) for _ in range(2)]
    hook_ctx = context(settings, clock, redis)
    ctx = ctxs[0]
    rows = [task(1, debtor="d1", phone=SMS_DEBTOR), task(2, debtor="d1", phone=SMS_DEBTOR, channel="ivr"),
            task(3, debtor="d2", phone=WA_DEBTOR), task(4, debtor="d3", phone=OTHER)]
    await load_wave(ctx, "w1", DAY, rows)
    correlation = Correlation(hook_ctx, Finisher(hook_ctx, Lifecycle(hook_ctx)))
    secrets = WebhookSecrets(whatsapp_app_secrets=("sim-app-secret",))
    async with SmscSimulator(Knobs()) as smsc, serve(make_webhook_app(correlation.record, secrets)) as hook, \
            GatewaySimulator(GatewayKnobs(whatsapp_webhook_url=hook + "/webhooks/whatsapp")) as gateway:
        conns = [[SmppConnector.from_config({"accounts": [account(smsc.port, binds=1)]})] for _ in ctxs]
        async with runners(ctxs, conns):
            await asyncio.gather(*(c.wait_bound(5.0) for [c] in conns))
            # "Стоп." in two parts, one on each dispatcher's bind.
            t0 = time.monotonic()
            answer = smsc.send_mo({"source": SMS_DEBTOR.lstrip("+"), "destination": "4242", "text": "Стоп.",
                                   "parts": 2, "bind": [0, 1]})
            assert len(answer["parts"]) == 2 and answer["parts"][0]["bind"] != answer["parts"][1]["bind"]

            async def sms_stopped() -> bool:
                return await ctx.stoplist.get("debtor", "d1") is not None
            await wait_until(sms_stopped, 5, 0.01)
            assert time.monotonic() - t0 < 1.0
            # "STOP" in WhatsApp, through the signed webhook.
            t0 = time.monotonic()
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{gateway.url}/inbound/whatsapp",
                                     json={"from": WA_DEBTOR.lstrip("+"), "text": "STOP"}) as resp:
                    assert resp.status == 202

            async def wa_stopped() -> bool:
                return await ctx.stoplist.get("debtor", "d2") is not None
            await wait_until(wa_stopped, 5, 0.01)
            assert time.monotonic() - t0 < 1.0
            # The window opens: the third debtor's message goes, none to the two who said stop.
            clock.start_ms, clock.epoch_real_ms = msk(12), time.time_ns() // 1_000_000

            async def other_sent() -> bool:
                return OTHER.lstrip("+") in smsc.stats.per_destination
            await wait_until(other_sent, 20)
            await asyncio.sleep(0.5)
    assert SMS_DEBTOR.lstrip("+") not in smsc.stats.per_destination
    assert WA_DEBTOR.lstrip("+") not in smsc.stats.per_destination
    recs = await results(redis, "w1")
    outcomes = {r["task_id"]: r["outcome"] for r in recs if r["kind"] == "result" and r["final"]}
    assert outcomes["t1"] == outcomes["t2"] == outcomes["t3"] == "cancelled"  # every queued task, any channel
    replies = [r for r in recs if r["kind"] == "inbound"]
    by_debtor = {r["debtor_id"]: r for r in replies}
    assert len(replies) == 2 and by_debtor["d1"]["data"]["text"] == "Стоп."
    assert by_debtor["d1"]["outcome"] == "inbound_message" and by_debtor["d1"]["data"]["parts"] == 2
    assert by_debtor["d1"]["data"]["stop_reason"] == "refused" and by_debtor["d1"]["channel"] == "sms"
    assert by_debtor["d2"]["data"]["text"] == "STOP" and by_debtor["d2"]["channel"] == "whatsapp"
    audit = [f for _, f in await redis.xrange(keys.AUDIT)]
    assert {(a["what"], a["target"], a["from"]) for a in audit} == {
        ("stoplist.add", "debtor:d1", "inbound:sms"), ("stoplist.add", "debtor:d2", "inbound:whatsapp")}
    assert json.loads(audit[0]["detail"])["reason"] == "refused"
    entry = await ctx.stoplist.get("debtor", "d1")
    assert entry is not None and (entry.reason, entry.by) == ("refused", "inbound:sms")
    for c in ctxs:
        await c.redis.aclose()


async def test_a_representative_reply_and_a_redelivered_message(redis_url: str, redis: aioredis.Redis) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(msk(10)), redis)
    await load_wave(ctx, "w1", DAY, [task(1, debtor="d1", phone=SMS_DEBTOR)], start=False)
    inbound = Inbound(ctx)
    event = InboundEvent(channel=Channel.SMS, phone=SMS_DEBTOR, kind="message", source_id="sms:x1",
                         text="Добрый день. Общайтесь с моим ПРЕДСТАВИТЕЛЕМ!!")
    assert await inbound.record(event) == "debtor"
    assert await inbound.record(event) == "duplicate"  # the SMSC delivered it again: once
    entry = await ctx.stoplist.get("debtor", "d1")
    assert entry is not None and entry.reason == "representative"
    assert len([r for r in await results(redis, "w1") if r["kind"] == "inbound"]) == 1
    hello = InboundEvent(channel=Channel.SMS, phone="+79169990001", kind="message", source_id="sms:x3",
                         text="Добрый день, оплачу завтра")
    assert await inbound.record(hello) == "unknown"
    assert await ctx.stoplist.get("phone", "+79169990001") is None  # no keyword: nothing stopped
    stop = InboundEvent(channel=Channel.WHATSAPP, phone="+79169990001", kind="message", source_id="wa:x4",
                        text="stop")
    assert await inbound.record(stop) == "unknown"
    phone_entry = await ctx.stoplist.get("phone", "+79169990001")  # an unknown number's stop: the number
    assert phone_entry is not None and phone_entry.reason == "refused"
