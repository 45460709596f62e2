"""The Lua scripts, made of the generated schema header and the files in ``engine/store/lua``.

Every script starts with :func:`engine.store.schema.lua_constants` (field names, phase codes,
counters, TTLs) and ``common.lua``; a wave's scripts add ``wave.lua`` (its KEYS, the task state
codec, the results record, the settlement of reservations). :class:`Scripts` registers them all
on one client, so each call is an ``EVALSHA``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from engine.store.schema import fold_constants, lua_constants

#: Scripts over one wave's keys (``WaveKeys.script_keys``).
WAVE_SCRIPTS = ("intake", "claim", "begin_send", "accept", "finalize", "requeue", "renew", "expired",
                "cancel_queued", "gather", "part", "cancel_debtor", "outbox_done", "purge")
#: Scripts over other keys: a wave's meta (its state), a debtor's caps, phones' directory hashes,
#: the stop-list.
OTHER_SCRIPTS = ("transition", "complete", "caps_reserve", "caps_settle", "directory_write", "stoplist_check")


@cache
def script_text(name: str) -> str:
    lua = resources.files("engine.store") / "lua"
    parts = [lua_constants(), (lua / "common.lua").read_text()]
    if name in WAVE_SCRIPTS:
        parts.append((lua / "wave.lua").read_text())
    parts.append((lua / f"{name}.lua").read_text())
    return fold_constants("\n".join(parts))


class Scripts:
    """Every script, registered on one Redis client (a single server or a cluster)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(script_text(name)) for name in (*WAVE_SCRIPTS, *OTHER_SCRIPTS)
        }

    def __getitem__(self, name: str) -> AsyncScript:
        return self._scripts[name]
