"""Who am I, tokens (admin), the audit stream (admin)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from engine.api.access import AUDIT, CTX, OPTIONS, allow, audit_note, principal
from engine.api.auth import (
    ID_CHARS,
    NAME_PATTERN,
    ROLE_PERMS,
    Perm,
    Role,
    create_token,
    digest,
    list_tokens,
    revoke_token,
)
from engine.api.http import ApiError, check_stream_id, int_query, json_response, read_json

routes = web.RouteTableDef()


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    name: str = Field(pattern=NAME_PATTERN)


@routes.get("/api/v1/whoami")
@allow(Perm.READ)
async def whoami(request: web.Request) -> web.Response:
    """The caller's token name, role and permissions, and the engine's clock (the console's "today")."""
    who = principal(request)
    return json_response({
        "name": who.name, "role": who.role.value, "token_id": who.token_id,
        "permissions": sorted(p.value for p in ROLE_PERMS[who.role]),
        "now_ms": request.app[CTX].clock.now_ms(),
    })


@routes.get("/api/v1/tokens")
@allow(Perm.ADMIN)
async def get_tokens(request: web.Request) -> web.Response:
    tokens = await list_tokens(request.app[CTX].redis)
    return json_response({"tokens": [
        {"token_id": t.token_id, "name": t.name, "role": t.role.value, "created_ms": t.created_ms} for t in tokens
    ]})


@routes.post("/api/v1/tokens")
@allow(Perm.ADMIN, "token.create")
async def post_token(request: web.Request) -> web.Response:
    """A new token; its value is in this answer only (Redis keeps its SHA-256)."""
    opts = request.app[OPTIONS]
    body = await read_json(request, TokenIn, opts.max_body_bytes, opts.body_read_timeout_s)
    audit_note(request, "token.create", body.name, role=body.role.value)
    token = await create_token(request.app[CTX].redis, body.role.value, body.name)
    token_id = digest(token)[:16]
    audit_note(request, "token.create", body.name, role=body.role.value, token_id=token_id)
    return json_response({"token": token, "token_id": token_id, "name": body.name, "role": body.role.value},
                         status=201)


@routes.delete("/api/v1/tokens/{token_id}")
@allow(Perm.ADMIN, "token.revoke")
async def delete_token(request: web.Request) -> web.Response:
    token_id = request.match_info["token_id"]
    audit_note(request, "token.revoke", token_id)
    if len(token_id) >= ID_CHARS and principal(request).token_id.startswith(token_id[:ID_CHARS]):
        raise ApiError(409, "this is the token making the call: revoke it with another admin token")
    if not await revoke_token(request.app[CTX].redis, token_id):
        raise ApiError(404, "no such token")
    return json_response({"token_id": token_id, "revoked": True})


@routes.get("/api/v1/audit")
@allow(Perm.ADMIN)
async def get_audit(request: web.Request) -> web.Response:
    """Audit records after ``since`` (a stream id), oldest first; ``next`` is the cursor."""
    since = request.query.get("since")
    if since is not None:
        check_stream_id(since, "since")
    limit = int_query(request, "limit", 100, 1, 1000)
    records = await request.app[AUDIT].read(since or "-", limit)
    return json_response({"records": records, "next": records[-1]["id"] if records else since})
