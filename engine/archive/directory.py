"""The phone directory's memory beyond Redis: a number whose hot entry expired is looked up in
the archive (``task_personal`` by the phone's keyed hash, so pseudonymized rows still answer;
erased ones never do), with the debtor's last contact from ``contacts``.

The dispatcher gets it as :attr:`engine.store.directory.PhoneDirectory.fallback` when
``archive.dsn`` is set (``volna run``). A lookup that fails (PostgreSQL down, too slow) answers
"unknown" and is logged: an inbound event must never wait on the archive for long.
"""

from __future__ import annotations

import asyncio
import logging

from engine.archive.db import connection
from engine.config.settings import Settings
from engine.domain.phones import phone_hash
from engine.errors import ArchiveUnavailable, ConfigError
from engine.store.directory import DirectoryEntry

log = logging.getLogger("engine.archive")

_LOOKUP = """
SELECT p.debtor_id, p.wave_id, t.campaign_id, c.wave_id, c.campaign_id, c.at, c.channel
FROM task_personal p JOIN tasks t USING (wave_id, task_id)
LEFT JOIN LATERAL (SELECT wave_id, campaign_id, at, channel FROM contacts
                   WHERE debtor_id = p.debtor_id ORDER BY at DESC NULLS LAST LIMIT 1) c ON true
WHERE p.phone_hash = %s AND p.erased_at IS NULL
ORDER BY p.day DESC LIMIT 1
"""


class ArchiveDirectory:
    def __init__(self, settings: Settings, *, timeout_s: float = 2.0) -> None:
        self.settings = settings
        self.key = settings.retention.require_phone_key()
        self.timeout_s = timeout_s

    async def lookup(self, phone: str) -> DirectoryEntry | None:
        try:
            return await asyncio.wait_for(self._lookup(phone), self.timeout_s)
        except (ArchiveUnavailable, ConfigError, TimeoutError) as exc:
            log.warning("the archive could not look up an inbound number: %s", exc)
            return None

    async def _lookup(self, phone: str) -> DirectoryEntry | None:
        async with connection(self.settings.archive, autocommit=True) as conn:
            cur = await conn.execute(_LOOKUP, (phone_hash(self.key, phone),))
            row = await cur.fetchone()
        if row is None:
            return None
        debtor, load_wave, load_campaign, last_wave, last_campaign, last_at, last_channel = row
        return DirectoryEntry(phone=phone, debtor_id=debtor, wave_id=last_wave or load_wave,
                              campaign_id=last_campaign or load_campaign,
                              last_at_ms=int(last_at.timestamp() * 1000) if last_at is not None else None,
                              last_channel=last_channel or "", source="archive")
