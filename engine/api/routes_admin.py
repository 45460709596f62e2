"""Who am I, tokens (admin), the audit stream (admin)."""

from __future__ import annotations

from aiohttp import web

from engine.api.access import AUDIT, CTX, OPTIONS, allow, audit_note, principal
from engine.api.auth import ID_CHARS, ROLE_PERMS, Perm, create_token, digest, list_tokens, revoke_token
from engine.api.http import ApiError, answers, check_stream_id, int_query, read_json
from engine.api.models import (
    AuditPage,
    AuditRecord,
    TokenCreated,
    TokenIn,
    TokenInfo,
    TokenList,
    TokenRevoked,
    WhoAmI,
)

routes = web.RouteTableDef()


@routes.get("/api/v1/whoami")
@allow(Perm.READ)
@answers(WhoAmI)
async def whoami(request: web.Request) -> WhoAmI:
    """The caller's token name, role and permissions, and the engine's clock (the console's "today")."""
    who = principal(request)
    return WhoAmI(name=who.name, role=who.role, token_id=who.token_id,
                  permissions=sorted(ROLE_PERMS[who.role]), now_ms=request.app[CTX].clock.now_ms())


@routes.get("/api/v1/tokens")
@allow(Perm.ADMIN)
@answers(TokenList)
async def get_tokens(request: web.Request) -> TokenList:
    tokens = await list_tokens(request.app[CTX].redis)
    return TokenList(tokens=[TokenInfo(token_id=t.token_id, name=t.name, role=t.role, created_ms=t.created_ms)
                             for t in tokens])


@routes.post("/api/v1/tokens")
@allow(Perm.ADMIN, "token.create")
@answers(TokenCreated, 201)
async def post_token(request: web.Request) -> TokenCreated:
    """A new token; its value is in this answer only (Redis keeps its SHA-256)."""
    opts = request.app[OPTIONS]
    body = await read_json(request, TokenIn, opts.max_body_bytes, opts.body_read_timeout_s)
    audit_note(request, "token.create", body.name, role=body.role.value)
    token = await create_token(request.app[CTX].redis, body.role.value, body.name)
    token_id = digest(token)[:16]
    audit_note(request, "token.create", body.name, role=body.role.value, token_id=token_id)
    return TokenCreated(token=token, token_id=token_id, name=body.name, role=body.role)


@routes.delete("/api/v1/tokens/{token_id}")
@allow(Perm.ADMIN, "token.revoke")
@answers(TokenRevoked)
async def delete_token(request: web.Request) -> TokenRevoked:
    token_id = request.match_info["token_id"]
    audit_note(request, "token.revoke", token_id)
    if len(token_id) >= ID_CHARS and principal(request).token_id.startswith(token_id[:ID_CHARS]):
        raise ApiError(409, "this is the token making the call: revoke it with another admin token")
    if not await revoke_token(request.app[CTX].redis, token_id):
        raise ApiError(404, "no such token")
    return TokenRevoked(token_id=token_id, revoked=True)


@routes.get("/api/v1/audit")
@allow(Perm.ADMIN)
@answers(AuditPage)
async def get_audit(request: web.Request) -> AuditPage:
    """Audit records after ``since`` (a stream id), oldest first; ``next`` is the cursor."""
    since = request.query.get("since")
    if since is not None:
        check_stream_id(since, "since")
    limit = int_query(request, "limit", 100, 1, 1000)
    records = await request.app[AUDIT].read(since or "-", limit)
    return AuditPage(records=[AuditRecord.model_validate(r) for r in records],
                     next=records[-1]["id"] if records else since)
