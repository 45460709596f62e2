"""What goes over the wire, checked against the providers' OpenAPI specs with jsonschema ($refs resolved).

Meta (OpenAPI 3.1, JSON Schema 2020-12): our requests against ``Message`` (and, since
``TemplateComponent`` only names its variants in a ``discriminator`` that jsonschema
ignores, the body component against ``BodyComponent`` and each parameter against
``TextParameter``); the simulator's status webhooks against ``WebhookPayload`` (the spec
has one: ``/whatsapp/webhooks``), its replies against ``MessageResponsePayload`` and
``GraphAPIError``. The spec documents no error responses for ``sendMessage``.

Route Mobile (OpenAPI 3.0): its ``oneOf`` lists (send bodies, callbacks) cannot be
satisfied by any object — no branch has required keys, so every object matches all of
them (``test_routemobile_oneof_cannot_discriminate``). We validate against the named
branch instead, tightened with its properties as required and nothing else allowed.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

from connectors.messengers import ViberConnector, WhatsAppConnector
from connectors.messengers.whatsapp import template_message
from engine.domain.outcomes import Channel
from engine.port import Accepted
from simulators.gateway import GatewaySimulator, Knobs
from tests.test_messengers_support import (
    META_SPEC,
    ROUTEMOBILE_SPEC,
    SCENARIO,
    capture_app,
    load_spec,
    request,
    serve,
    viber_config,
    wa_config,
)

Captured = list[tuple[str, dict[str, str], Any]]


class Spec:
    def __init__(self, spec: dict[str, Any], uri: str, dialect: Any, validator: Any) -> None:
        self.spec, self.uri, self.validator = spec, uri, validator
        self.registry: Registry[Any] = Registry().with_resource(uri, Resource.from_contents(spec, dialect))

    def schema(self, name: str) -> dict[str, Any]:
        schema: dict[str, Any] = self.spec["components"]["schemas"][name]
        return schema

    def errors(self, instance: Any, schema: dict[str, Any]) -> list[str]:
        validator = self.validator({**schema, "$id": "urn:check"}, registry=self.registry)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in validator.iter_errors(instance)]

    def check(self, instance: Any, schema: dict[str, Any]) -> None:
        errors = self.errors(instance, schema)
        assert not errors, "\n".join(errors)

    def ref(self, name: str) -> dict[str, Any]:
        return self.at("components", "schemas", name)

    def at(self, *parts: str) -> dict[str, Any]:
        """A reference to any subschema of the spec by its path (so its relative $refs resolve)."""
        pointer = "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)
        return {"$ref": f"{self.uri}#/{pointer}"}

    def strict(self, name: str) -> dict[str, Any]:
        """A named Route Mobile schema with all its properties required and no others allowed."""
        schema = copy.deepcopy(self.schema(name))
        schema["additionalProperties"] = False
        schema["required"] = sorted(schema["properties"])
        return schema


@pytest.fixture(scope="session")
def meta() -> Spec:
    return Spec(load_spec(META_SPEC), "urn:meta", DRAFT202012, jsonschema.Draft202012Validator)


@pytest.fixture(scope="session")
def routemobile() -> Spec:
    return Spec(load_spec(ROUTEMOBILE_SPEC), "urn:routemobile", DRAFT7, jsonschema.Draft7Validator)


# ---- WhatsApp: our requests -----------------------------------------------------------------


async def _meta_answer(req: web.Request, data: Any) -> web.Response:
    return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": "x", "wa_id": "x"}],
                              "messages": [{"id": f"wamid.{len(data or {})}"}]})


@pytest.fixture
async def wa_captured() -> AsyncIterator[Captured]:
    captured: Captured = []
    async with serve(capture_app(captured, _meta_answer)) as url:
        async with WhatsAppConnector.from_config(wa_config(url)) as conn:
            variants = [None, {"creditor": 'ООО "Тепло"\t№1', "account": 7, "amount": "99.999"}]
            for n, vars in enumerate(variants):
                assert isinstance(await conn.send(request(n, Channel.WHATSAPP, "wa-test", vars=vars)), Accepted)
        yield captured


def test_whatsapp_request_matches_meta_spec(meta: Spec, wa_captured: Captured) -> None:
    params = {p["name"]: p["schema"] for p in meta.spec["components"]["parameters"].values() if "name" in p}
    assert len(wa_captured) == 2
    for path, headers, body in wa_captured:
        assert path == "/v23.0/1000000001/messages"
        meta.check(body, meta.ref("Message"))
        [component] = body["template"]["components"]
        meta.check(component, meta.ref("BodyComponent"))
        for param in component["parameters"]:
            meta.check(param, meta.ref("TextParameter"))
        meta.check(headers["Authorization"], params["Authorization"])
        meta.check(headers["User-Agent"], params["User-Agent"])
        meta.check(headers["Content-Type"], params["Content-Type"])


def test_template_without_params_and_language_policy(meta: Spec) -> None:
    template = SCENARIO.messages.whatsapp.model_copy(update={"body_params": []})  # type: ignore[union-attr]
    body = template_message("+79161234567", template, {})
    assert "components" not in body["template"]
    meta.check(body, meta.ref("Message"))
    del body["template"]["language"]["policy"]  # the spec's LanguageObject requires it: that is why we send it
    assert meta.errors(body, meta.ref("Message"))


# ---- WhatsApp: the simulator's replies and webhooks -----------------------------------------


async def test_simulator_replies_match_meta_spec(meta: Spec) -> None:
    body = template_message("+79161234567", SCENARIO.messages.whatsapp,
                            {"creditor": "x", "account": "1", "amount": 1})
    async with GatewaySimulator(Knobs(emit_sent=False)) as sim, aiohttp.ClientSession() as http:
        url = sim.url + "/v23.0/1000000001/messages"
        auth = {"Authorization": "Bearer sim-wa-token"}
        async with http.post(url, json=body, headers=auth) as resp:
            assert resp.status == 200
            meta.check(await resp.json(), meta.ref("MessageResponsePayload"))
        sim.burst("whatsapp", 1, 429)
        for headers in (auth, {"Authorization": "Bearer wrong"}):
            async with http.post(url, json=body, headers=headers) as resp:
                assert resp.status in (401, 429)
                meta.check(await resp.json(), meta.ref("GraphAPIError"))


async def test_simulator_webhooks_match_meta_spec(meta: Spec) -> None:
    captured: Captured = []
    knobs = Knobs(no_account_share=0.4, read_share=1.0, delivered_max_s=0.02, read_max_s=0.05)
    async with serve(capture_app(captured)) as hook, GatewaySimulator(knobs) as sim:
        sim.knobs.whatsapp_webhook_url = hook + "/hook"
        async with WhatsAppConnector.from_config(wa_config(sim.url)) as conn:
            await asyncio.gather(*(conn.send(request(n, Channel.WHATSAPP, "wa-test")) for n in range(12)))
        assert await sim.wait_webhooks(10)
    seen = set()
    for _, headers, body in captured:
        assert headers["X-Hub-Signature-256"].startswith("sha256=")
        meta.check(body, meta.ref("WebhookPayload"))
        for entry in body["entry"]:
            for change in entry["changes"]:
                meta.check(change["value"], meta.ref("StatusMessageValue"))
                seen |= {s["status"] for s in change["value"]["statuses"]}
    assert seen == {"sent", "delivered", "read", "failed"}
    wrong = copy.deepcopy(captured[0][2])
    wrong["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "bogus"
    assert meta.errors(wrong, meta.ref("WebhookPayload"))  # the check is not vacuous


# ---- Viber: our requests, the simulator's replies and callbacks -----------------------------


async def _routemobile_answer(req: web.Request, data: Any) -> web.Response:
    if req.path == "/auth/v1/login/":
        return web.json_response({"JWTAUTH": "eyJ.x.y"}, status=201)
    return web.json_response({"status": "success", "message": "ok", "request_id": "r-1"}, status=202)


async def test_viber_requests_match_routemobile_spec(routemobile: Spec) -> None:
    captured: Captured = []
    async with serve(capture_app(captured, _routemobile_answer)) as url:
        raw = {**viber_config(url), "ttl_s": 3600}
        async with ViberConnector.from_config(raw) as conn:
            assert isinstance(await conn.send(request(1, Channel.VIBER, "viber-test")), Accepted)
    (login_path, _, login), (send_path, headers, body) = captured
    assert (login_path, send_path) == ("/auth/v1/login/", "/vbs/api/v2/send")
    routemobile.check(login, routemobile.ref("v1_login_body"))
    # The single-text schema has no ttl; the other single-message schemas type it as a string.
    strict = routemobile.strict("vbs_single_text_msg") | {"properties": {
        **routemobile.schema("vbs_single_text_msg")["properties"], "ttl": {"type": "string"}}}
    routemobile.check(body, strict)
    assert routemobile.errors({**body, "extra": 1}, strict) and routemobile.errors({**body, "ttl": 3600}, strict)
    assert body["message_type"] == "text" and body["method"] == "one_way" and body["phone"].isdigit()
    assert headers["Authorization"] == "eyJ.x.y"  # the spec's `jwt` apiKey scheme, in the Authorization header


def test_routemobile_oneof_cannot_discriminate(routemobile: Spec) -> None:
    body = {"phone": "79161234567", "text": "t", "message_type": "text", "method": "one_way"}
    send = routemobile.at("paths", "/vbs/api/v2/send", "post", "requestBody", "content", "application/json", "schema")
    assert any("valid under each of" in e for e in routemobile.errors(body, send))
    report = {"message_status": "delivered", "message_time": 1, "phone_number": "7", "service_type": "one_way",
              "request_id": "r"}
    callback = routemobile.at("paths", "/callback", "post", "requestBody", "content", "application/json", "schema")
    assert any("valid under each of" in e for e in routemobile.errors(report, callback))


async def test_simulator_replies_and_callbacks_match_routemobile_spec(routemobile: Spec) -> None:
    json_body = ("content", "application/json", "schema")
    accepted_schema = routemobile.at("paths", "/vbs/api/v2/send", "post", "responses", "202", *json_body)
    login_schema = routemobile.at("paths", "/auth/v1/login/", "post", "responses", "201", *json_body)
    captured: Captured = []
    knobs = Knobs(no_account_share=0.4, read_share=1.0, delivered_max_s=0.02, read_max_s=0.05)
    async with serve(capture_app(captured)) as hook, GatewaySimulator(knobs) as sim, \
            aiohttp.ClientSession() as http:
        sim.knobs.viber_webhook_url = hook + "/callback"
        async with http.post(sim.url + "/auth/v1/login/",
                             json={"username": "volna", "password": "sim-password"}) as resp:
            assert resp.status == 201
            login = await resp.json()
            routemobile.check(login, {"allOf": [login_schema], "required": ["JWTAUTH"]})
        for n in range(12):
            body = {"phone": f"7916000{n:04d}", "text": "t", "message_type": "text", "method": "one_way"}
            async with http.post(sim.url + "/vbs/api/v2/send", json=body,
                                 headers={"Authorization": login["JWTAUTH"]}) as resp:
                assert resp.status == 202
                routemobile.check(await resp.json(), {"allOf": [accepted_schema], "required": ["status", "request_id"]})
        assert await sim.wait_webhooks(10)
    statuses = set()
    for _, headers, report in captured:
        assert headers["Authorization"] == "sim-callback-token"
        routemobile.check(report, routemobile.strict("vbs_callback_delivery_report"))
        statuses.add(report["message_status"])
    # The values the spec's description lists: delivered/seen/expired/subscribe/unsubscribe.
    assert statuses == {"delivered", "seen", "unsubscribe"}
    assert json.dumps(captured[0][2])  # plain JSON
