"""Phones over HTTP: deactivated numbers, one number's record, reactivation (docs/inbound.md).

Numbers leave in clear only for a role that may change the stop-list (manager, admin); the
others read them masked. Reactivation needs that role too, and is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from engine.api.access import CTX, OPTIONS, allow, audit_note, principal
from engine.api.auth import Perm
from engine.api.http import ApiError, answers, read_json
from engine.api.models import PhoneDeactivation, PhoneList, PhoneReactivated, PhoneReport, ReactivateIn
from engine.domain.phones import mask, normalize
from engine.errors import IntakeError, VolnaError
from engine.gates.phone_record import phone_report, reactivate

routes = web.RouteTableDef()

#: The cause families a deactivation names (engine.gates.deactivation.cause_family).
FAMILIES = ("q850", "smpp", "gateway:viber", "gateway:whatsapp")


def _phone(request: web.Request) -> str:
    try:
        return normalize(request.match_info["phone"])
    except IntakeError as exc:
        raise ApiError(400, f"phone: {exc.reason}") from None


def _may_see(request: web.Request) -> bool:
    return principal(request).can(Perm.STOPLIST)


@routes.get("/api/v1/phones")
@allow(Perm.READ)
@answers(PhoneList)
async def list_phones(request: web.Request) -> PhoneList:
    """Numbers deactivated now, oldest first; ``since`` (ISO 8601) and ``reason`` (cause family) narrow it."""
    ctx = request.app[CTX]
    since_ms = None
    family = request.query.get("reason")
    if family is not None and family not in FAMILIES:
        raise ApiError(400, f"reason must be one of {', '.join(FAMILIES)}")
    if "since" in request.query:
        try:
            if len(request.query["since"]) > 40:
                raise ValueError
            at = datetime.fromisoformat(request.query["since"])
        except ValueError:
            raise ApiError(400, "since is not an ISO 8601 date or time") from None
        since_ms = int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)
    rows = await ctx.deactivations.listing(ctx.clock.now_ms(), since_ms=since_ms,
                                           family=family)
    show = _may_see(request)
    return PhoneList(phones=[PhoneDeactivation(phone=d.phone if show else d.masked, at_ms=d.at_ms,
                                               until_ms=d.until_ms, family=d.family, strikes=d.strikes)
                             for d in rows])


@routes.get("/api/v1/phones/{phone}")
@allow(Perm.READ)
@answers(PhoneReport)
async def show_phone(request: web.Request) -> PhoneReport:
    ctx = request.app[CTX]
    phone = _phone(request)
    report = await phone_report(ctx.directory, ctx.deactivations, ctx.stoplist, phone, ctx.clock.now_ms(),
                                strikes_needed=ctx.settings.phones.invalid_strikes, show_phone=_may_see(request))
    return PhoneReport.model_validate(report)


@routes.post("/api/v1/phones/{phone}/reactivate")
@allow(Perm.STOPLIST, "phones.reactivate")
@answers(PhoneReactivated)
async def reactivate_phone(request: web.Request) -> PhoneReactivated:
    ctx = request.app[CTX]
    opts = request.app[OPTIONS]
    phone = _phone(request)
    audit_note(request, "phones.reactivate", f"phone:{mask(phone)}")
    body = await read_json(request, ReactivateIn, opts.max_body_bytes, opts.body_read_timeout_s)
    try:
        was = await reactivate(ctx.deactivations, ctx.redis, phone, now_ms=ctx.clock.now_ms(),
                               who=principal(request).name, reason=body.reason, peer="api", audit=False)
    except VolnaError as exc:
        raise ApiError(400, str(exc)) from None
    audit_note(request, "phones.reactivate", f"phone:{mask(phone)}", reason=body.reason, was_deactivated=was)
    return PhoneReactivated(phone=phone, was_deactivated=was)
