"""The stop-list over HTTP: add, remove (with a note why), look up, list (paged) or search, import.

A phone may be written in any form ``phonenumbers`` understands; it is stored, looked up
and removed as E.164. In the audit stream and in errors a phone is masked, and in answers too
for the roles that may not see phones (:attr:`Perm.PHONES`).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from engine.api.access import CTX, OPTIONS, allow, audit_note, principal
from engine.api.auth import Perm
from engine.api.http import ApiError, answers, int_query, read_json
from engine.api.models import Rejection, StopEntry, StopImported, StopIn, StopKind, StopPage, StopRemoved
from engine.domain.phones import mask, mask_text, normalize
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


def _visible(request: web.Request, kind: str, value: str) -> str:
    """A phone in clear for the roles that see phones, else masked."""
    return mask(value) if kind == "phone" and not principal(request).can(Perm.PHONES) else value


#: A search reads at most this many entries of the list (a stop-list of millions is paged instead).
SEARCH_SCAN_MAX = 200_000
#: An import's body at most (about 100 000 lines).
IMPORT_MAX_BYTES = 8 << 20
NOTE_MAX = 200


@routes.get("/api/v1/stoplist")
@allow(Perm.READ)
@answers(StopPage)
async def list_stoplist(request: web.Request) -> StopPage:
    """A page of entries of one kind (``kind``, default debtor); ``next`` is the cursor, null at the end.

    With ``q``: the entries whose value contains it (a phone's digits), up to ``limit``, in one answer.
    """
    ctx = request.app[CTX]
    kind = _kind(request.query.get("kind", "debtor"))
    count = int_query(request, "limit", 500, 1, 5000)
    cursor = int_query(request, "cursor", 0, 0, 2**63 - 1)
    key = keys.STOP_DEBTORS if kind == "debtor" else keys.STOP_PHONES
    q = request.query.get("q", "").strip()
    if len(q) > 128:
        raise ApiError(400, "q: at most 128 characters")
    if kind == "phone":
        q = "".join(ch for ch in q if ch.isdigit())
    found: dict[str, str] = {}
    next_cursor = 0
    if q:
        pattern = "*" + "".join(f"\\{c}" if c in "*?[]\\^" else c for c in q) + "*"
        scanned = 0
        async for value, raw in ctx.redis.hscan_iter(key, match=pattern, count=1000):
            found[value] = raw
            scanned += 1
            if len(found) >= count or scanned >= SEARCH_SCAN_MAX:
                break
    else:
        next_cursor, found = await ctx.redis.hscan(key, cursor=cursor, count=count)
    entries = []
    for value, raw in sorted(found.items()):
        data = json.loads(raw)
        entries.append(StopEntry(kind=kind, value=_visible(request, kind, value), reason=data["reason"],
                                 at_ms=data["at"], by=data.get("by", "")))
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
    return StopEntry.model_validate({**entry_dict(entry), "value": _visible(request, entry.kind, entry.value)})


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
    return StopEntry.model_validate({**entry_dict(entry), "value": _visible(request, kind, entry.value)})


@routes.delete("/api/v1/stoplist/{kind}/{value}")
@allow(Perm.STOPLIST, "stoplist.remove")
@answers(StopRemoved)
async def remove_stop(request: web.Request) -> StopRemoved:
    ctx = request.app[CTX]
    kind = _kind(request.match_info["kind"])
    note = request.query.get("note", "").strip()
    if len(note) > NOTE_MAX:
        raise ApiError(400, f"note: at most {NOTE_MAX} characters")
    audit_note(request, "stoplist.remove", f"{kind}:***", note=note)
    try:
        value = _normalized(kind, request.match_info["value"])
        removed = await ctx.stoplist.remove(kind, value, now_ms=ctx.clock.now_ms(), by=principal(request).name,
                                            reason=note)
    except VolnaError as exc:
        raise ApiError(400, f"value: {exc}") from None
    audit_note(request, "stoplist.remove", _shown(kind, value), removed=removed, note=note)
    if not removed:
        raise ApiError(404, f"that {kind} is not on the stop-list")
    return StopRemoved(kind=kind, value=_visible(request, kind, value), removed=True)


@routes.post("/api/v1/stoplist/import")
@allow(Perm.STOPLIST, "stoplist.import")
@answers(StopImported)
async def import_stoplist(request: web.Request) -> StopImported:
    """A CSV of ``kind,value,reason`` lines (a ``kind,value,reason`` header may lead); every good line
    is added, every bad one answered with its line number and reason."""
    ctx = request.app[CTX]
    opts = request.app[OPTIONS]
    audit_note(request, "stoplist.import", "")
    if request.content_type not in ("text/csv", "text/plain", "application/csv"):
        raise ApiError(415, "send the list as text/csv: lines kind,value,reason")
    if request.content_length is not None and request.content_length > IMPORT_MAX_BYTES:
        raise ApiError(413, f"a stop-list import is at most {IMPORT_MAX_BYTES} bytes; split the file", close=True)
    try:
        async with asyncio.timeout(opts.body_read_timeout_s):
            raw = await request.content.read(IMPORT_MAX_BYTES + 1)
    except TimeoutError:
        raise ApiError(408, "the body did not arrive in time", close=True) from None
    if len(raw) > IMPORT_MAX_BYTES:
        raise ApiError(413, f"a stop-list import is at most {IMPORT_MAX_BYTES} bytes; split the file", close=True)
    text = raw.decode("utf-8-sig", errors="replace")
    added, errors = await ctx.stoplist.import_csv(text.splitlines(), now_ms=ctx.clock.now_ms(),
                                                 by=principal(request).name)
    rejections = []
    for err in errors:
        head, _, reason = err.partition(": ")
        line = int(head.removeprefix("line ")) if head.removeprefix("line ").isdigit() else 0
        rejections.append(Rejection(line=line, reason=mask_text(reason)))
    audit_note(request, "stoplist.import", "", added=added, rejected=len(errors))
    return StopImported(added=added, rejected=len(errors), rejections=rejections)
