"""Debtors calling back: an inbound call is recorded as an ``inbound_call`` result.

The caller's number is looked up in the phone index of every running wave; a
match records the call in that wave's results stream for the debtor, and when
the debtor's scenario says so, the debtor's robocalls still queued today are
cancelled (the debtor already reached us).
"""

from __future__ import annotations

import logging

from engine.context import Context
from engine.domain.models import Result, Task
from engine.domain.outcomes import Channel, Outcome
from engine.domain.phones import mask
from engine.port import InboundEvent
from engine.store import keys
from engine.store.keys import WaveKeys
from engine.store.schema import RECORD_FIELD, Counter, RecordKind

log = logging.getLogger("engine.dispatch.inbound")


async def record_inbound(ctx: Context, event: InboundEvent) -> int:
    """Returns in how many waves the caller was found (0 for a call another process recorded)."""
    found = 0
    now = ctx.clock.now_ms()
    call_id = str(event.data.get("call_id") or "")
    # Every dispatcher sharing an Asterisk sees the call: the first to claim its id records it.
    if call_id and not await ctx.redis.set(keys.inbound_call(call_id), "1", nx=True, ex=86400):
        return 0
    for wave_id in sorted(await ctx.waves.running()):
        store = ctx.waves.store(wave_id)
        debtor_id = await store.debtor_of(event.phone)
        if debtor_id is None:
            continue
        found += 1
        campaign_id, _ = await ctx.wave_day(wave_id)
        record = Result(kind=RecordKind.INBOUND.value, task_id="", attempt=0, wave_id=wave_id,
                        campaign_id=campaign_id, debtor_id=debtor_id, channel=Channel.IVR,
                        outcome=Outcome.INBOUND_CALL, final=False, finished_at=now, data=event.data)
        await ctx.redis.xadd(WaveKeys(wave_id).results, {RECORD_FIELD: record.model_dump_json(exclude_none=True)},
                             maxlen=ctx.settings.redis.results_maxlen, approximate=True)
        await ctx.redis.hincrby(WaveKeys(wave_id).counts, Counter.INBOUND.value, 1)
        if await _cancels_calls(ctx, wave_id, debtor_id):
            n = await store.cancel_debtor(now, debtor_id, Channel.IVR.value, Outcome.CANCELLED.value,
                                          "debtor called back")
            log.info("inbound call cancelled %d robocalls", n, extra={"wave": wave_id})
    if not found:
        log.info("inbound call from unknown number %s", mask(event.phone))
    return found


async def _cancels_calls(ctx: Context, wave_id: str, debtor_id: str) -> bool:
    ids = await ctx.redis.hget(WaveKeys(wave_id).debtors, debtor_id)
    if not ids:
        return False
    raw = await ctx.redis.hget(WaveKeys(wave_id).tasks, str(ids).split(",")[0])
    if raw is None:
        return False
    scenario = ctx.scenarios.get(Task.model_validate_json(raw).scenario)
    return bool(scenario and scenario.inbound_cancels_calls)
