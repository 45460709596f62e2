"""The OpenAPI 3 document of the control API, served at ``/api/v1/openapi.json``.

Written by hand next to the handlers and kept true by ``tests/test_api_openapi.py``
(schemathesis against the live app: no 5xx, every answer matches its schema).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aiohttp import web

from engine.api.auth import NAME_PATTERN, Role
from engine.api.http import ID_PATTERN, STREAM_ID_PATTERN
from engine.domain.outcomes import Channel
from engine.domain.wave import WaveState
from engine.gates.stoplist import StopReason

STREAM_SINCE_PATTERN = "^(now|" + STREAM_ID_PATTERN[1:-1] + ")$"
JSON = "application/json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Schema], required: list[str] | None = None, *, extra: bool | Schema = False) -> Schema:
    out: Schema = {"type": "object", "properties": props, "additionalProperties": extra}
    if required is None:
        required = list(props)
    if required:
        out["required"] = required
    return out


INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
COUNTS: Schema = {"type": "object", "additionalProperties": INT}


def nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


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


def responses(ok: int, schema: Schema, *errors: int, description: str = "OK") -> dict[str, Any]:
    out: dict[str, Any] = {str(ok): {"description": description, "content": {JSON: {"schema": schema}}}}
    # A call that takes a body (413) can also time out reading it (408).
    for code in sorted({401, 503, *errors, *((408,) if 413 in errors else ())}):
        out[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    return out


def linked(resp: dict[str, Any], ok: int, links: dict[str, tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """Add OpenAPI links to the success answer: what a client (or a stateful test) can call next."""
    resp[str(ok)]["links"] = {name: {"operationId": op, "parameters": params} for name, (op, params) in links.items()}
    return resp


def json_body(schema: Schema) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def path_param(name: str, schema: Schema | None = None, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or STR, "description": description}


def query(name: str, schema: Schema, description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


WAVE = path_param("wave_id", description="The wave's id")
CHANNELS = [c.value for c in Channel]
ACTIONS = ["start", "pause", "resume", "stop"]

SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": STR}, extra=True),
    "Health": obj({"status": {"type": "string", "enum": ["ok"]}}),
    "Ready": obj({"ready": BOOL, "checks": {"type": "object", "additionalProperties": BOOL}}),
    "CampaignIn": obj({"campaign_id": {"type": "string", "pattern": ID_PATTERN},
                       "title": {"type": "string", "maxLength": 200}}, ["campaign_id"]),
    "Campaign": obj({"campaign_id": STR, "title": STR, "created_at": nullable(INT), "created_by": STR}),
    "CampaignDetail": obj({"campaign_id": STR, "title": STR, "created_at": nullable(INT), "created_by": STR,
                           "waves": {"type": "array", "items": ref("WaveSummary")}}),
    "CampaignList": obj({"campaigns": {"type": "array", "items": ref("Campaign")}}),
    "WaveIn": obj({"wave_id": {"type": "string", "pattern": ID_PATTERN},
                   "campaign_id": {"type": "string", "pattern": ID_PATTERN},
                   "day": {"type": "string", "format": "date",
                           "description": "The debtors' local calendar day the wave runs on"}}),
    "History": {
        "type": "object",
        "description": "`<state>_at` (epoch ms, engine clock) and `<state>_by` (token name): created, running, "
                       "paused, stopped, completed",
        "additionalProperties": {"nullable": True, "anyOf": [INT, STR]},
    },
    "Actions": {"type": "array", "items": {"type": "string", "enum": ACTIONS},
                "description": "The control actions the wave's state allows"},
    "WaveSummary": obj({
        "wave_id": STR, "campaign_id": STR, "day": STR,
        "state": {"type": "string", "enum": [s.value for s in WaveState]},
        "actions": ref("Actions"),
        "counts": obj({k: INT for k in ("total", "queued", "in_flight", "final", "sent")}),
        "history": ref("History"),
    }),
    "WaveList": obj({"waves": {"type": "array", "items": ref("WaveSummary")}, "now_ms": INT}),
    "ChannelView": obj({
        "total": INT, "queued": INT, "eligible_now": INT, "sent": INT, "accepted": INT, "outcomes": COUNTS,
        "rate_per_min": {"type": "number", "description": "Results per minute over the last real minute"},
    }),
    "ZoneView": obj({
        "zone": {"type": "string", "description": "An IANA zone, or multi:N for tasks constrained to N zones"},
        "tasks": INT, "open_now": BOOL, "opens_at_ms": nullable(INT), "closes_at_ms": nullable(INT),
    }, ["zone", "tasks"]),
    "WaveView": obj({
        "wave_id": STR, "campaign_id": STR, "day": STR,
        "state": {"type": "string", "enum": [s.value for s in WaveState]},
        "now_ms": INT,
        "counts": obj({k: INT for k in ("total", "queued", "in_flight", "final", "sent", "late_events",
                                        "inbound_calls")}),
        "outcomes": COUNTS,
        "channels": {"type": "object", "additionalProperties": ref("ChannelView")},
        "rate_per_min": {"type": "number", "description": "Final outcomes per minute (engine clock)"},
        "eta_s": nullable(INT),
        "zones": {"type": "array", "items": ref("ZoneView")},
        "multi_zone_tasks": INT,
        "history": ref("History"),
        "actions": ref("Actions"),
    }),
    "ControlResult": obj({"wave_id": STR, "action": {"type": "string", "enum": ACTIONS},
                          "state": {"type": "string", "enum": [s.value for s in WaveState]}, "by": STR}),
    "Rejection": obj({"line": INT, "reason": STR}),
    "UploadReport": obj({
        "wave_id": STR, "format": {"type": "string", "enum": ["jsonl", "csv"]},
        "lines": INT, "bytes": INT, "accepted": INT, "already_loaded": INT, "rejected": INT,
        "rejections": {"type": "array", "items": ref("Rejection"),
                       "description": "The first rejected lines (at most 1000 by default)"},
        "rejections_truncated": BOOL, "seconds": NUM,
    }),
    "StopIn": obj({"kind": {"type": "string", "enum": ["debtor", "phone"]},
                   "value": {"type": "string", "minLength": 1, "maxLength": 128},
                   "reason": {"type": "string", "enum": [r.value for r in StopReason]}}),
    "StopEntry": obj({"kind": {"type": "string", "enum": ["debtor", "phone"]}, "value": STR,
                      "reason": STR, "at_ms": INT, "by": STR}),
    "StopPage": obj({"kind": {"type": "string", "enum": ["debtor", "phone"]},
                     "entries": {"type": "array", "items": ref("StopEntry")}, "next": nullable(STR)}),
    "StopRemoved": obj({"kind": STR, "value": STR, "removed": BOOL}),
    "ResultRecord": {
        "type": "object",
        "description": "A record of the results stream (see `volna results` in the README)",
        "required": ["kind", "task_id", "wave_id", "stream_id"],
        "properties": {
            "stream_id": STR, "kind": {"type": "string", "enum": ["dispatched", "result", "late", "inbound"]},
            "task_id": STR, "attempt": INT, "wave_id": STR, "campaign_id": STR, "debtor_id": STR,
            "channel": {"type": "string", "enum": CHANNELS}, "outcome": nullable(STR), "final": BOOL,
            "provider_code": nullable(STR), "provider_text": nullable(STR), "claimed_at": nullable(INT),
            "sent_at": nullable(INT), "accepted_at": nullable(INT), "finished_at": nullable(INT),
            "data": {"type": "object"},
        },
    },
    "ResultsPage": obj({"wave_id": STR, "records": {"type": "array", "items": ref("ResultRecord")},
                        "next": nullable(STR), "more": BOOL}),
    "WhoAmI": obj({"name": STR, "role": {"type": "string", "enum": [r.value for r in Role]}, "token_id": STR,
                   "permissions": {"type": "array", "items": STR}, "now_ms": INT}),
    "TokenIn": obj({"role": {"type": "string", "enum": [r.value for r in Role]},
                    "name": {"type": "string", "pattern": NAME_PATTERN}}),
    "TokenCreated": obj({"token": STR, "token_id": STR, "name": STR,
                         "role": {"type": "string", "enum": [r.value for r in Role]}}),
    "TokenInfo": obj({"token_id": STR, "name": STR, "role": {"type": "string", "enum": [r.value for r in Role]},
                      "created_ms": INT}),
    "TokenList": obj({"tokens": {"type": "array", "items": ref("TokenInfo")}}),
    "TokenRevoked": obj({"token_id": STR, "revoked": BOOL}),
    "AuditRecord": obj({"id": STR, "who": STR, "role": STR, "what": STR, "target": STR, "status": INT,
                        "from": STR, "forwarded": STR, "when": STR, "detail": {"type": "object"}, "method": STR},
                       ["id", "who", "what", "status", "when"], extra=True),
    "AuditPage": obj({"records": {"type": "array", "items": ref("AuditRecord")}, "next": nullable(STR)}),
}

SINCE = query("since", {"type": "string", "pattern": STREAM_ID_PATTERN},
              "Stream id: records after it (exclusive); absent = from the start")
_KIND = "(dispatched|result|late|inbound)"
KIND = query("kind", {"type": "string", "pattern": f"^{_KIND}(,{_KIND})*$"}, "Only these kinds (comma-separated)")
WAVE_Q = query("wave", {"type": "string", "minLength": 1}, "The wave", required=True)
STOP_KIND = path_param("kind", {"type": "string", "enum": ["debtor", "phone"]})
STOP_VALUE = path_param("value", {"type": "string", "minLength": 1, "maxLength": 128},
                        "A debtor id, or a phone in any form (looked up as E.164)")
PUBLIC: list[dict[str, list[str]]] = []

PATHS: dict[str, Any] = {
    "/healthz": {"get": {"operationId": "healthz", "tags": ["health"], "security": PUBLIC,
                         "summary": "The process is alive",
                         "responses": {"200": {"description": "alive", "content": {JSON: {"schema": ref("Health")}}}}}},
    "/readyz": {"get": {"operationId": "readyz", "tags": ["health"], "security": PUBLIC,
                        "summary": "Redis answers and every readiness check passes",
                        "responses": {
                            "200": {"description": "ready", "content": {JSON: {"schema": ref("Ready")}}},
                            "503": {"description": "not ready", "content": {JSON: {"schema": ref("Ready")}}}}}},
    "/api/v1/whoami": {"get": {"operationId": "whoami", "tags": ["auth"], "summary": "The caller's token",
                               "responses": responses(200, ref("WhoAmI"))}},
    "/api/v1/campaigns": {
        "get": {"operationId": "listCampaigns", "tags": ["campaigns"], "summary": "Every campaign",
                "responses": responses(200, ref("CampaignList"), 403)},
        "post": {"operationId": "createCampaign", "tags": ["campaigns"], "summary": "Create a campaign",
                 "description": "Roles: planner, manager, admin",
                 "requestBody": json_body(ref("CampaignIn")),
                 "responses": linked(responses(201, ref("Campaign"), 400, 403, 409, 413, 415, description="Created"),
                                     201, {"GetCampaign": ("getCampaign",
                                                           {"campaign_id": "$response.body#/campaign_id"})})},
    },
    "/api/v1/campaigns/{campaign_id}": {
        "get": {"operationId": "getCampaign", "tags": ["campaigns"], "summary": "A campaign and its waves",
                "parameters": [path_param("campaign_id")],
                "responses": responses(200, ref("CampaignDetail"), 403, 404)},
    },
    "/api/v1/waves": {
        "get": {"operationId": "listWaves", "tags": ["waves"], "summary": "Waves, filtered",
                "parameters": [query("day", {"type": "string", "format": "date"}, "The wave's day"),
                               query("campaign", STR, "The campaign"),
                               query("state", {"type": "string", "enum": [s.value for s in WaveState]}, "State")],
                "responses": responses(200, ref("WaveList"), 400, 403)},
        "post": {"operationId": "createWave", "tags": ["waves"], "summary": "Create a wave",
                 "description": "Roles: planner, manager, admin. The campaign is registered if new.",
                 "requestBody": json_body(ref("WaveIn")),
                 "responses": linked(responses(201, ref("WaveView"), 400, 403, 409, 413, 415, description="Created"),
                                     201, {f"{op[0].upper()}{op[1:]}": (op, {"wave_id": "$response.body#/wave_id"})
                                           for op in ("getWave", "uploadTasks", *(f"{a}Wave" for a in ACTIONS))})},
    },
    "/api/v1/waves/{wave_id}": {
        "get": {"operationId": "getWave", "tags": ["waves"],
                "summary": "The wave's view: counts by state, outcome and channel, rates, ETA, zones, history",
                "parameters": [WAVE], "responses": responses(200, ref("WaveView"), 403, 404)},
    },
    **{
        f"/api/v1/waves/{{wave_id}}/{action}": {
            "post": {"operationId": f"{action}Wave", "tags": ["waves"], "summary": f"{action.capitalize()} the wave",
                     "description": "Roles: manager, admin. Recorded as by=<token name>"
                                    + (". Every task not yet sent ends `cancelled`." if action == "stop" else ""),
                     "parameters": [WAVE],
                     "responses": responses(200, ref("ControlResult"), 403, 404, 409)},
        }
        for action in ACTIONS
    },
    "/api/v1/waves/{wave_id}/tasks": {
        "post": {
            "operationId": "uploadTasks", "tags": ["tasks"],
            "summary": "Load tasks (JSON Lines or CSV), streamed",
            "description": "Roles: planner, admin. The body is read line by line as it arrives, never whole. "
                           "Format from `?format=`, else the Content-Type. Past the upload limit (413) or when "
                           "nothing arrives for api.body_read_timeout_s (408): the counts of what was loaded "
                           "before it. Read at most api.upload_lines_per_s; 429 beyond "
                           "api.max_concurrent_uploads uploads at once.",
            "parameters": [WAVE, query("format", {"type": "string", "enum": ["jsonl", "csv"]},
                                       "Overrides the Content-Type")],
            "requestBody": {"required": True, "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            }},
            "responses": responses(200, ref("UploadReport"), 400, 403, 404, 409, 413, 415, 429, 507),
        },
    },
    "/api/v1/stoplist": {
        "get": {"operationId": "listStoplist", "tags": ["stoplist"], "summary": "A page of stop-list entries",
                "parameters": [query("kind", {"type": "string", "enum": ["debtor", "phone"]}, "default debtor"),
                               query("cursor", {"type": "integer", "minimum": 0}, "From the previous `next`"),
                               query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "Page size")],
                "responses": responses(200, ref("StopPage"), 400, 403)},
        "post": {"operationId": "addStop", "tags": ["stoplist"], "summary": "Put a debtor or a phone on the list",
                 "description": "Roles: manager, admin",
                 "requestBody": json_body(ref("StopIn")),
                 "responses": linked(responses(201, ref("StopEntry"), 400, 403, 413, 415, description="Added"), 201, {
                     name: (op, {"kind": "$response.body#/kind", "value": "$response.body#/value"})
                     for name, op in (("GetStop", "getStop"), ("RemoveStop", "removeStop"))})},
    },
    "/api/v1/stoplist/{kind}/{value}": {
        "get": {"operationId": "getStop", "tags": ["stoplist"], "summary": "Look an entry up",
                "parameters": [STOP_KIND, STOP_VALUE], "responses": responses(200, ref("StopEntry"), 400, 403, 404)},
        "delete": {"operationId": "removeStop", "tags": ["stoplist"], "summary": "Take an entry off the list",
                   "description": "Roles: manager, admin",
                   "parameters": [STOP_KIND, STOP_VALUE],
                   "responses": responses(200, ref("StopRemoved"), 400, 403, 404)},
    },
    "/api/v1/results": {
        "get": {"operationId": "resultsPage", "tags": ["results"], "summary": "A page of the wave's results stream",
                "parameters": [WAVE_Q, SINCE, KIND,
                               query("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "Page size")],
                "responses": responses(200, ref("ResultsPage"), 400, 403, 404)},
    },
    "/api/v1/results/stream": {
        "get": {
            "operationId": "resultsStream", "tags": ["results"],
            "summary": "Server-Sent Events: the wave's results as they happen",
            "description": "`id:` the stream id, `data:` the record JSON; comments as heartbeats. Resumes after "
                           "the `Last-Event-ID` header; else after `since` (`now`: new records only); else from "
                           "the start.",
            "parameters": [WAVE_Q, {**SINCE, "schema": {"type": "string", "pattern": STREAM_SINCE_PATTERN},
                                     "description": "Stream id (exclusive), or `now` for new records only"}, KIND,
                           {"name": "Last-Event-ID", "in": "header", "required": False,
                            "schema": {"type": "string", "pattern": STREAM_ID_PATTERN}}],
            "responses": {
                "200": {"description": "An endless event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                **{k: v for k, v in responses(200, STR, 400, 403, 404).items() if k != "200"},
            },
        },
    },
    "/api/v1/tokens": {
        "get": {"operationId": "listTokens", "tags": ["auth"], "summary": "Tokens (never their values)",
                "description": "Role: admin", "responses": responses(200, ref("TokenList"), 403)},
        "post": {"operationId": "createToken", "tags": ["auth"], "summary": "A new token, shown once",
                 "description": "Role: admin", "requestBody": json_body(ref("TokenIn")),
                 "responses": linked(responses(201, ref("TokenCreated"), 400, 403, 413, 415, description="Created"),
                                     201, {"RevokeToken": ("revokeToken", {"token_id": "$response.body#/token_id"})})},
    },
    "/api/v1/tokens/{token_id}": {
        "delete": {"operationId": "revokeToken", "tags": ["auth"], "summary": "Revoke a token",
                   "description": "Role: admin. Not the token making the call (409).",
                   "parameters": [path_param("token_id")],
                   "responses": responses(200, ref("TokenRevoked"), 403, 404, 409)},
    },
    "/api/v1/audit": {
        "get": {"operationId": "audit", "tags": ["auth"], "summary": "The audit stream, oldest first",
                "description": "Role: admin",
                "parameters": [SINCE, query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size")],
                "responses": responses(200, ref("AuditPage"), 400, 403)},
    },
}


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Volna control API", "version": "1",
            "description": "Waves, uploads, the stop-list and the results stream of the Volna campaign engine. "
                           "`Authorization: Bearer <token>`; roles viewer (read), planner (+ create, upload), "
                           "manager (+ create, control, stop-list), admin (everything, tokens, audit). Errors are "
                           '`{"error": "..."}`.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
            "responses": {
                f"E{code}": {"description": text, "content": {JSON: {"schema": ref("Error")}}}
                for code, text in ERROR_TEXT.items()
            },
        },
    }


@lru_cache(maxsize=1)
def document_bytes() -> bytes:
    return json.dumps(document(), ensure_ascii=False).encode()


async def openapi_handler(request: web.Request) -> web.Response:
    return web.Response(body=document_bytes(), content_type="application/json")
