"""The directory of debtors' phones: which debtor a number belongs to, whatever wave loaded it.

A callback or a reply can come at any hour, while the debtor's wave is paused, the day after it
completed, or weeks after it left Redis. The directory outlives waves: intake writes each task's
phone and debtor, every attempt that reached the wire writes the phone's last contact (wave,
campaign, when, channel), and each write renews the phone's TTL (``phones.directory_days``), so
Redis keeps the hot set. A number Redis no longer knows is asked of the archive (PostgreSQL)
through a :class:`DirectoryFallback` the composition root passes in when one is configured.

One hash per phone (:func:`engine.store.keys.directory`), on any Redis Cluster node; its fields
are in :mod:`engine.store.schema`. On a single Redis the last contact is written by the script
that records the attempt's result, in the same call; on a cluster it is posted from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from engine.store import keys
from engine.store.batching import MicroBatcher
from engine.store.schema import DIRECTORY_FIELDS, DIRECTORY_LAST, DIRECTORY_LOAD
from engine.store.scripts import Scripts

#: The directory hash's fields and packed values (engine.store.schema: the finalize script writes
#: the last contact too).
F_DEBTOR = DIRECTORY_FIELDS["debtor"]
F_LOAD = DIRECTORY_FIELDS["load"]
F_LAST = DIRECTORY_FIELDS["last"]
#: Fields of the hashes written before 2026-12-05 (read while their TTL lasts).
_F_OLD_LOAD = ("load_wave", "load_campaign")
_F_OLD_LAST = ("last_wave", "last_campaign", "last_at", "last_channel")


#: (phone, debtor, wave, campaign, at ms, channel): one attempt's last contact.
Contact = tuple[str, str, str, str, int, str]


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    phone: str
    debtor_id: str
    #: The wave and campaign of the last contact (of the last load when never contacted yet).
    wave_id: str
    campaign_id: str
    #: When the last contact was (epoch ms) and on which channel; None when never contacted.
    last_at_ms: int | None = None
    last_channel: str = ""
    #: Where the answer came from: ``redis`` or ``archive``.
    source: str = "redis"

    def as_data(self) -> dict[str, Any]:
        """What an inbound record says about the last contact."""
        return {"last_contact_at": self.last_at_ms, "last_contact_channel": self.last_channel or None,
                "last_wave": self.wave_id, "directory": self.source}


class DirectoryFallback(Protocol):
    """Answers for phones the hot set no longer holds (``engine.archive.directory``)."""

    async def lookup(self, phone: str) -> DirectoryEntry | None: ...


class PhoneDirectory:
    def __init__(self, redis: Redis, *, ttl_s: int, fallback: DirectoryFallback | None = None,
                 cluster: bool = False, scripts: Scripts | None = None) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._ttl = str(ttl_s)
        self.fallback = fallback
        #: On a Redis Cluster the phones' hashes are on many nodes: a pipeline (redis-py sends each
        #: node its part); on a single Redis one script call per batch.
        self.cluster = cluster
        self.scripts = scripts or Scripts(redis)
        self._contacts: MicroBatcher[str, Contact, None] = MicroBatcher(self._write_contacts)

    async def add_loaded(self, rows: list[tuple[str, str, str, str]], now_ms: int) -> None:
        """Intake: ``(phone, debtor, wave, campaign)`` per task, one round trip."""
        await self._write([[keys.directory(phone), F_DEBTOR, debtor_id,
                            F_LOAD, DIRECTORY_LOAD.format(wave=wave_id, campaign=campaign_id, at=now_ms)]
                           for phone, debtor_id, wave_id, campaign_id in rows])

    def contact_for_finalize(self, phone: str) -> list[str] | None:
        """On a single Redis the script that records an attempt's result writes the phone's last
        contact in the same call, once the result is applied: what it needs (the hash, its TTL).
        None on a Redis Cluster, where the phone's hash is on another node: the caller posts the
        contact with :meth:`contacted`. One call where there were two: the dispatcher's
        instructions per task of the core 540 000 → 524 000, Redis's the same (478 000;
        load/core_instructions.py)."""
        if self.cluster:
            return None
        return [keys.directory(phone), self._ttl]

    def contacted(self, phone: str, debtor_id: str, wave_id: str, campaign_id: str, at_ms: int,
                  channel: str) -> None:
        """An attempt reached the wire: the phone's last contact. Written at the next tick with the
        other attempts that ended in this one (one round trip), and not waited for: this is on
        the path of every finished attempt, and a callback needs it seconds later, not at once.
        A write Redis refuses is logged; :meth:`drain` waits for what is posted."""
        self._contacts.post("", (phone, debtor_id, wave_id, campaign_id, at_ms, channel))

    async def drain(self) -> None:
        """Wait until the last contacts posted so far are written."""
        await self._contacts.drain()

    async def _write_contacts(self, _: str, items: list[Contact]) -> list[None]:
        await self._write([[keys.directory(phone), F_DEBTOR, debtor_id, F_LAST,
                            DIRECTORY_LAST.format(wave=wave_id, campaign=campaign_id, at=at_ms, channel=channel)]
                           for phone, debtor_id, wave_id, campaign_id, at_ms, channel in items])
        return [None] * len(items)

    async def _write(self, items: list[list[str]]) -> None:
        """``[key, field, value, ...]`` per phone: set those fields and renew the hash's TTL."""
        if not items:
            return
        if not self.cluster:
            # One command instead of an HSET and an EXPIRE per phone: redis-py packs and parses a
            # pipeline command by command (a timer per reply, a worker thread past 1 000 commands).
            await self.scripts["directory_write"](keys=[], args=[self.ttl_s, json.dumps(items)])
            return
        pipe = self.redis.pipeline(transaction=False)
        for name, *pairs in items:
            pipe.hset(name, mapping=dict(zip(pairs[::2], pairs[1::2], strict=True)))
            pipe.expire(name, self.ttl_s)
        await pipe.execute()

    async def lookup(self, phone: str) -> DirectoryEntry | None:
        raw = await self.redis.hgetall(keys.directory(phone))
        if raw.get(F_DEBTOR):
            return _entry(phone, raw)
        if self.fallback is not None:
            return await self.fallback.lookup(phone)
        return None

    async def forget(self, phone: str) -> None:
        """Erasure: the phone leaves the directory."""
        await self.redis.delete(keys.directory(phone))


def _entry(phone: str, raw: dict[str, str]) -> DirectoryEntry:
    """A directory hash read back: the packed fields, or the separate ones of an older hash."""
    load = raw[F_LOAD].split(" ") if raw.get(F_LOAD) else [raw.get(f, "") for f in _F_OLD_LOAD]
    last = raw[F_LAST].split(" ") if raw.get(F_LAST) else [raw.get(f, "") for f in _F_OLD_LAST]
    load_wave, load_campaign = [*load, "", ""][:2]
    last_wave, last_campaign, last_at, last_channel = [*last, "", "", "", ""][:4]
    return DirectoryEntry(
        phone=phone, debtor_id=raw[F_DEBTOR], wave_id=last_wave or load_wave,
        campaign_id=last_campaign or load_campaign,
        last_at_ms=int(last_at) if last_at.isdigit() else None, last_channel=last_channel)
