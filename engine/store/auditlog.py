"""Audit entries written by the engine itself (not through the API): a debtor's opt-out by reply,
a phone reactivated by command. Same stream and fields as the API's (:mod:`engine.api.audit`),
so the archive's ``audit`` table and ``GET /api/v1/audit`` show them beside the API's own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from engine.domain.phones import mask_text
from engine.store import keys

MAXLEN = 1_000_000


async def write_audit(redis: Redis, *, who: str, what: str, target: str, detail: dict[str, Any], role: str = "",
                      peer: str = "engine", status: int = 200) -> str:
    fields = {
        "who": who, "role": role, "what": what, "target": mask_text(target), "status": str(status), "from": peer,
        "forwarded": "", "when": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "detail": mask_text(json.dumps(detail, ensure_ascii=False, default=str)), "method": "",
    }
    return str(await redis.xadd(keys.AUDIT, fields, maxlen=MAXLEN, approximate=True))
