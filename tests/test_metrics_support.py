"""Helpers of the metrics tests (no tests here): an observed engine running a short, varied wave.

``observed_engine`` starts what production runs, in one test process:

* a dispatcher (the in-process ``Runner``) with a :class:`MeteredConnector` per channel, its
  ``/metrics`` served by ``serve_metrics`` as ``volna run --metrics-port`` does;
* an API-like app with its own ``Context`` (so its own metrics, as ``volna api`` has): the
  messengers' webhooks counted by the endpoint through ``Metrics``, late events recorded through
  its own correlation, ``/metrics`` from ``Metrics.handler``, the refresher in ``cleanup_ctx``;

and loads a wave that touches every metric: SMS through pacing, a cap hit, a throttled
request, a retry, a send that raises; calls answered and busy (busy is retried in an hour,
so the wave keeps running); WhatsApp delivered through signed webhooks, with unsigned and
badly signed ones beside them; Viber cascading to SMS; a zone whose window is closed; a
results consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
from aiohttp import web

from connectors.messengers.endpoint import WebhookSecrets, webhook_routes
from connectors.messengers.webhooks import sign_sha256
from engine.calendar.clock import ScaledClock
from engine.config.settings import RedisSettings
from engine.context import Context
from engine.dispatch.correlation import Correlation
from engine.dispatch.finisher import Finisher
from engine.dispatch.lifecycle import Lifecycle
from engine.domain.outcomes import Channel, Outcome
from engine.metrics.http import MetricsServer, serve_metrics
from engine.metrics.refresh import refreshing
from engine.port import Accepted, Connector, Final, LateEvent, Retry, SendRequest, SendResult, Target
from engine.store.connection import make_redis
from engine.store.keys import WaveKeys
from tests.harness import context, load_wave, make_settings, running, task, wait_until

DAY = date(2026, 12, 1)  # a Tuesday
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
WA_SECRET = "metrics-app-secret"
SECRETS = WebhookSecrets(whatsapp_app_secrets=(WA_SECRET,), whatsapp_verify_token="verify-me")
#: A debtor's name in the task's vars: it must never reach a log line or a label.
NAME = "Иванов Пётр Сергеевич"
KIND = {Channel.SMS: "smpp", Channel.IVR: "ami", Channel.WHATSAPP: "http", Channel.VIBER: "http"}
TARGET = {Channel.SMS: "smpp-acme", Channel.IVR: "pbx-trunk-1", Channel.WHATSAPP: "wa-main", Channel.VIBER: "rm-viber"}


class MeteredConnector(Connector):
    """A connector with no peer that reports its sessions and peer answers as the real ones do.

    What a task gets is chosen by its ``vars["_test"]``: ``raise`` (the send raises: the
    attempt ends ``unknown``), ``retry`` (a throttled answer once, then accepted), ``busy``,
    ``not_subscribed``; otherwise accepted and delivered (answered, for a call) as a late event
    — on WhatsApp the late event comes through the webhook instead (:attr:`webhook_ids`).
    """

    def __init__(self, channel: Channel, *, rate_per_s: float = 40.0, max_concurrent: int = 10,
                 late_s: float = 0.1) -> None:
        super().__init__()
        self.channel = channel
        self.target = TARGET[channel]
        self.rate_per_s, self.max_concurrent, self.late_s = rate_per_s, max_concurrent, late_s
        self.webhook_ids: asyncio.Queue[str] = asyncio.Queue()
        self.sends = 0
        self._retried: set[str] = set()
        self._pending: set[asyncio.Task[None]] = set()

    def targets(self) -> list[Target]:
        return [Target(self.target, self.rate_per_s, self.max_concurrent)]

    async def open(self) -> None:
        if self.metrics is not None:
            self.metrics.set_connections(KIND[self.channel], self.target, up=2, configured=2)

    async def close(self) -> None:
        for pending in list(self._pending):
            pending.cancel()
        if self.metrics is not None:
            self.metrics.set_connections(KIND[self.channel], self.target, up=0)

    async def send(self, request: SendRequest) -> SendResult:
        self.sends += 1
        how = str(request.task.vars.get("_test", ""))
        key = request.attempt.key
        cid = f"m-{key.replace(':', '-')}"
        http = self.channel in (Channel.WHATSAPP, Channel.VIBER)
        if how == "raise":
            # Connector errors may well quote the number: the log formatter masks it.
            raise ConnectionError(f"peer reset the connection while sending to {request.task.phone}")
        if how == "retry" and key not in self._retried:
            self._retried.add(key)
            if self.metrics is not None:
                if http:
                    self.metrics.gateway_response(self.target, 429)
                else:
                    self.metrics.throttled(KIND[self.channel], self.target)
            return Retry(0.2, "throttled")
        if http and self.metrics is not None:
            self.metrics.gateway_response(self.target, 200)
        if how == "not_subscribed":
            return Final(Outcome.NOT_SUBSCRIBED, provider_code="unsubscribe")
        if self.channel is Channel.WHATSAPP:
            self.webhook_ids.put_nowait(cid)
            return Accepted(cid)
        if self.channel is Channel.IVR:
            late = (LateEvent(self.channel, cid, Outcome.BUSY, provider_code="reason=5;cause=17") if how == "busy"
                    else LateEvent(self.channel, cid, Outcome.ANSWERED, provider_code="reason=4;cause=16",
                                   data={"seconds_listened": 12}))
        else:
            late = LateEvent(self.channel, cid, Outcome.DELIVERED, provider_code="DELIVRD")
        job = asyncio.create_task(self._late(late))
        self._pending.add(job)
        job.add_done_callback(self._pending.discard)
        return Accepted(cid, hold_slot=self.channel is Channel.IVR, final_timeout_s=600)

    async def _late(self, event: LateEvent) -> None:
        await asyncio.sleep(self.late_s)
        await self.emit(event)


def wave_rows() -> list[dict[str, Any]]:
    """The observed wave: every channel, every path above (phones are distinct Moscow mobiles)."""
    v = {"name": NAME}
    rows: list[dict[str, Any]] = []
    rows += [task(n, channel="sms") for n in range(1, 41)]
    rows += [task(41 + i, channel="sms", debtor="d-cap") for i in range(3)]      # the third hits the day cap
    rows += [task(50, channel="sms", vars_extra={"_test": "raise"})]
    rows += [task(51, channel="sms", vars_extra={"_test": "retry"})]
    rows += [task(60 + i, channel="ivr") for i in range(4)]
    rows += [task(64 + i, channel="ivr", vars_extra={"_test": "busy"}) for i in range(2)]  # retried in 1 h
    rows += [task(70 + i, channel="whatsapp") for i in range(5)]
    rows += [task(75, channel="whatsapp", vars_extra={"_test": "retry"})]
    rows += [task(80 + i, channel="viber", cascade=["sms"], vars_extra={"_test": "not_subscribed"})
             for i in range(3)]
    rows += [task(90, channel="sms", tz="Asia/Kamchatka")]                       # 21:00 there: window missed
    for row in rows:
        row["vars"].update(v, **row.pop("vars_extra", {}))
    return rows


#: Tasks that stay queued when the rest is done: the two busy calls (retried an hour later).
PARKED = 2


@dataclass
class Observed:
    ctx: Context
    api_ctx: Context
    dispatcher: MetricsServer
    api_port: int
    connectors: dict[Channel, MeteredConnector]
    session: aiohttp.ClientSession
    webhook_statuses: list[int] = field(default_factory=list)

    @property
    def dispatcher_url(self) -> str:
        return f"http://127.0.0.1:{self.dispatcher.port}/metrics"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/metrics"

    async def scrape(self, url: str) -> str:
        async with self.session.get(url) as resp:
            assert resp.status == 200, resp.status
            return await resp.text()

    async def start(self) -> None:
        await self.ctx.waves.change("w1", "start")

    async def settled(self, timeout_s: float = 60.0) -> None:
        """Every task final except the parked ones, nothing in flight."""
        async def done() -> bool:
            c = await self.ctx.waves.counts("w1")
            return c.get("queued", 0) == PARKED and c.get("leased", 0) == 0 and c.get("final", 0) >= 1
        await wait_until(done, timeout_s)


@contextlib.asynccontextmanager
async def observed_engine(redis_url: str, *, refresh_s: float = 0.2, start: bool = True,
                          sms_rate_per_s: float = 20.0) -> AsyncIterator[Observed]:
    """The engine and the API running, the wave loaded (and started unless ``start=False``:
    then :meth:`Observed.start` starts it, e.g. once a scraper is watching)."""
    redis = make_redis(RedisSettings(url=redis_url))
    api_redis = make_redis(RedisSettings(url=redis_url))
    clock = ScaledClock(NOON_MSK)
    settings = make_settings(redis_url)
    ctx = context(settings, clock, redis)
    api_ctx = context(settings, clock, api_redis)
    ctx.metrics.refresh_s = api_ctx.metrics.refresh_s = refresh_s
    try:
        await load_wave(ctx, "w1", DAY, wave_rows(), start=start)
        await redis.xgroup_create(WaveKeys("w1").results, "planner", id="0", mkstream=True)
        connectors = {ch: MeteredConnector(ch) for ch in (Channel.SMS, Channel.IVR, Channel.WHATSAPP, Channel.VIBER)}
        connectors[Channel.SMS].rate_per_s = sms_rate_per_s
        api_correlation = Correlation(api_ctx, Finisher(api_ctx, Lifecycle(api_ctx)))
        app = web.Application()
        app.router.add_get("/metrics", api_ctx.metrics.handler())
        app.add_routes(webhook_routes(api_correlation.record, SECRETS, metrics=api_ctx.metrics))
        app.cleanup_ctx.append(refreshing(api_ctx.metrics, api_ctx.redis, api_ctx.clock, api_ctx.windows))
        api_runner = web.AppRunner(app, access_log=None)
        await api_runner.setup()
        site = web.TCPSite(api_runner, "127.0.0.1", 0)
        await site.start()
        dispatcher = await serve_metrics(0, ctx.metrics.registry, host="127.0.0.1")
        async with aiohttp.ClientSession() as session, running(ctx, list(connectors.values())):
            obs = Observed(ctx, api_ctx, dispatcher, api_runner.addresses[0][1], connectors, session)
            poster = asyncio.create_task(_post_webhooks(obs))
            try:
                yield obs
            finally:
                poster.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poster
                await dispatcher.close()
                await api_runner.cleanup()
    finally:
        await redis.aclose()
        await api_redis.aclose()


def wa_status(message_id: str, status: str) -> bytes:
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "2"},
             "statuses": [{"id": message_id, "status": status, "timestamp": "1750000000",
                           "recipient_id": "79160000070"}]}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "3", "changes": [{"value": value, "field": "messages"}]}]}).encode()


async def _post_webhooks(obs: Observed) -> None:
    """Delivers each accepted WhatsApp message by a signed webhook; an unsigned and a badly
    signed one go with the first (refused, counted, and recording nothing)."""
    url = f"http://127.0.0.1:{obs.api_port}/webhooks/whatsapp"
    first = True
    while True:
        cid = await obs.connectors[Channel.WHATSAPP].webhook_ids.get()
        body = wa_status(cid, "delivered")
        attempts: list[dict[str, str]] = [{"X-Hub-Signature-256": sign_sha256(WA_SECRET, body)}]
        if first:
            attempts = [{}, {"X-Hub-Signature-256": sign_sha256("not-the-secret", body)}, *attempts]
            first = False
        for headers in attempts:
            async with obs.session.post(url, data=body, headers=headers) as resp:
                obs.webhook_statuses.append(resp.status)
