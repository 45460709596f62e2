"""API tokens and roles.

A token is shown once, when created (``volna token create`` or ``POST /api/v1/tokens``);
Redis keeps only its SHA-256 (hash :data:`engine.store.keys.TOKENS`: hex digest → JSON
``{name, role, created_ms, sha256}``), so a copy of the database gives no one access.
A request's ``Authorization: Bearer <token>`` is hashed, looked up by its digest, and the
stored digest compared with :func:`hmac.compare_digest` (constant time).

Roles and what they may do (every role reads):

=========  =====================================================================
viewer     read: campaigns, waves and their status, results, stop-list look-ups (phones masked)
planner    + create campaigns and waves, upload tasks (phones masked)
manager    + create campaigns and waves, upload tasks, start/pause/resume/stop waves, stop-list,
           phones in clear
admin      everything, and tokens and the audit stream
=========  =====================================================================

A manager uploads too: the console's day starts with creating a wave and loading its file,
and the one who starts a wave is the one who checked what it holds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from engine.errors import VolnaError
from engine.store import keys


class Role(StrEnum):
    VIEWER = "viewer"
    PLANNER = "planner"
    MANAGER = "manager"
    ADMIN = "admin"


class Perm(StrEnum):
    READ = "read"
    CREATE = "create"  # campaigns and waves
    CONTROL = "control"  # start, pause, resume, stop
    UPLOAD = "upload"
    STOPLIST = "stoplist"
    ADMIN = "admin"  # tokens, audit
    PHONES = "phones"  # see phone numbers in clear (look-ups, the stop-list); else masked


ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.VIEWER: frozenset({Perm.READ}),
    Role.PLANNER: frozenset({Perm.READ, Perm.CREATE, Perm.UPLOAD}),
    Role.MANAGER: frozenset({Perm.READ, Perm.CREATE, Perm.UPLOAD, Perm.CONTROL, Perm.STOPLIST, Perm.PHONES}),
    Role.ADMIN: frozenset(Perm),
}

TOKEN_PREFIX = "vln_"
#: What a bearer token may look like (anything else is refused before hashing).
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_\-]{16,200}$")
NAME_PATTERN = r"^[A-Za-z0-9А-Яа-яЁё][A-Za-z0-9А-Яа-яЁё ._@:-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
#: A token's public id: the first characters of its digest (enough to tell tokens apart).
ID_CHARS = 16


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name (written as ``by`` on wave changes) and role."""

    name: str
    role: Role
    token_id: str

    def can(self, perm: Perm) -> bool:
        return perm in ROLE_PERMS[self.role]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    name: str
    role: Role
    created_ms: int


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise VolnaError(f"unknown role {role!r} ({', '.join(r.value for r in Role)})") from None


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise VolnaError("a token name is 1-64 Latin or Cyrillic letters, digits, spaces or ._@:-, "
                         "and starts with a letter or digit")
    return name


async def create_token(redis: Redis, role: str, name: str) -> str:
    """A new token for ``role``; returned once, stored only as its SHA-256."""
    checked = check_role(role)
    check_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    hexdigest = digest(token)
    record = {"name": name, "role": checked.value, "created_ms": time.time_ns() // 1_000_000, "sha256": hexdigest}
    await redis.hset(keys.TOKENS, hexdigest, json.dumps(record))
    return token


async def list_tokens(redis: Redis) -> list[TokenInfo]:
    out = []
    async for hexdigest, raw in redis.hscan_iter(keys.TOKENS):
        data = json.loads(raw)
        out.append(TokenInfo(hexdigest[:ID_CHARS], data["name"], Role(data["role"]), int(data["created_ms"])))
    return sorted(out, key=lambda t: (t.created_ms, t.token_id))


async def revoke_token(redis: Redis, token_id: str) -> bool:
    """Remove the token whose id (digest prefix) is ``token_id``; False when there is none."""
    if len(token_id) < ID_CHARS:
        return False
    async for hexdigest, _ in redis.hscan_iter(keys.TOKENS):
        if hexdigest.startswith(token_id):
            return bool(await redis.hdel(keys.TOKENS, hexdigest))
    return False


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value if _TOKEN_SHAPE.match(value) else None


async def authenticate(redis: Redis, header: str | None) -> Principal | None:
    token = bearer(header)
    if token is None:
        return None
    hexdigest = digest(token)
    raw = await redis.hget(keys.TOKENS, hexdigest)
    if raw is None:
        return None
    data = json.loads(raw)
    if not hmac.compare_digest(str(data.get("sha256", "")).encode(), hexdigest.encode()):
        return None
    try:
        role = Role(data["role"])
    except (KeyError, ValueError):
        return None
    return Principal(str(data["name"]), role, hexdigest[:ID_CHARS])
