"""The stop-list over HTTP: add, remove, look up, list (paged).

A phone may be written in any form ``phonenumbers`` understands; it is stored, looked up
and removed as E.164. In the audit stream and in errors a phone is masked.
"""

from __future__ import annotations

import json
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from engine.api.app import CTX, OPTIONS, allow, audit_note, principal
from engine.api.auth import Perm
from engine.api.http import ApiError, int_query, json_response, read_json
from engine.domain.phones import mask, normalize
from engine.errors import IntakeError, VolnaError
from engine.gates.stoplist import StopEntry, StopReason, entry_dict
from engine.store import keys

routes = web.RouteTableDef()

KINDS = ("debtor", "phone")


class StopIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["debtor", "phone"]
    value: str = Field(min_length=1, max_length=128)
    reason: StopReason


def _kind(raw: str) -> str:
    if raw not in KINDS:
        raise ApiError(400, "kind must be debtor or phone")
    return raw


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
async def list_stoplist(request: web.Request) -> web.Response:
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
        entries.append(entry_dict(StopEntry(kind, value, data["reason"], data["at"], data.get("by", ""))))
    return json_response({"kind": kind, "entries": entries, "next": str(next_cursor) if next_cursor else None})


@routes.post("/api/v1/stoplist")
@allow(Perm.STOPLIST, "stoplist.add")
async def add_stop(request: web.Request) -> web.Response:
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
    return json_response(entry_dict(entry), status=201)


@routes.get("/api/v1/stoplist/{kind}/{value}")
@allow(Perm.READ)
async def get_stop(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    kind = _kind(request.match_info["kind"])
    try:
        entry = await ctx.stoplist.get(kind, request.match_info["value"])
    except VolnaError as exc:
        raise ApiError(400, f"value: {exc}") from None
    if entry is None:
        raise ApiError(404, f"that {kind} is not on the stop-list")
    return json_response(entry_dict(entry))


@routes.delete("/api/v1/stoplist/{kind}/{value}")
@allow(Perm.STOPLIST, "stoplist.remove")
async def remove_stop(request: web.Request) -> web.Response:
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
    return json_response({"kind": kind, "value": value, "removed": True})
