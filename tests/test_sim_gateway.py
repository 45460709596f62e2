"""The gateway simulator's reach ledger and WhatsApp inbound messages, over real sockets.

The inbound webhook is checked against Meta's own spec (``meta-business-messaging-api_v23.0.yaml``,
read in place): its ``/whatsapp/webhooks`` request body is ``WebhookPayload``. That schema, as
published, cannot accept any inbound text message — not even the spec's own "Text Message"
example (:func:`test_the_published_webhook_schema_rejects_its_own_example`): the bundler
renamed the inbound message schemas (``TextMessage_2``, ``BaseMessageProperties_1``) but left
``IncomingMessage``'s ``text`` branch pointing at the *outbound* ``TextMessage`` (which requires
``to`` and ``recipient_type``) and ``TextMessage_2`` extending the outbound
``BaseMessageProperties``. The test mends those two references, in memory, to the inbound
schemas their names and the example say they mean, then validates; and it requires the same
object shape as the spec's example at every level.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import yaml
from aiohttp import web
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from simulators.gateway import GatewaySimulator, Knobs

META_SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "meta-business-messaging-api_v23.0.yaml"
_URI = "urn:meta-spec"

Received = list[tuple[dict[str, str], bytes]]


@functools.cache
def _spec() -> dict[str, Any]:
    with META_SPEC.open("rb") as fh:
        spec: dict[str, Any] = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return spec


def _mended(spec: dict[str, Any]) -> dict[str, Any]:
    fixed = copy.deepcopy(spec)
    schemas = fixed["components"]["schemas"]
    schemas["TextMessage_2"]["allOf"][0] = {"$ref": "#/components/schemas/BaseMessageProperties_1"}
    branches = schemas["IncomingMessage"]["oneOf"]
    branches[branches.index({"$ref": "#/components/schemas/TextMessage"})] = \
        {"$ref": "#/components/schemas/TextMessage_2"}
    return fixed


def _errors(spec: dict[str, Any], instance: Any) -> list[str]:
    registry: Registry[Any] = Registry().with_resource(_URI, Resource.from_contents(spec, DRAFT202012))
    validator = jsonschema.Draft202012Validator({"$ref": f"{_URI}#/components/schemas/WebhookPayload"},
                                                registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(instance)]


def _text_example() -> dict[str, Any]:
    body = _spec()["paths"]["/whatsapp/webhooks"]["post"]["requestBody"]["content"]["application/json"]
    example: dict[str, Any] = body["examples"]["Text Message"]["value"]
    return example


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


@asynccontextmanager
async def _webhook_sink() -> AsyncIterator[tuple[str, Received]]:
    """A real HTTP server recording every webhook (headers, raw body)."""
    received: Received = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.add_routes([web.post("/hook", hook)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", received
    finally:
        await runner.cleanup()


async def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
            http.post(url, json=body, headers=headers or {}) as resp:
        return resp.status, await resp.text()


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def _send_whatsapp(sim: GatewaySimulator, to: str) -> str:
    status, body = await _post(f"{sim.url}/v23.0/106540352242922/messages",
                               {"messaging_product": "whatsapp", "to": to, "type": "template",
                                "template": {"name": "debt_reminder", "language": {"code": "ru"}}},
                               {"Authorization": f"Bearer {sim.knobs.wa_token}"})
    assert status == 200, body
    message_id: str = json.loads(body)["messages"][0]["id"]
    return message_id


async def _send_viber(sim: GatewaySimulator, phone: str) -> str:
    status, body = await _post(f"{sim.url}/auth/v1/login/", {"username": "volna", "password": "sim-password"})
    token = json.loads(body)["JWTAUTH"]
    status, body = await _post(f"{sim.url}/vbs/api/v2/send", {"phone": phone, "message_type": "text",
                                                              "method": "one_way", "text": "Долг"},
                               {"Authorization": token})
    assert status == 202, body
    request_id: str = json.loads(body)["request_id"]
    return request_id


def _fast(**overrides: Any) -> Knobs:
    base: dict[str, Any] = dict(delivered_min_s=0.01, delivered_max_s=0.03, read_min_s=0.01, read_max_s=0.03)
    return Knobs(**{**base, **overrides})


async def test_delivered_and_read_reach_once_per_message(tmp_path: Path) -> None:
    path = tmp_path / "gateway-reach.jsonl"
    async with _webhook_sink() as (hook, received):
        knobs = _fast(read_share=1.0, duplicate_share=1.0, no_account_share=0.5, seed=11, reach_log=str(path),
                      whatsapp_webhook_url=hook, viber_webhook_url=hook)
        async with GatewaySimulator(knobs) as sim:
            with_wa = next(f"7916000{i:04d}" for i in range(100) if sim.has_account("whatsapp", f"7916000{i:04d}"))
            without = next(f"7916000{i:04d}" for i in range(100) if not sim.has_account("whatsapp", f"7916000{i:04d}"))
            with_viber = next(f"7916100{i:04d}" for i in range(100) if sim.has_account("viber", f"7916100{i:04d}"))
            wa_id = await _send_whatsapp(sim, "+" + with_wa)
            await _send_whatsapp(sim, without)
            viber_id = await _send_viber(sim, with_viber)
            assert await sim.wait_webhooks(5)
            events = sim.reach.events()
            status, body = await _get(f"{sim.url}/reach?format=jsonl")
            assert status == 200 and [json.loads(line) for line in body.splitlines()] == events
    # Each status was posted twice (duplicate_share 1): the ledger has each once; failed is no reach.
    assert len(received) >= 10
    assert sorted((e["number"], e["channel"], e["kind"], e["ref"]) for e in events) == sorted([
        (with_wa, "whatsapp", "delivered", wa_id), (with_wa, "whatsapp", "read", wa_id),
        (with_viber, "viber", "delivered", viber_id), (with_viber, "viber", "read", viber_id)])
    kinds = [e["kind"] for e in events if e["ref"] == wa_id]
    assert kinds == ["delivered", "read"]
    assert [json.loads(line) for line in path.read_text().splitlines()] == events


async def test_reach_is_recorded_without_a_webhook_url() -> None:
    async with GatewaySimulator(_fast(read_share=0.0)) as sim:
        wa_id = await _send_whatsapp(sim, "79160000001")
        await asyncio.sleep(0.15)
        assert [(e["kind"], e["ref"]) for e in sim.reach.events()] == [("delivered", wa_id)]


async def test_whatsapp_inbound_message_is_a_signed_cloud_api_webhook() -> None:
    async with _webhook_sink() as (hook, received):
        async with GatewaySimulator(_fast(whatsapp_webhook_url=hook)) as sim:
            status, body = await _post(f"{sim.url}/inbound/whatsapp", {"from": "+79161234567", "text": "STOP"})
            assert status == 202
            answer = json.loads(body)
            status, _ = await _post(f"{sim.url}/inbound/whatsapp", {"from": "79161234567", "text": "Стоп 🙏",
                                                                    "phone_number_id": "4242", "name": "Иван"})
            assert status == 202
            assert await sim.wait_webhooks(5)
            assert sim.stats.inbound["whatsapp"] == 2 and sim.reach.events() == []
    assert len(received) == 2
    for headers, raw in received:
        expected = "sha256=" + hmac.new(b"sim-app-secret", raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Hub-Signature-256"], expected)
    first, second = (json.loads(raw) for _, raw in received)
    value = first["entry"][0]["changes"][0]["value"]
    message = value["messages"][0]
    assert (message["from"], message["type"], message["text"]["body"], message["id"]) == \
        ("79161234567", "text", "STOP", answer["message_id"])
    assert value["contacts"][0]["wa_id"] == "79161234567" and first["entry"][0]["changes"][0]["field"] == "messages"
    assert value["metadata"]["phone_number_id"] == answer["phone_number_id"] == "106540352242922"
    second_value = second["entry"][0]["changes"][0]["value"]
    assert second_value["metadata"]["phone_number_id"] == "4242"
    assert second_value["messages"][0]["text"]["body"] == "Стоп 🙏"
    assert second_value["contacts"][0]["profile"]["name"] == "Иван"
    spec = _mended(_spec())
    for payload in (first, second):
        assert _errors(spec, payload) == []
        assert _shape(payload) == _shape(_text_example())


def test_the_published_webhook_schema_rejects_its_own_example() -> None:
    """Why the test mends two references: remove the mending once this fails (the spec fixed)."""
    assert _errors(_spec(), _text_example()) != []
    assert _errors(_mended(_spec()), _text_example()) == []


async def test_inbound_and_reach_answer_bad_input_in_one_line() -> None:
    async with GatewaySimulator(_fast()) as sim:
        status, body = await _post(f"{sim.url}/inbound/whatsapp", {"from": "79161234567", "text": "STOP"})
        assert (status, body) == (409, "whatsapp_webhook_url: not set: nowhere to post the message\n")
        sim.knobs.whatsapp_webhook_url = "http://127.0.0.1:9/hook"
        cases = [
            ({"from": "Vasya", "text": "STOP"}, "from: expected 8 to 15 digits"),
            ({"from": "79161234567"}, "text: required"),
            ({"from": "79161234567", "text": ""}, "text: expected a string of 1 to 4096 characters"),
            ({"from": "79161234567", "text": "STOP", "phone_number_id": 42},
             "phone_number_id: expected 1 to 32 digits"),
            ({"from": "79161234567", "text": "STOP", "to": "me"}, "to: unknown field"),
            (["STOP"], "body: expected a JSON object"),
        ]
        for payload, line in cases:
            status, body = await _post(f"{sim.url}/inbound/whatsapp", payload)
            assert (status, body) == (400, line + "\n"), payload
        status, body = await _get(f"{sim.url}/reach?channel=fax")
        assert (status, body) == (400, "channel: expected one of ivr, sms, viber, whatsapp\n")
        assert sim.stats.inbound["whatsapp"] == 0
        status, _ = await _get(f"{sim.url}/stats")
        assert status == 200
