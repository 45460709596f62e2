"""The webhook endpoints over real sockets: signatures, handshake, limits; and simulator → webhooks → sink."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.messengers import ViberConnector, WhatsAppConnector
from connectors.messengers.endpoint import WebhookSecrets, make_webhook_app
from connectors.messengers.routemobile import RouteMobileAdapter
from connectors.messengers.webhooks import WebhookFormatError, parse_whatsapp, sign_sha256
from connectors.registry import webhook_secrets
from engine.domain.outcomes import Channel, Outcome
from engine.metrics.registry import Metrics
from engine.port import Accepted, InboundEvent, LateEvent
from simulators.gateway import GatewaySimulator, Knobs
from tests.test_messengers_support import Recorder, phone, request, serve, viber_config, wa_config

SECRETS = WebhookSecrets(whatsapp_app_secrets=("sim-app-secret", "old-secret"), whatsapp_verify_token="verify-me",
                         viber_token="sim-callback-token", viber_hmac_secret="sim-hmac-secret")


def wa_status(message_id: str, status: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": message_id, "status": status, "timestamp": "1750000000",
                            "recipient_id": "79160000001"}
    if errors:
        item["errors"] = errors
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "2"},
             "statuses": [item]}
    return {"object": "whatsapp_business_account", "entry": [{"id": "3", "changes": [{"value": value,
                                                                                      "field": "messages"}]}]}


def dlr(request_id: str, status: str) -> dict[str, Any]:
    return {"message_status": status, "message_time": 1750000000123, "phone_number": "79160000001",
            "service_type": "one_way", "request_id": request_id}


def webhook_count(metrics: Metrics, verdict: str, provider: str | None = None) -> int:
    """``volna_webhook_requests_total`` of a verdict, for one provider or summed over both."""
    return _sum(metrics, "volna_webhook_requests_total", "verdict", verdict, provider)


def webhook_items(metrics: Metrics, result: str, provider: str | None = None) -> int:
    """``volna_webhook_items_total`` of a result (``event``, ``ignored``, ``skipped``)."""
    return _sum(metrics, "volna_webhook_items_total", "result", result, provider)


def _sum(metrics: Metrics, name: str, label: str, value: str, provider: str | None) -> int:
    get = metrics.registry.get_sample_value
    return int(sum(get(name, {"provider": p, label: value}) or 0 for p in ([provider] if provider else
                                                                            ["whatsapp", "viber"])))


class Endpoint:
    def __init__(self, url: str, session: aiohttp.ClientSession, sink: Recorder, metrics: Metrics) -> None:
        self.url, self.session, self.sink, self.metrics = url, session, sink, metrics

    def count(self, verdict: str, provider: str | None = None) -> int:
        return webhook_count(self.metrics, verdict, provider)

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> int:
        async with self.session.post(self.url + path, data=body, headers=headers or {}) as resp:
            await resp.read()
            return resp.status

    async def wa(self, payload: Any, secret: str = "sim-app-secret") -> int:
        raw = json.dumps(payload).encode()
        return await self.post("/webhooks/whatsapp", raw, {"X-Hub-Signature-256": sign_sha256(secret, raw)})

    async def viber(self, payload: Any) -> int:
        raw = json.dumps(payload).encode()
        return await self.post("/webhooks/viber", raw, {"Authorization": "sim-callback-token",
                                                        "X-Volna-Signature": sign_sha256("sim-hmac-secret", raw)})


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    sink = Recorder()
    metrics = Metrics(process=False)
    app = make_webhook_app(sink, SECRETS, max_body_bytes=4096, metrics=metrics)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        yield Endpoint(url, session, sink, metrics)


# ---- handshake and signatures ---------------------------------------------------------------


async def test_verify_handshake(endpoint: Endpoint) -> None:
    url = endpoint.url + "/webhooks/whatsapp"
    good = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"}
    async with endpoint.session.get(url, params=good) as resp:
        assert resp.status == 200 and await resp.text() == "1158201444"
    for bad in ({**good, "hub.verify_token": "nope"}, {**good, "hub.mode": "unsubscribe"}, {}):
        async with endpoint.session.get(url, params=bad) as resp:
            assert resp.status == 403
    assert endpoint.count("verify_ok", "whatsapp") == 1 and endpoint.count("verify_refused", "whatsapp") == 3


async def test_whatsapp_signatures(endpoint: Endpoint) -> None:
    payload = wa_status("wamid.A", "delivered")
    raw = json.dumps(payload).encode()
    assert await endpoint.wa(payload) == 200
    assert await endpoint.wa(payload, secret="old-secret") == 200  # the previous secret while rotating
    assert await endpoint.wa(payload, secret="wrong") == 403
    assert await endpoint.post("/webhooks/whatsapp", raw) == 401
    assert await endpoint.post("/webhooks/whatsapp", raw, {"X-Hub-Signature-256": "sha256="}) == 403
    changed = raw.replace(b"delivered", b"read")  # the body changed after signing
    assert await endpoint.post("/webhooks/whatsapp", changed,
                               {"X-Hub-Signature-256": sign_sha256("sim-app-secret", raw)}) == 403
    assert [e.outcome for e in endpoint.sink.events] == [Outcome.DELIVERED, Outcome.DELIVERED]
    assert (endpoint.count("unsigned", "whatsapp"), endpoint.count("bad_signature", "whatsapp")) == (1, 3)
    assert endpoint.count("accepted", "whatsapp") == 2 and webhook_items(endpoint.metrics, "event", "whatsapp") == 2


async def test_viber_token_and_hmac(endpoint: Endpoint) -> None:
    raw = json.dumps(dlr("r-1", "delivered")).encode()
    sig = sign_sha256("sim-hmac-secret", raw)
    assert await endpoint.viber(dlr("r-1", "delivered")) == 200
    assert await endpoint.post("/webhooks/viber", raw, {"Authorization": "Bearer sim-callback-token",
                                                        "X-Volna-Signature": sig}) == 200
    assert await endpoint.post("/webhooks/viber", raw, {"X-Volna-Signature": sig}) == 401
    assert await endpoint.post("/webhooks/viber", raw, {"Authorization": "sim-callback-token"}) == 401
    assert await endpoint.post("/webhooks/viber", raw, {"Authorization": "x", "X-Volna-Signature": sig}) == 403
    changed = raw.replace(b"delivered", b"seen")
    assert await endpoint.post("/webhooks/viber", changed, {"Authorization": "sim-callback-token",
                                                            "X-Volna-Signature": sig}) == 403
    assert len(endpoint.sink.events) == 2


# ---- limits and garbage ---------------------------------------------------------------------


async def test_oversized_malformed_and_still_serving(endpoint: Endpoint) -> None:
    big = b"{" + b" " * 5000 + b"}"
    assert await endpoint.post("/webhooks/whatsapp", big, {"X-Hub-Signature-256": sign_sha256("sim-app-secret", big)}) \
        == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    async with endpoint.session.post(endpoint.url + "/webhooks/viber", data=chunks()) as resp:
        assert resp.status == 413  # no Content-Length: the capped read refuses it
    for junk in (b"{not json", b"\xff\xfe", b"[1, 2]", b'{"object": "page", "entry": []}'):
        assert await endpoint.post("/webhooks/whatsapp", junk,
                                   {"X-Hub-Signature-256": sign_sha256("sim-app-secret", junk)}) == 400
    assert await endpoint.viber("just a string") == 400
    assert await endpoint.wa(wa_status("wamid.B", "read")) == 200  # still serving
    assert (endpoint.count("too_large"), endpoint.count("malformed"), webhook_items(endpoint.metrics, "event")) \
        == (2, 5, 1)
    assert endpoint.count("too_large", "viber") == 1 and endpoint.count("malformed", "viber") == 1


async def test_every_verdict_and_item_is_a_series_from_the_start_and_items_are_counted(endpoint: Endpoint) -> None:
    """What the endpoint refuses or takes is visible in Prometheus only (no counters beside it): every
    verdict of a served route starts at 0, so a first refusal shows in ``rate()``; the items of an
    accepted payload are counted by what became of them."""
    series = {(s.name, s.labels["provider"], s.labels.get("verdict") or s.labels["result"])
              for fam in endpoint.metrics.registry.collect() for s in fam.samples
              if s.name in ("volna_webhook_requests_total", "volna_webhook_items_total")}
    verdicts = {"accepted", "malformed", "unsigned", "bad_signature", "stalled", "too_large", "overloaded",
                "sink_error", "other"}
    for provider, extra in (("whatsapp", {"verify_ok", "verify_refused"}), ("viber", set())):
        assert {v for n, p, v in series if (n, p) == ("volna_webhook_requests_total", provider)} == verdicts | extra
        assert {v for n, p, v in series if (n, p) == ("volna_webhook_items_total", provider)} == {
            "event", "ignored", "skipped"}
    payload = wa_status("wamid.D", "delivered")
    value = payload["entry"][0]["changes"][0]["value"]
    value["statuses"] += [{"id": "wamid.E", "status": "sent"}, {"status": "read"}]  # ignored; skipped (no id)
    value["messages"] = [{"from": "79160000001", "id": "wamid.IN", "type": "text", "text": {"body": "СТОП"}},
                         {"from": "79160000001", "type": "text"}]  # an inbound message (an event); no id: skipped
    assert await endpoint.wa(payload) == 200
    assert [webhook_items(endpoint.metrics, r, "whatsapp") for r in ("event", "ignored", "skipped")] == [2, 1, 2]
    assert endpoint.count("accepted") == 1 and sum(endpoint.count(v) for v in verdicts) == 1


async def test_sink_failure_asks_for_redelivery() -> None:
    async def broken(event: LateEvent) -> None:
        raise RuntimeError("redis down")

    async def slow(event: LateEvent) -> None:
        await asyncio.sleep(5)

    for sink in (broken, slow):
        metrics = Metrics(process=False)
        app = make_webhook_app(sink, SECRETS, sink_timeout_s=0.1, metrics=metrics)
        async with serve(app) as url, aiohttp.ClientSession() as session:
            raw = json.dumps(wa_status("wamid.C", "delivered")).encode()
            async with session.post(url + "/webhooks/whatsapp", data=raw,
                                    headers={"X-Hub-Signature-256": sign_sha256("sim-app-secret", raw)}) as resp:
                assert resp.status == 503
            assert webhook_count(metrics, "sink_error", "whatsapp") == 1
            assert metrics.registry.get_sample_value("volna_errors_total", {"kind": "webhook_sink"}) == 1


def test_channel_without_secrets_has_no_route() -> None:
    app = make_webhook_app(Recorder(), WebhookSecrets(whatsapp_app_secrets=("s",)))
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert paths == {"/webhooks/whatsapp"}


# ---- pure parsing ---------------------------------------------------------------------------


def test_whatsapp_status_mapping() -> None:
    err = {"code": 131026, "title": "Message undeliverable", "error_data": {"details": "Not on WhatsApp"}}
    parsed = parse_whatsapp(wa_status("wamid.F", "failed", [err]))
    assert parsed.events == [LateEvent(channel=Channel.WHATSAPP, correlation_id="wamid.F",
                                       outcome=Outcome.UNDELIVERED, final=True, provider_code="131026",
                                       provider_text="Message undeliverable: Not on WhatsApp",
                                       data={"status": "failed", "provider_time_ms": 1750000000000})]
    assert [e.final for e in parse_whatsapp(wa_status("x", "read")).events] == [True]
    assert parse_whatsapp(wa_status("x", "sent")).events == [] and parse_whatsapp(wa_status("x", "sent")).ignored == 1
    sent = parse_whatsapp(wa_status("x", "sent"), emit_sent=True).events
    assert [(e.outcome, e.final) for e in sent] == [(Outcome.ACCEPTED, False)]
    broken = wa_status("x", "delivered")
    broken["entry"][0]["changes"][0]["value"]["statuses"].append({"status": "read"})  # no id
    parsed = parse_whatsapp(broken)
    assert len(parsed.events) == 1 and parsed.skipped == 1


def test_routemobile_dlr_mapping() -> None:
    parse = RouteMobileAdapter.parse_callback
    expected = {"delivered": (Outcome.DELIVERED, True), "seen": (Outcome.READ, True),
                "expired": (Outcome.EXPIRED, True), "unsubscribe": (Outcome.NOT_SUBSCRIBED, True),
                "subscribe": (None, False)}
    for status, (outcome, final) in expected.items():
        [event] = parse(dlr("r", status)).events
        assert (event.channel, event.correlation_id, event.outcome, event.final) == (Channel.VIBER, "r", outcome, final)
    incoming = {"phone_number": "79161234567", "time": 1, "message": {"text": "СТОП"}, "request_id": "q"}
    [reply] = parse(incoming).events  # a debtor's message (docs/inbound.md)
    assert isinstance(reply, InboundEvent) and (reply.phone, reply.text, reply.source_id) == (
        "+79161234567", "СТОП", "viber:q")
    not_a_phone = {"phone_number": "7916", "time": 1, "message": {"text": "hi"}, "request_id": "q"}
    assert parse(not_a_phone).events == [] and parse(not_a_phone).skipped == 1
    with pytest.raises(WebhookFormatError):
        parse([1, 2])


@settings(max_examples=50, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["object", "entry", "changes", "value", "statuses", "id", "status",
                                         "errors", "code", "messages", "timestamp"]), inner, max_size=4),
                    max_leaves=20))
def test_whatsapp_parser_never_crashes(data: Any) -> None:
    try:
        parsed = parse_whatsapp(data)
    except WebhookFormatError:
        return
    assert all(e.correlation_id for e in parsed.events)


# ---- simulator → webhook app → sink ---------------------------------------------------------


def first_final(events: list[LateEvent]) -> LateEvent:
    return next(e for e in events if e.final)


async def test_whatsapp_statuses_from_the_simulator() -> None:
    sink = Recorder()
    knobs = Knobs(no_account_share=0.3, duplicate_share=0.3, read_without_delivered_share=0.2,
                  out_of_order_share=0.2, late_share=0.1, late_after_s=0.3, read_share=0.7,
                  delivered_max_s=0.05, read_max_s=0.1)
    async with serve(make_webhook_app(sink, SECRETS)) as hook_url, GatewaySimulator(knobs) as sim:
        sim.knobs.whatsapp_webhook_url = hook_url + "/webhooks/whatsapp"
        async with WhatsAppConnector.from_config(wa_config(sim.url)) as conn:
            results = await asyncio.gather(*(conn.send(request(n, Channel.WHATSAPP, "wa-test")) for n in range(80)))
        assert await sim.wait_webhooks(10)
    ids = {r.correlation_id: n for n, r in enumerate(results) if isinstance(r, Accepted)}
    assert len(ids) == 80 and sim.stats.webhooks_failed["whatsapp"] == 0
    by_id = sink.by_id()
    assert set(by_id) == set(ids)
    for message_id, n in ids.items():
        final = first_final(by_id[message_id])
        if sim.has_account("whatsapp", phone(n)):
            assert final.outcome in (Outcome.DELIVERED, Outcome.READ)
        else:
            assert (final.outcome, final.provider_code) == (Outcome.UNDELIVERED, "131026")
    assert any(len([e for e in evs if e.final]) > 2 for evs in by_id.values())  # duplicates came
    read_only = [i for i, evs in by_id.items() if {e.outcome for e in evs} == {Outcome.READ}]
    assert read_only  # a read without a delivered


async def test_viber_not_subscribed_exactly_for_numbers_without_viber() -> None:
    sink = Recorder()
    knobs = Knobs(no_account_share=0.3, duplicate_share=0.2, delivered_max_s=0.05, read_max_s=0.1)
    async with serve(make_webhook_app(sink, SECRETS)) as hook_url, GatewaySimulator(knobs) as sim:
        sim.knobs.viber_webhook_url = hook_url + "/webhooks/viber"
        async with ViberConnector.from_config(viber_config(sim.url)) as conn:
            results = await asyncio.gather(*(conn.send(request(n, Channel.VIBER, "viber-test")) for n in range(100)))
        assert await sim.wait_webhooks(10)
    ids = {r.correlation_id: n for n, r in enumerate(results) if isinstance(r, Accepted)}
    by_id = sink.by_id()
    not_subscribed = {ids[i] for i, evs in by_id.items() if first_final(evs).outcome is Outcome.NOT_SUBSCRIBED}
    expected = {n for n in range(100) if not sim.has_account("viber", phone(n))}
    assert not_subscribed == expected and 15 < len(expected) < 45
    assert all(first_final(by_id[i]).outcome in (Outcome.DELIVERED, Outcome.READ)
               for i, n in ids.items() if n not in expected)


def test_secrets_from_settings() -> None:
    from engine.config.settings import Settings
    from engine.errors import ConfigError
    from tests.test_messengers_support import viber_config, wa_config

    settings = Settings.model_validate({"channels": {"whatsapp": {"connector": wa_config("http://x")},
                                                       "viber": {"connector": viber_config("http://x")}}})
    secrets = webhook_secrets(settings)
    assert secrets == WebhookSecrets(whatsapp_app_secrets=("sim-app-secret",), whatsapp_verify_token="verify-me",
                                     viber_partner="routemobile", viber_token="sim-callback-token",
                                     viber_hmac_secret="sim-hmac-secret")
    unauthenticated = viber_config("http://x")
    del unauthenticated["callback_token"], unauthenticated["callback_hmac_secret"]
    with pytest.raises(ConfigError, match="callback_token"):
        webhook_secrets(Settings.model_validate({"channels": {"viber": {"connector": unauthenticated}}}))
