"""Debtors calling back and writing back, at any hour, whatever the state of their waves.

The caller's number is looked up in the phone directory (:mod:`engine.store.directory`), which
outlives waves: a callback while the wave runs, while it is paused, after it completed, in the
evening or weeks later finds the debtor. Each call or message is recorded once, however many
dispatchers see it (every AMI session sees every call; an SMSC or a webhook may deliver a
message twice): the first process to claim its ``source_id`` records it.

* A call's start (``kind="call_start"``) cancels the debtor's robocalls still queued in every
  running wave of that day whose scenario says ``inbound_cancels_calls`` — at once, while the
  debtor is on the line. Its end (``call_end``) is the ``inbound_call`` result: the debtor, the
  campaign and wave of the last contact and when it was, the DID and the call's length; and it
  cancels again (a start that was missed, a retry queued during the call).
* A message (``kind="message"``: an MO SMS whole after its parts were joined, a WhatsApp
  message) is the ``inbound_message`` result with its text (the interaction log: kept under
  ``retention.interaction_log_days``). A reply matching an opt-out keyword puts the debtor on the
  stop-list with reason ``refused`` (a representative keyword: ``representative``), cancels the
  debtor's queued tasks in every wave Redis holds, and writes an audit entry. The stop-list is
  read by every dispatcher's gate at each claim, so nothing more is sent from the next claim on.
* A number the directory does not know is recorded as ``inbound_unknown`` (masked) in the
  inbound stream and counted (``volna_inbound_total{match="unknown"}``); an opt-out from it puts
  the number itself on the stop-list.

Where the record goes: the results stream of the wave of the last contact while Redis still
holds that wave (it is archived with the wave's records and counted in its status), else the
inbound stream (:data:`engine.store.keys.INBOUND`), which the archive reads too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import replace
from typing import Any

from engine.context import Context
from engine.domain.keywords import KeywordHit, Keywords
from engine.domain.models import Result, Task
from engine.domain.outcomes import Channel, Outcome
from engine.domain.phones import mask
from engine.domain.wave import WaveState
from engine.errors import WaveError
from engine.port import InboundEvent
from engine.store import keys
from engine.store.auditlog import write_audit
from engine.store.directory import DirectoryEntry
from engine.store.keys import WaveKeys
from engine.store.schema import RECORD_FIELD, Counter, RecordKind

log = logging.getLogger("engine.dispatch.inbound")

#: The record kind of an inbound call or message from a number nobody knows.
UNKNOWN_KIND = "inbound_unknown"
_OPEN_STATES = (WaveState.CREATED, WaveState.RUNNING, WaveState.PAUSED)


class Inbound:
    """One per process (the correlation's sink hands it every :class:`InboundEvent`)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        s = ctx.settings.inbound
        self.keywords = Keywords(s.opt_out_keywords, s.representative_keywords)

    async def record(self, event: InboundEvent) -> str:
        """What became of it: ``debtor``, ``unknown``, ``duplicate`` or ``started`` (a call's start)."""
        if event.kind == "call_start":
            if not await self._claim(f"start:{event.source_id}" if event.source_id else ""):
                return "duplicate"
            entry = await self.ctx.directory.lookup(event.phone)
            if entry is not None:
                await self.cancel_robocalls(entry.debtor_id)
            return "started"
        if event.kind == "message" and isinstance(event.data.get("concat"), dict):
            joined = await self._join(event)
            if joined is None:
                return "partial"
            event = joined
        claim = event.source_id or str(event.data.get("call_id") or "")
        if not await self._claim(claim):
            return "duplicate"
        try:
            return await self._record(event)
        except BaseException:
            # Not recorded: the next copy (the SMSC's or the provider's redelivery, another
            # dispatcher's AMI event) may record it.
            if claim:
                await asyncio.shield(self.ctx.redis.delete(keys.inbound_seen(claim)))
            raise

    async def _record(self, event: InboundEvent) -> str:
        entry = await self.ctx.directory.lookup(event.phone)
        message = event.kind == "message"
        kind_label = "message" if message else "call"
        hit = self.keywords.match(event.text or "") if message else None
        data = self._data(event, hit)
        if entry is None:
            if hit is not None:  # the law's duty first
                await self._stop_phone(event, hit)
            await self._write_unknown(event, data)
            self.ctx.metrics.inbound(event.channel, kind_label, "unknown")
            log.info("inbound %s from unknown number %s", kind_label, mask(event.phone),
                     extra={"channel": event.channel.value})
            return "unknown"
        if hit is not None:
            await self._stop_debtor(entry, event, hit)
        outcome = Outcome.INBOUND_MESSAGE if message else Outcome.INBOUND_CALL
        await self._write(entry, event.channel, outcome, {**data, **entry.as_data()})
        self.ctx.metrics.inbound(event.channel, kind_label, "debtor")
        if not message:
            # Again at the end (idempotent): a start this process missed, or a robocall that was
            # ringing when the debtor called and came back to the queue as a retry since.
            await self.cancel_robocalls(entry.debtor_id)
        return "debtor"

    # ---- records ------------------------------------------------------------------------------

    async def _claim(self, source_id: str) -> bool:
        if not source_id:
            return True  # nothing to tell copies apart by: the connector sends one
        ok = await self.ctx.redis.set(keys.inbound_seen(source_id), "1", nx=True,
                                      ex=self.ctx.settings.inbound.dedupe_ttl_s)
        return bool(ok)

    async def _join(self, event: InboundEvent) -> InboundEvent | None:
        """One part of a concatenated MO: kept in Redis until every part came (on any bind, in
        any process); the whole message once the last one did, else None."""
        concat = event.data["concat"]
        try:
            ref, total, seq = int(concat["ref"]), int(concat["total"]), int(concat["seq"])
        except (KeyError, TypeError, ValueError):
            return event  # not a concatenation we can read: the part as a message of its own
        name = keys.inbound_parts(f"{event.phone}:{ref}:{total}")
        pipe = self.ctx.redis.pipeline(transaction=True)
        pipe.hset(name, str(seq), event.text or "")
        pipe.expire(name, self.ctx.settings.inbound.concat_ttl_s)
        pipe.hgetall(name)
        *_, parts = await pipe.execute()
        if len(parts) < total:
            return None
        await self.ctx.redis.delete(name)
        text = "".join(parts.get(str(i), "") for i in range(1, total + 1))
        digest = hashlib.blake2b(f"{event.phone}|{ref}|{total}|{text}".encode(), digest_size=12).hexdigest()
        bucket = self.ctx.clock.now_ms() // 600_000
        data = {k: v for k, v in event.data.items() if k != "concat"}
        data["parts"] = total
        return replace(event, text=text, data=data, source_id=f"sms-concat:{digest}:{bucket}")

    def _data(self, event: InboundEvent, hit: KeywordHit | None) -> dict[str, Any]:
        data = {k: v for k, v in event.data.items() if v is not None}
        data["phone_masked"] = mask(event.phone)
        if event.text is not None:
            data["text"] = event.text[: self.ctx.settings.inbound.max_text_chars]
        if hit is not None:
            data.update({"keyword": hit.keyword, "stop_reason": hit.reason, "language": hit.language})
        return data

    async def _write(self, entry: DirectoryEntry, channel: Channel, outcome: Outcome, data: dict[str, Any]) -> None:
        ctx = self.ctx
        record = Result(kind=RecordKind.INBOUND.value, task_id="", attempt=0, wave_id=entry.wave_id,
                        campaign_id=entry.campaign_id, debtor_id=entry.debtor_id, channel=channel, outcome=outcome,
                        final=False, finished_at=ctx.clock.now_ms(), data=data)
        payload = {RECORD_FIELD: record.model_dump_json(exclude_none=True)}
        wk = WaveKeys(entry.wave_id)
        if entry.wave_id and await ctx.redis.exists(wk.meta):
            pipe = ctx.redis.pipeline(transaction=False)
            pipe.xadd(wk.results, payload, maxlen=ctx.settings.redis.results_maxlen, approximate=True)
            pipe.hincrby(wk.counts, Counter.INBOUND.value, 1)
            await pipe.execute()
        else:
            await ctx.redis.xadd(keys.INBOUND, payload, maxlen=ctx.settings.redis.results_maxlen, approximate=True)

    async def _write_unknown(self, event: InboundEvent, data: dict[str, Any]) -> None:
        ctx = self.ctx
        outcome = Outcome.INBOUND_MESSAGE if event.kind == "message" else Outcome.INBOUND_CALL
        record = Result(kind=UNKNOWN_KIND, task_id="", attempt=0, wave_id="", campaign_id="", debtor_id="",
                        channel=event.channel, outcome=outcome, final=False, finished_at=ctx.clock.now_ms(),
                        data=data)
        await ctx.redis.xadd(keys.INBOUND, {RECORD_FIELD: record.model_dump_json(exclude_none=True)},
                             maxlen=ctx.settings.redis.results_maxlen, approximate=True)

    # ---- what a callback or a reply does ------------------------------------------------------

    async def cancel_robocalls(self, debtor_id: str) -> int:
        """The debtor reached us: their robocalls still queued in every running wave of the day
        whose scenario says ``inbound_cancels_calls`` end ``cancelled``."""
        ctx = self.ctx
        n = 0
        # Only today's waves run (tomorrow's are loaded, not started): every running wave is the day's.
        for wave_id in sorted(await ctx.waves.running()):
            if not await self._cancels_calls(wave_id, debtor_id):
                continue
            done = await ctx.waves.store(wave_id).cancel_debtor(
                ctx.clock.now_ms(), debtor_id, Channel.IVR.value, Outcome.CANCELLED.value, "debtor called back")
            if done:
                log.info("inbound call cancelled %d robocalls", done, extra={"wave": wave_id})
            n += done
        return n

    async def _cancels_calls(self, wave_id: str, debtor_id: str) -> bool:
        ctx = self.ctx
        ids = await ctx.redis.hget(WaveKeys(wave_id).debtors, debtor_id)
        if not ids:
            return False
        raws = await ctx.redis.hmget(WaveKeys(wave_id).tasks, str(ids).split(","))
        for raw in raws:
            if raw is None:
                continue
            scenario = ctx.scenarios.get(Task.model_validate_json(raw).scenario)
            if scenario is not None and scenario.inbound_cancels_calls:
                return True
        return False

    async def _stop_debtor(self, entry: DirectoryEntry, event: InboundEvent, hit: KeywordHit) -> None:
        ctx = self.ctx
        now = ctx.clock.now_ms()
        by = f"inbound:{event.channel.value}"
        await ctx.stoplist.add("debtor", entry.debtor_id, hit.reason, now_ms=now, by=by)
        cancelled = 0
        for wave_id in sorted(await ctx.waves.list()):
            try:
                info = await ctx.waves.get(wave_id)
            except WaveError:
                continue  # purged meanwhile
            if info.state not in _OPEN_STATES:
                continue
            cancelled += await ctx.waves.store(wave_id).cancel_debtor(
                now, entry.debtor_id, "", Outcome.CANCELLED.value, f"debtor replied {hit.reason}")
        ctx.metrics.inbound_keyword(hit.reason, event.channel)
        await write_audit(ctx.redis, who="debtor", what="stoplist.add", target=f"debtor:{entry.debtor_id}",
                          peer=by, detail={"reason": hit.reason, "keyword": hit.keyword, "language": hit.language,
                                           "source": event.source_id, "cancelled": cancelled})
        log.info("debtor replied %s: on the stop-list, %d queued tasks cancelled", hit.reason, cancelled,
                 extra={"channel": event.channel.value})

    async def _stop_phone(self, event: InboundEvent, hit: KeywordHit) -> None:
        ctx = self.ctx
        by = f"inbound:{event.channel.value}"
        await ctx.stoplist.add("phone", event.phone, hit.reason, now_ms=ctx.clock.now_ms(), by=by)
        ctx.metrics.inbound_keyword(hit.reason, event.channel)
        await write_audit(ctx.redis, who="unknown", what="stoplist.add", target=f"phone:{event.phone}", peer=by,
                          detail={"reason": hit.reason, "keyword": hit.keyword, "source": event.source_id})


async def record_inbound(ctx: Context, event: InboundEvent) -> int:
    """One event, outside a dispatcher (tests, tools): 1 when recorded against a debtor."""
    return 1 if await Inbound(ctx).record(event) == "debtor" else 0
