"""The stop-list over HTTP: add, remove, look up, list (paged).

A phone may be written in any form ``phonenumbers`` understands; it is stored, looked up
and removed as E.164. In the audit stream and in errors a phone is masked.
"""

from __future__ import annotations

import json

from aiohttp import web

from engine.api.access import CTX, OPTIONS, allow, audit_note, principal
from engine.api.auth import Perm
from engine.api.http import ApiError, answers, int_query, read_json
from engine.api.models import StopEntry, StopIn, StopKind, StopPage, StopRemoved
from engine.domain.phones import mask, normalize
from engine.errors import IntakeError, VolnaError
from engine.gates.stoplist import entry_dict
from engine.store import keys

routes = web.RouteTableDef()


def _kind(raw: str) -> StopKind:
    if raw == "debtor":
        return "debtor"
    if raw == "phone":
        return "phone"
    raise ApiError(400, "kind must be debtor or phone")


def _normalized(kind: str, value: str) -> str:
    """As the stop-list stores it: a phone in E.164, a debtor id stripped."""
    if kind == "phone":
        try:
            return normalize(value)
        except IntakeError as exc:
            raise VolnaError(exc.reason) from None
    return value.strip()


def _shown(kind: str, value: str) -> str:
    return f"{kind}:{mask(value) if kind == 'phone' else value}"


@routes.get("/api/v1/stoplist")
@allow(Perm.READ)
@answers(StopPage)
async def list_stoplist(request: web.Request) -> StopPage:
    """A page of entries of one kind (``kind``, default debtor); ``next`` is the cursor, null at the end."""
    ctx = request.app[CTX]
    kind = _kind(request.query.get("kind", "debtor"))
    count = int_query(request, "limit", 500, 1, 5000)
    cursor = int_query(request, "cursor", 0, 0, 2**63 - 1)
    key = keys.STOP_DEBTORS if kind == "debtor" else keys.STOP_PHONES
    next_cursor, found = await ctx.redis.hscan(key, cursor=cursor, count=count)
    entries = []
    for value, raw in sorted(found.items()):
        data = json.loads(raw)
        entries.append(StopEntry(kind=kind, value=value, reason=data["reason"], at_ms=data["at"],
                                 by=data.get("by", "")))
    return StopPage(kind=kind, entries=entries, next=str(next_cursor) if next_cursor else None)


@routes.post("/api/v1/stoplist")
@allow(Perm.STOPLIST, "stoplist.add")
@answers(StopEntry, 201)
async def add_stop(request: web.Request) -> StopEntry:
    ctx = request.app[CTX]
    opts = request.app[OPTIONS]
    body = await read_json(request, StopIn, opts.max_body_bytes, opts.body_read_timeout_s)
    audit_note(request, "stoplist.add", f"{body.kind}:***", reason=body.reason.value)
    try:
        entry = await ctx.stoplist.add(body.kind, body.value, body.reason.value, now_ms=ctx.clock.now_ms(),
                                       by=principal(request).name)
    except VolnaError as exc:
        raise ApiError(400, f"value: {exc}") from None
    audit_note(request, "stoplist.add", _shown(entry.kind, entry.value), reason=entry.reason)
    return StopEntry.model_validate(entry_dict(entry))


@routes.get("/api/v1/stoplist/{kind}/{value}")
@allow(Perm.READ)
@answers(StopEntry)
async def get_stop(request: web.Request) -> StopEntry:
    ctx = request.app[CTX]
    kind = _kind(request.match_info["kind"])
    try:
        entry = await ctx.stoplist.get(kind, request.match_info["value"])
    except VolnaError as exc:
        raise ApiError(400, f"value: {exc}") from None
    if entry is None:
        raise ApiError(404, f"that {kind} is not on the stop-list")
    return StopEntry.model_validate(entry_dict(entry))


@routes.delete("/api/v1/stoplist/{kind}/{value}")
@allow(Perm.STOPLIST, "stoplist.remove")
@answers(StopRemoved)
async def remove_stop(request: web.Request) -> StopRemoved:
    ctx = request.app[CTX]
    kind = _kind(request.match_info["kind"])
    audit_note(request, "stoplist.remove", f"{kind}:***")
    try:
        value = _normalized(kind, request.match_info["value"])
        removed = await ctx.stoplist.remove(kind, value, now_ms=ctx.clock.now_ms(), by=principal(request).name)
    except VolnaError as exc:
        raise ApiError(400, f"value: {exc}") from None
    audit_note(request, "stoplist.remove", _shown(kind, value), removed=removed)
    if not removed:
        raise ApiError(404, f"that {kind} is not on the stop-list")
    return StopRemoved(kind=kind, value=value, removed=True)
