"""Campaigns and waves: create, list, get (the manager's view of a wave), start/pause/resume/stop."""

from __future__ import annotations

import json
import time
from datetime import date
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from engine.api.app import CTX, OPTIONS, RATES, allow, audit_note, principal
from engine.api.auth import Perm
from engine.api.http import ID_PATTERN, ApiError, json_response, read_json
from engine.context import Context
from engine.domain.wave import TRANSITIONS, WaveState
from engine.errors import WaveError
from engine.store import keys
from engine.store.keys import WaveKeys
from engine.waves.status import status_view

routes = web.RouteTableDef()

CONTROL_ACTIONS = ("start", "pause", "resume", "stop")
#: How far back the per-channel rate looks (real time; the results stream ids are Redis time).
RATE_WINDOW_MS = 60_000
#: At most this many records are read for it; past that the rate is scaled from the span read.
RATE_SAMPLE = 5000
RATE_CACHE_S = 2.0


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign_id: str = Field(pattern=ID_PATTERN)
    title: str = Field(default="", max_length=200)


class WaveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wave_id: str = Field(pattern=ID_PATTERN)
    campaign_id: str = Field(pattern=ID_PATTERN)
    #: The debtors' local calendar day the wave runs on.
    day: date


# ---- campaigns -----------------------------------------------------------------------------

@routes.get("/api/v1/campaigns")
@allow(Perm.READ)
async def list_campaigns(request: web.Request) -> web.Response:
    raw = await request.app[CTX].redis.hgetall(keys.CAMPAIGNS)
    campaigns = [_campaign(v) for _, v in sorted(raw.items())]
    return json_response({"campaigns": campaigns})


@routes.post("/api/v1/campaigns")
@allow(Perm.CREATE, "campaign.create")
async def create_campaign(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    opts = request.app[OPTIONS]
    body = await read_json(request, CampaignIn, opts.max_body_bytes, opts.body_read_timeout_s)
    audit_note(request, "campaign.create", body.campaign_id)
    record = {"campaign_id": body.campaign_id, "title": body.title, "created_at": ctx.clock.now_ms(),
              "created_by": principal(request).name}
    if not await ctx.redis.hsetnx(keys.CAMPAIGNS, body.campaign_id, json.dumps(record, ensure_ascii=False)):
        raise ApiError(409, f"campaign {body.campaign_id!r} already exists")
    return json_response(_campaign(json.dumps(record)), status=201)


@routes.get("/api/v1/campaigns/{campaign_id}")
@allow(Perm.READ)
async def get_campaign(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    campaign_id = request.match_info["campaign_id"]
    raw = await ctx.redis.hget(keys.CAMPAIGNS, campaign_id)
    if raw is None:
        raise ApiError(404, f"no campaign {campaign_id!r}")
    waves = await wave_summaries(ctx, campaign=campaign_id)
    return json_response({**_campaign(raw), "waves": waves})


def _campaign(raw: str) -> dict[str, Any]:
    data = json.loads(raw)
    return {"campaign_id": data["campaign_id"], "title": data.get("title", ""),
            "created_at": data.get("created_at"), "created_by": data.get("created_by", "")}


# ---- waves ---------------------------------------------------------------------------------

@routes.get("/api/v1/waves")
@allow(Perm.READ)
async def list_waves(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    day = request.query.get("day")
    if day is not None:
        try:
            date.fromisoformat(day)
        except ValueError:
            raise ApiError(400, "day must be a date, YYYY-MM-DD") from None
    state = request.query.get("state")
    if state is not None and state not in {s.value for s in WaveState}:
        raise ApiError(400, f"state must be one of {', '.join(s.value for s in WaveState)}")
    waves = await wave_summaries(ctx, day=day, campaign=request.query.get("campaign"), state=state)
    return json_response({"waves": waves, "now_ms": ctx.clock.now_ms()})


@routes.post("/api/v1/waves")
@allow(Perm.CREATE, "wave.create")
async def create_wave(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    opts = request.app[OPTIONS]
    body = await read_json(request, WaveIn, opts.max_body_bytes, opts.body_read_timeout_s)
    audit_note(request, "wave.create", body.wave_id, campaign_id=body.campaign_id, day=body.day.isoformat())
    try:
        await ctx.waves.create(body.wave_id, body.campaign_id, body.day, by=principal(request).name)
    except WaveError as exc:
        raise ApiError(409, str(exc)) from None
    return json_response(await wave_view(ctx, body.wave_id), status=201)


@routes.get("/api/v1/waves/{wave_id}")
@allow(Perm.READ)
async def get_wave(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    wave_id = await existing_wave(ctx, request.match_info["wave_id"])
    return json_response(await wave_view(ctx, wave_id, request.app[RATES]))


@routes.post(r"/api/v1/waves/{wave_id}/{action:(start|pause|resume|stop)}")
@allow(Perm.CONTROL, "wave.control")
async def control_wave(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    action = request.match_info["action"]
    wave_id = request.match_info["wave_id"]
    audit_note(request, f"wave.{action}", wave_id)
    await existing_wave(ctx, wave_id)
    by = principal(request).name
    try:
        state = await ctx.waves.change(wave_id, action, by=by)
    except WaveError as exc:
        raise ApiError(409, str(exc)) from None
    audit_note(request, f"wave.{action}", wave_id, state=state.value)
    return json_response({"wave_id": wave_id, "action": action, "state": state.value, "by": by})


async def existing_wave(ctx: Context, wave_id: str) -> str:
    """404 unless the wave exists."""
    if len(wave_id) > 200 or not await ctx.redis.exists(WaveKeys(wave_id).meta):
        raise ApiError(404, f"no wave {wave_id!r}")
    return wave_id


async def wave_view(ctx: Context, wave_id: str, cache: dict[str, tuple[float, dict[str, float]]] | None = None
                    ) -> dict[str, Any]:
    """``engine.waves.status.status_view`` plus per-channel rates and the actions the state allows."""
    try:
        view = await status_view(ctx.waves, wave_id, ctx.windows)
    except WaveError:
        raise ApiError(404, f"no wave {wave_id!r}") from None
    rates = await cached_rates(ctx, wave_id, cache)
    for channel, info in view["channels"].items():
        info["rate_per_min"] = rates.get(channel, 0.0)
    view["actions"] = allowed_actions(view["state"])
    view["history"] = history(view["history"])
    return view


def allowed_actions(state: str) -> list[str]:
    return [a for a in CONTROL_ACTIONS if state in {s.value for s in TRANSITIONS[a][0]}]


async def cached_rates(ctx: Context, wave_id: str, cache: dict[str, tuple[float, dict[str, float]]] | None
                       ) -> dict[str, float]:
    if cache is None:
        return await channel_rates(ctx.redis, wave_id)
    now = time.monotonic()
    hit = cache.get(wave_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    rates = await channel_rates(ctx.redis, wave_id)
    if len(cache) > 1000:
        cache.clear()
    cache[wave_id] = (now + RATE_CACHE_S, rates)
    return rates


async def channel_rates(redis: Redis, wave_id: str) -> dict[str, float]:
    """Results per minute per channel over the last real minute, from the wave's results stream."""
    now_ms = int((await redis.time())[0]) * 1000
    since = now_ms - RATE_WINDOW_MS
    page = await redis.xrevrange(WaveKeys(wave_id).results, max="+", min=str(since), count=RATE_SAMPLE)
    counts: dict[str, int] = {}
    for _, fields in page:
        record = json.loads(fields.get("r", "{}"))
        if record.get("kind") == "result":
            counts[record.get("channel", "")] = counts.get(record.get("channel", ""), 0) + 1
    span_ms = RATE_WINDOW_MS
    if len(page) >= RATE_SAMPLE:  # more than we read: scale from the span actually covered
        oldest = int(page[-1][0].split("-")[0])
        span_ms = max(now_ms - oldest, 1000)
    return {ch: round(n * 60_000 / span_ms, 1) for ch, n in counts.items()}


async def wave_summaries(ctx: Context, *, day: str | None = None, campaign: str | None = None,
                         state: str | None = None) -> list[dict[str, Any]]:
    """One line per wave (ids sorted), filtered; the days and campaigns of waves never change (cached)."""
    ids = []
    for wave_id in await ctx.waves.list():
        try:
            wave_campaign, wave_day = await ctx.wave_day(wave_id)
        except WaveError:
            continue
        if (day is None or wave_day.isoformat() == day) and (campaign is None or wave_campaign == campaign):
            ids.append(wave_id)
    pipe = ctx.redis.pipeline(transaction=False)
    for wave_id in ids:
        wk = WaveKeys(wave_id)
        pipe.hgetall(wk.meta)
        pipe.hmget(wk.counts, "total", "queued", "leased", "final", "sent")
    replies = await pipe.execute() if ids else []
    out = []
    for i, wave_id in enumerate(ids):
        meta, counts = replies[2 * i], replies[2 * i + 1]
        if not meta or (state is not None and meta.get("state") != state):
            continue
        total, queued, leased, final, sent = (int(c or 0) for c in counts)
        out.append({
            "wave_id": wave_id, "campaign_id": meta.get("campaign_id", ""), "day": meta.get("day", ""),
            "state": meta.get("state", ""), "actions": allowed_actions(meta.get("state", "")),
            "counts": {"total": total, "queued": queued, "in_flight": leased, "final": final, "sent": sent},
            "history": history(meta),
        })
    return out


def history(meta: dict[str, str]) -> dict[str, Any]:
    """When the wave was created/started/paused/stopped/completed (epoch ms, engine clock) and by whom."""
    out: dict[str, Any] = {}
    for k, v in meta.items():
        if k.endswith("_at"):
            out[k] = int(v) if v.lstrip("-").isdigit() else None
        elif k.endswith("_by") and k != "pending_by":
            out[k] = v
    return out
