"""The OpenAPI 3.1 document of the control API, served at ``/api/v1/openapi.json``, generated.

Every schema in it is a model's ``model_json_schema()`` (:mod:`engine.api.models`): request
bodies in validation mode, answers in serialization mode, collected with their ``$defs`` under
``components/schemas``. Each operation's answer is the model its handler declares with
:func:`engine.api.http.answers` (and returns: mypy holds it to that), its body the model the
table names, which the handler validates with. What is written here by hand is the table of
operations: paths, parameters, error statuses, summaries, links — no schema.

Kept true by ``tests/test_api_openapi.py``: schemathesis against the live app (no 5xx, every
answer matches its schema), and every schema here is the one its model generates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from engine.api import (
    routes_admin,
    routes_console,
    routes_health,
    routes_phones,
    routes_results,
    routes_stoplist,
    routes_tasks,
    routes_waves,
)
from engine.api.auth import ROLE_PERMS, Perm, Role
from engine.api.http import Handler
from engine.api.models import (
    STREAM_ID_PATTERN,
    CampaignIn,
    Error,
    ReactivateIn,
    StopIn,
    StopKind,
    StopValue,
    TokenIn,
    UploadFormat,
    WaveIn,
)
from engine.api.routes_results import KINDS
from engine.api.routes_waves import CONTROL_ACTIONS
from engine.domain.wave import WaveState
from engine.intake.lines import ENCODINGS

REF_TEMPLATE = "#/components/schemas/{model}"
JSON = "application/json"
Schema = dict[str, Any]

STREAM_SINCE_PATTERN = "^(now|" + STREAM_ID_PATTERN[1:-1] + ")$"

ERROR_TEXT = {
    400: "Malformed request: bad JSON, a field that does not validate, a bad query parameter",
    401: "No token, or not a valid one",
    403: "The token's role may not do this",
    404: "No such resource",
    408: "The body did not arrive within api.body_read_timeout_s (the connection is closed)",
    409: "Not allowed in the current state (the message says why)",
    413: "The body is larger than the limit",
    415: "The body's Content-Type is not one this operation takes",
    429: "Too many uploads are being loaded by this process; send again after Retry-After seconds",
    503: "Redis is unavailable",
    507: "Redis is out of memory: the message says how much was loaded and from which line nothing was",
}


# ---- parameters ----------------------------------------------------------------------------------


def schema_of(tp: Any) -> Schema:
    """A parameter's schema from the type the models use for the same value (not written again)."""
    schema: Schema = TypeAdapter(tp).json_schema(ref_template=REF_TEMPLATE)
    return schema


def path_param(name: str, schema: Schema | None = None, description: str = "") -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"},
            "description": description}


def query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def page_size(maximum: int) -> Schema:
    return query("limit", {"type": "integer", "minimum": 1, "maximum": maximum}, "Page size")


WAVE = path_param("wave_id", description="The wave's id")
WAVE_Q = query("wave", {"type": "string", "minLength": 1}, "The wave", required=True)
SINCE = query("since", {"type": "string", "pattern": STREAM_ID_PATTERN},
              "Stream id: records after it (exclusive); absent = from the start")
_KIND = "(" + "|".join(sorted(KINDS)) + ")"
KIND = query("kind", {"type": "string", "pattern": f"^{_KIND}(,{_KIND})*$"}, "Only these kinds (comma-separated)")
STOP_KIND = path_param("kind", schema_of(StopKind))
STOP_VALUE = path_param("value", schema_of(StopValue), "A debtor id, or a phone in any form (looked up as E.164)")
PHONE = path_param("phone", {"type": "string", "minLength": 1, "maxLength": 64},
                   "A phone in any form (looked up as E.164)")


# ---- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One operation: its handler (which declares the answer and the permission), and what the
    document says besides."""

    method: str
    path: str
    handler: Handler
    op_id: str
    tag: str
    summary: str
    description: str = ""
    params: tuple[Schema, ...] = ()
    #: The JSON body's model (the handler validates with it).
    body: type[BaseModel] | None = None
    #: A body that is not JSON (uploads): media type → schema.
    raw_body: Mapping[str, Schema] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    #: What a client (or a stateful test) can call next: name → (operationId, parameters).
    links: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)
    #: The answer is a stream of Server-Sent Events, not a model.
    event_stream: bool = False
    public: bool = False
    #: Error descriptions that differ from :data:`ERROR_TEXT` for this operation.
    error_text: Mapping[int, str] = field(default_factory=dict)


def _wave_links() -> dict[str, tuple[str, Mapping[str, str]]]:
    ops = ("getWave", "uploadTasks", *(f"{a}Wave" for a in CONTROL_ACTIONS))
    return {f"{op[0].upper()}{op[1:]}": (op, {"wave_id": "$response.body#/wave_id"}) for op in ops}


OPERATIONS: tuple[Op, ...] = (
    Op("get", "/healthz", routes_health.healthz, "healthz", "health", "The process is alive", public=True),
    Op("get", "/readyz", routes_health.readyz, "readyz", "health",
       "Redis answers and every readiness check passes", public=True, errors=(503,),
       error_text={503: "Not ready: `error` names the failing checks; `ready` and `checks` as when ready"}),
    Op("get", "/api/v1/whoami", routes_admin.whoami, "whoami", "auth", "The caller's token"),
    Op("get", "/api/v1/campaigns", routes_waves.list_campaigns, "listCampaigns", "campaigns", "Every campaign",
       errors=(403,)),
    Op("post", "/api/v1/campaigns", routes_waves.create_campaign, "createCampaign", "campaigns", "Create a campaign",
       body=CampaignIn, errors=(400, 403, 409, 413, 415),
       links={"GetCampaign": ("getCampaign", {"campaign_id": "$response.body#/campaign_id"})}),
    Op("get", "/api/v1/campaigns/{campaign_id}", routes_waves.get_campaign, "getCampaign", "campaigns",
       "A campaign and its waves", params=(path_param("campaign_id"),), errors=(403, 404)),
    Op("get", "/api/v1/waves", routes_waves.list_waves, "listWaves", "waves", "Waves, filtered",
       params=(query("day", {"type": "string", "format": "date"}, "The wave's day"),
               query("campaign", {"type": "string"}, "The campaign"),
               query("state", schema_of(WaveState), "State")),
       errors=(400, 403)),
    Op("post", "/api/v1/waves", routes_waves.create_wave, "createWave", "waves", "Create a wave",
       "The campaign is registered if new.", body=WaveIn, errors=(400, 403, 409, 413, 415), links=_wave_links()),
    Op("get", "/api/v1/waves/{wave_id}", routes_waves.get_wave, "getWave", "waves",
       "The wave's view: counts by state, outcome and channel, rates, ETA, zones, history", params=(WAVE,),
       errors=(403, 404)),
    *(Op("post", f"/api/v1/waves/{{wave_id}}/{action}", routes_waves.control_wave, f"{action}Wave", "waves",
         f"{action.capitalize()} the wave",
         "Recorded as by=<token name>." + (" Every task not yet sent ends `cancelled`." if action == "stop" else ""),
         params=(WAVE,), errors=(403, 404, 409))
      for action in CONTROL_ACTIONS),
    Op("post", "/api/v1/waves/{wave_id}/tasks", routes_tasks.upload_tasks, "uploadTasks", "tasks",
       "Load tasks (JSON Lines or CSV), streamed",
       "The body is read line by line as it arrives, never whole. Format from `?format=`, else the Content-Type. "
       "Past the upload limit (413) or when nothing arrives for api.body_read_timeout_s (408): the counts of what "
       "was loaded before it. Read at most api.upload_lines_per_s; 429 beyond api.max_concurrent_uploads uploads "
       "at once.",
       params=(WAVE, query("format", schema_of(UploadFormat), "Overrides the Content-Type"),
               query("encoding", {"type": "string", "enum": list(ENCODINGS)},
                     "utf-8, cp1251 (Windows-1251, Russian Excel's CSV) or auto (the default: UTF-8 unless a line "
                     "is not)"),
               query("delimiter", {"type": "string", "enum": ["auto", ",", ";", "tab"]},
                     "The CSV separator; auto (the default) sniffs it from the header")),
       raw_body={"application/x-ndjson": {"type": "string"}, "text/csv": {"type": "string"}},
       errors=(400, 403, 404, 409, 413, 415, 429, 507)),
    Op("get", "/api/v1/stoplist", routes_stoplist.list_stoplist, "listStoplist", "stoplist",
       "A page of stop-list entries",
       "With `q`: the entries whose value contains it (a phone: its digits), up to `limit`, in one answer. "
       "Phones are masked for roles without the `phones` permission.",
       params=(query("kind", schema_of(StopKind), "default debtor"),
               query("cursor", {"type": "integer", "minimum": 0}, "From the previous `next`"), page_size(5000),
               query("q", {"type": "string", "maxLength": 128}, "Search: part of a debtor id or of a phone's digits")),
       errors=(400, 403)),
    Op("post", "/api/v1/stoplist/import", routes_stoplist.import_stoplist, "importStoplist", "stoplist",
       "Import entries from a CSV",
       "Lines `kind,value,reason` (a header line of those names may lead; `#` lines are comments). Every good "
       "line is added; each bad one is answered with its line number and reason. At most 8 MiB.",
       raw_body={"text/csv": {"type": "string"}}, errors=(403, 413, 415)),
    Op("post", "/api/v1/stoplist", routes_stoplist.add_stop, "addStop", "stoplist",
       "Put a debtor or a phone on the list", body=StopIn, errors=(400, 403, 413, 415),
       links={name: (op, {"kind": "$response.body#/kind", "value": "$response.body#/value"})
              for name, op in (("GetStop", "getStop"), ("RemoveStop", "removeStop"))}),
    Op("get", "/api/v1/stoplist/{kind}/{value}", routes_stoplist.get_stop, "getStop", "stoplist",
       "Look an entry up", params=(STOP_KIND, STOP_VALUE), errors=(400, 403, 404)),
    Op("delete", "/api/v1/stoplist/{kind}/{value}", routes_stoplist.remove_stop, "removeStop", "stoplist",
       "Take an entry off the list", "`note` says why (kept in the audit and the stop-list's change stream).",
       params=(STOP_KIND, STOP_VALUE, query("note", {"type": "string", "maxLength": 200}, "Why it comes off")),
       errors=(400, 403, 404)),
    Op("get", "/api/v1/charts", routes_console.charts, "charts", "console",
       "Per-minute series of a wave or of a day, and the day's windows zone by zone",
       "Sends and finals per minute per channel, the answer rate of calls and the delivery rate of messages "
       "(percent of the attempts that ended at the peer that minute), outcomes per minute (engine clock), and "
       "each zone's contact window on the day. `wave` takes precedence over `day` (default: the engine's today).",
       params=(query("day", {"type": "string", "format": "date"}, "Every wave of this day"),
               query("wave", {"type": "string", "minLength": 1, "maxLength": 200}, "One wave")),
       errors=(400, 403, 404)),
    Op("get", "/api/v1/lookup", routes_console.lookup_debtor, "lookup", "console",
       "A debtor or a phone: tasks and last outcomes, caps used, phone status, stop-list entries",
       "Exactly one of `debtor` and `phone`. Caps used are those of `day`'s day, ISO week and month (default: "
       "the engine's today). Phones are masked for roles without the `phones` permission.",
       params=(query("debtor", {"type": "string", "maxLength": 128}, "A debtor id"),
               query("phone", {"type": "string", "maxLength": 128}, "A phone, in any form"),
               query("day", {"type": "string", "format": "date"}, "The day the caps are counted for")),
       errors=(400, 403)),
    Op("get", "/api/v1/health", routes_console.engine_health, "engineHealth", "console",
       "The dispatchers' sessions, binds, gateway accounts and throttling; the live waves' queues",
       "Each `volna run` process reports every 2 s; a report older than 10 s is `stale`."),
    Op("get", "/api/v1/phones", routes_phones.list_phones, "listPhones", "phones",
       "Numbers deactivated now", "Masked unless the caller's role may change the stop-list (manager, admin).",
       params=(query("since", {"type": "string", "maxLength": 40}, "ISO 8601 date or time: deactivated since"),
               query("reason", {"type": "string", "enum": list(routes_phones.FAMILIES)},
                     "A cause family: q850 (calls), smpp, gateway:whatsapp, gateway:viber")),
       errors=(400, 403)),
    Op("get", "/api/v1/phones/{phone}", routes_phones.show_phone, "showPhone", "phones",
       "One number: its debtor, last contact, strikes, deactivation and stop-list entries",
       "The number is masked unless the caller's role may change the stop-list (manager, admin).",
       params=(PHONE,), errors=(400, 403)),
    Op("post", "/api/v1/phones/{phone}/reactivate", routes_phones.reactivate_phone, "reactivatePhone", "phones",
       "End a number's deactivation (audited)", params=(PHONE,), body=ReactivateIn,
       errors=(400, 403, 413, 415)),
    Op("get", "/api/v1/results", routes_results.results_page, "resultsPage", "results",
       "A page of the wave's results stream", params=(WAVE_Q, SINCE, KIND, page_size(10000)), errors=(400, 403, 404)),
    Op("get", "/api/v1/results/stream", routes_results.results_stream, "resultsStream", "results",
       "Server-Sent Events: the wave's results as they happen",
       "`id:` the stream id, `data:` the record JSON (a ResultRecord); comments as heartbeats. Resumes after the "
       "`Last-Event-ID` header; else after `since` (`now`: new records only); else from the start.",
       params=(WAVE_Q, {**SINCE, "schema": {"type": "string", "pattern": STREAM_SINCE_PATTERN},
                        "description": "Stream id (exclusive), or `now` for new records only"}, KIND,
               {"name": "Last-Event-ID", "in": "header", "required": False,
                "schema": {"type": "string", "pattern": STREAM_ID_PATTERN}}),
       errors=(400, 403, 404), event_stream=True),
    Op("get", "/api/v1/tokens", routes_admin.get_tokens, "listTokens", "auth", "Tokens (never their values)",
       errors=(403,)),
    Op("post", "/api/v1/tokens", routes_admin.post_token, "createToken", "auth", "A new token, shown once",
       body=TokenIn, errors=(400, 403, 413, 415),
       links={"RevokeToken": ("revokeToken", {"token_id": "$response.body#/token_id"})}),
    Op("delete", "/api/v1/tokens/{token_id}", routes_admin.delete_token, "revokeToken", "auth", "Revoke a token",
       "Not the token making the call (409).", params=(path_param("token_id"),), errors=(403, 404, 409)),
    Op("get", "/api/v1/audit", routes_admin.get_audit, "audit", "auth", "The audit stream, oldest first",
       params=(SINCE, page_size(1000)), errors=(400, 403)),
)


# ---- generation ----------------------------------------------------------------------------------


def answer_of(handler: Handler) -> tuple[int, type[BaseModel]]:
    """The status and model a handler declared with :func:`engine.api.http.answers`."""
    answer: tuple[int, type[BaseModel]] = handler.volna_answer  # type: ignore[attr-defined]
    return answer


def _unique(models: list[type[BaseModel]]) -> tuple[type[BaseModel], ...]:
    return tuple(dict.fromkeys(models))


#: The models the document's schemas come from: request bodies, and answers (errors included).
REQUEST_MODELS = _unique([op.body for op in OPERATIONS if op.body is not None])
ANSWER_MODELS = _unique([Error, *(answer_of(op.handler)[1] for op in OPERATIONS if not op.event_stream)])


def roles_allowed(perm: Perm) -> list[str]:
    return [r.value for r in Role if perm in ROLE_PERMS[r]]


def _operation(op: Op, refs: Mapping[Any, Schema]) -> Schema:
    """``refs``: (model, mode) → its ``$ref`` (``models_json_schema``)."""
    out: Schema = {"operationId": op.op_id, "tags": [op.tag], "summary": op.summary}
    perm: Perm = getattr(op.handler, "volna_perm", Perm.ADMIN)
    roles = "" if op.public or perm is Perm.READ else f"Roles: {', '.join(roles_allowed(perm))}."
    description = " ".join(part for part in (roles, op.description) if part)
    if description:
        out["description"] = description
    if op.public:
        out["security"] = []
    if op.params:
        out["parameters"] = list(op.params)
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {JSON: {"schema": refs[(op.body, "validation")]}}}
    elif op.raw_body:
        out["requestBody"] = {"required": True,
                              "content": {media: {"schema": schema} for media, schema in op.raw_body.items()}}
    responses: Schema = {}
    if op.event_stream:
        # Each event as a client parses it: ``data`` is a record's JSON (the operation says which model).
        event = {"type": "object", "properties": {"id": {"type": "string"}, "event": {"type": "string"},
                                                  "data": {"type": "string"}, "retry": {"type": "integer"}}}
        responses["200"] = {"description": "An endless event stream", "content": {"text/event-stream": {
            "schema": event}}}
    else:
        status, model = answer_of(op.handler)
        ok: Schema = {"description": {200: "OK", 201: "Created"}.get(status, "OK"),
                      "content": {JSON: {"schema": refs[(model, "serialization")]}}}
        if op.links:
            ok["links"] = {name: {"operationId": target, "parameters": dict(params)}
                           for name, (target, params) in op.links.items()}
        responses[str(status)] = ok
    # Every /api/ call can be refused a token (401) and find Redis down (503); a body that can be
    # too large (413) can also be too slow (408).
    errors = {*op.errors, *(() if op.public else (401, 503)), *((408,) if 413 in op.errors else ())}
    for code in sorted(errors):
        if code in op.error_text:
            responses[str(code)] = {"description": op.error_text[code],
                                    "content": {JSON: {"schema": refs[(Error, "serialization")]}}}
        else:
            responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    out["responses"] = responses
    return out


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    refs, top = models_json_schema([(m, "validation") for m in REQUEST_MODELS]
                                   + [(m, "serialization") for m in ANSWER_MODELS], ref_template=REF_TEMPLATE)
    paths: dict[str, Schema] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Volna control API", "version": "1",
            "description": "Waves, uploads, the stop-list and the results stream of the Volna campaign engine. "
                           "`Authorization: Bearer <token>`; roles viewer (read), planner (+ create, upload), "
                           "manager (+ create, upload, control, stop-list, phones in clear), admin (everything, "
                           "tokens, audit). Errors are "
                           '`{"error": "..."}`.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": top["$defs"],
            "responses": {
                f"E{code}": {"description": text, "content": {JSON: {"schema": refs[(Error, "serialization")]}}}
                for code, text in ERROR_TEXT.items()
            },
        },
    }


@lru_cache(maxsize=1)
def document_bytes() -> bytes:
    return json.dumps(document(), ensure_ascii=False).encode()


async def openapi_handler(request: web.Request) -> web.Response:
    return web.Response(body=document_bytes(), content_type="application/json")
