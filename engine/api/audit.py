"""The audit stream: every state-changing API call, who made it, when, from where, and its answer.

One Redis Stream (:data:`engine.store.keys.AUDIT`), trimmed to about :data:`MAXLEN` entries.
Each entry's fields:

=========  ===================================================================
who        the token's name (``anonymous`` when there was no valid token)
role       the token's role (empty when anonymous)
what       the action, e.g. ``wave.start``, ``tasks.upload``, ``stoplist.add``
target     what it acted on (a wave id, ``debtor:D-1``, ``phone:+7916***4567``)
status     the HTTP status answered
from       the peer address; ``forwarded`` holds X-Forwarded-For as sent (not trusted)
when       ISO 8601 UTC, wall-clock time (the stream id is Redis' own time)
detail     JSON, action-specific (counts of an upload, the new state of a wave)
method     ``POST /api/v1/waves/w1/start``
=========  ===================================================================

Phone numbers are masked before they are written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from engine.domain.phones import mask_text
from engine.store import keys

log = logging.getLogger("engine.api.audit")

MAXLEN = 1_000_000


@dataclass
class AuditEntry:
    """What a handler knows about the change it made; the middleware fills in the rest."""

    what: str
    target: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class Audit:
    def __init__(self, redis: Redis, *, maxlen: int = MAXLEN) -> None:
        self.redis = redis
        self.maxlen = maxlen

    async def record(self, *, who: str, role: str, entry: AuditEntry, status: int, remote: str,
                     forwarded: str = "", method: str = "") -> str | None:
        fields = {
            "who": who, "role": role, "what": entry.what, "target": mask_text(entry.target),
            "status": str(status), "from": remote, "forwarded": forwarded[:200],
            "when": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "detail": mask_text(json.dumps(entry.detail, ensure_ascii=False, default=str)),
            "method": mask_text(method),
        }
        try:
            stream_id: str = await self.redis.xadd(keys.AUDIT, fields, maxlen=self.maxlen, approximate=True)
        except Exception:  # the change is made: say loudly that its record is not
            log.exception("audit record not written: %s %s by %s", entry.what, mask_text(entry.target), who)
            return None
        return stream_id

    async def read(self, since: str = "-", count: int = 100) -> list[dict[str, Any]]:
        start = since if since == "-" else f"({since}"
        page = await self.redis.xrange(keys.AUDIT, min=start, max="+", count=count)
        return [{"id": stream_id, **fields_out(fields)} for stream_id, fields in page]


def fields_out(fields: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(fields)
    out["status"] = int(fields.get("status", "0") or 0)
    try:
        out["detail"] = json.loads(fields.get("detail") or "{}")
    except json.JSONDecodeError:
        out["detail"] = {}
    return out
