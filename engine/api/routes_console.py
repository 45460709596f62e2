"""What the console reads beside the waves: the day's charts, a debtor or phone look-up, health.

``GET /api/v1/charts`` folds the results streams into per-minute series incrementally (one
:class:`engine.waves.series.MinuteSeries` per wave, kept by the app: a poll reads only the
records since the last one) and adds the day's contact windows zone by zone.
``GET /api/v1/lookup`` is :func:`engine.api.lookup.lookup`, with phones masked for the roles
without :attr:`Perm.PHONES`. ``GET /api/v1/health`` is the dispatchers' reports
(:mod:`engine.metrics.health`) and the queues' depth of the waves that run.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from aiohttp import web

from engine.api.access import CTX, SERIES, allow, principal
from engine.api.auth import Perm
from engine.api.http import ApiError, answers
from engine.api.lookup import lookup
from engine.api.models import Charts, EngineHealth, LookupAnswer, ZoneWindow
from engine.api.routes_waves import existing_wave
from engine.context import Context
from engine.domain.outcomes import MESSAGE_CHANNELS, Channel
from engine.domain.phones import mask
from engine.domain.wave import WaveState
from engine.errors import VolnaError, WaveError
from engine.metrics.health import queue_depth, read_reports
from engine.store.keys import CHANNEL_ORDER
from engine.store.schema import Counter, WaveCounts
from engine.waves.series import MINUTE_MS, MinuteSeries, catch_up, rate_kind

routes = web.RouteTableDef()

#: A dispatcher's report older than this is shown as stale (they write every 2 s).
HEALTH_STALE_MS = 10_000
#: The series run up to now when their last record is at most this old.
RECENT_MS = 6 * 3600 * 1000
#: Waves whose series the app keeps (the oldest are dropped past it).
SERIES_KEPT = 500


def day_query(request: web.Request) -> date:
    raw = request.query.get("day")
    if raw is None:
        return datetime.fromtimestamp(request.app[CTX].clock.now_ms() / 1000, UTC).date()
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "day must be a date, YYYY-MM-DD") from None


async def day_waves(ctx: Context, day: date) -> list[str]:
    out = []
    for wave_id in await ctx.waves.list():
        try:
            _, wave_day = await ctx.wave_day(wave_id)
        except WaveError:
            continue
        if wave_day == day:
            out.append(wave_id)
    return sorted(out)


@routes.get("/api/v1/charts")
@allow(Perm.READ)
@answers(Charts)
async def charts(request: web.Request) -> Charts:
    """Sends and finals per minute per channel, answer/delivery rates, outcomes, and the windows."""
    ctx = request.app[CTX]
    wave = request.query.get("wave")
    if wave is not None:
        if not wave or len(wave) > 200:
            raise ApiError(400, "wave: 1-200 characters")
        await existing_wave(ctx, wave)
        _, day = await ctx.wave_day(wave)
        waves = [wave]
    else:
        day = day_query(request)
        waves = await day_waves(ctx, day)
    cache = request.app[SERIES]
    merged = MinuteSeries()
    for wave_id in waves:
        series = cache.get(wave_id)
        if series is None:
            if len(cache) >= SERIES_KEPT:
                cache.pop(next(iter(cache)))
            series = cache[wave_id] = MinuteSeries()
        await catch_up(ctx.redis, wave_id, series)
        merged.merge(series)
    now = ctx.clock.now_ms()
    last = max((m for d in (merged.sends, merged.finals) for m, _ in d), default=None)
    # Up to now while the day is recent: the minutes with nothing sent are zeros, not a gap.
    recent = last is not None and 0 <= now - last * MINUTE_MS <= RECENT_MS
    view = merged.view(to_ms=now if recent else None)
    windows = await zone_windows(ctx, waves, day)
    return Charts.model_validate({
        "day": day.isoformat(), "waves": waves, "now_ms": now, **view,
        "rate_kinds": {c: rate_kind(c) for c in view["rates"]}, "windows": windows,
    })


async def zone_windows(ctx: Context, waves: list[str], day: date) -> list[ZoneWindow]:
    """The windows of ``day`` in each zone the waves' tasks are in, for calls and for messages."""
    tasks: dict[str, int] = {}
    kinds: set[Channel] = set()
    campaign: str | None = None
    for wave_id in waves:
        counts = WaveCounts(await ctx.waves.counts(wave_id))
        for label, n in counts.zones().items():
            if not label.startswith("multi:"):
                tasks[label] = tasks.get(label, 0) + n
        for ch in CHANNEL_ORDER:
            if counts.get(Counter.CHANNEL_TOTAL, channel=ch):
                kinds.add(Channel.IVR if ch is Channel.IVR else Channel.SMS)
        campaign = campaign or (await ctx.waves.get(wave_id)).campaign_id
    now = ctx.clock.now_ms()
    out = []
    for zone in sorted(tasks):
        for channel in sorted(kinds or {Channel.SMS}):
            try:
                win = ctx.windows.window_for(zone, day, channel, campaign if len(waves) == 1 else None)
            except (ValueError, KeyError):
                continue
            out.append(ZoneWindow(
                zone=zone, tasks=tasks[zone], channel="messages" if channel in MESSAGE_CHANNELS else channel.value,
                open_now=bool(win and win[0] <= now < win[1]),
                opens_at_ms=win[0] if win else None, closes_at_ms=win[1] if win else None,
            ))
    return out


@routes.get("/api/v1/lookup")
@allow(Perm.READ)
@answers(LookupAnswer)
async def lookup_debtor(request: web.Request) -> LookupAnswer:
    """A debtor (``debtor=``) or a phone (``phone=``): tasks, caps used, phone status, stop-list."""
    ctx = request.app[CTX]
    debtor, phone = request.query.get("debtor"), request.query.get("phone")
    if bool(debtor) == bool(phone):
        raise ApiError(400, "give one of debtor or phone")
    kind = "debtor" if debtor else "phone"
    value = debtor or phone or ""
    if len(value) > 128:
        raise ApiError(400, f"{kind}: at most 128 characters")
    day = day_query(request)
    try:
        found = await lookup(ctx, kind, value, day)
    except VolnaError as exc:
        raise ApiError(400, f"{kind}: {exc}") from None
    clear = principal(request).can(Perm.PHONES)
    shown = (lambda p: p) if clear else mask

    def entry(e: dict[str, object]) -> dict[str, object]:
        return {**e, "value": shown(str(e["value"]))} if e["kind"] == "phone" else e

    return LookupAnswer.model_validate({
        "kind": kind, "query": value if kind == "debtor" or clear else mask(found.phones[0]), "day": day.isoformat(),
        "masked": not clear, "debtors": found.debtors, "phones": [shown(p) for p in found.phones],
        "tasks": [{**t, "phone": shown(t["phone"])} for t in found.tasks], "caps": found.caps,
        "phone_status": [{**s, "phone": shown(s["phone"])} for s in found.phone_status],
        "stoplist": [entry(e) for e in found.stoplist],
    })


@routes.get("/api/v1/health")
@allow(Perm.READ)
@answers(EngineHealth)
async def engine_health(request: web.Request) -> EngineHealth:
    """Every dispatcher's sessions, binds, gateway accounts and throttling; the running waves' queues."""
    ctx = request.app[CTX]
    now = ctx.clock.now_ms()
    try:
        async with asyncio.timeout(2.0):
            await ctx.redis.ping()
    except (TimeoutError, OSError):
        return EngineHealth(now_ms=now, redis=False, processes=[], queues=[])
    reports = await read_reports(ctx.redis, now, stale_after_ms=HEALTH_STALE_MS)
    live = []
    for wave_id in sorted(await ctx.waves.list()):
        try:
            info = await ctx.waves.get(wave_id)
        except WaveError:
            continue
        if info.state in (WaveState.RUNNING, WaveState.PAUSED):
            live.append((wave_id, info.state))
    depths = await queue_depth(ctx.redis, [w for w, _ in live], now)
    queues = [{**d, "state": s} for d, (_, s) in zip(depths, live, strict=True)]
    return EngineHealth.model_validate({"now_ms": now, "redis": True, "processes": reports, "queues": queues})
