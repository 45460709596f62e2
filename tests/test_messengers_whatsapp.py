"""The WhatsApp connector against the gateway simulator over real sockets, and its reply mapping."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connectors.messengers import WhatsAppConnector
from connectors.messengers.http import Again, Decision, Done, HttpReply, MaybeSent, Unhealthy
from connectors.messengers.whatsapp import classify, template_message
from engine.domain.outcomes import Channel, Outcome
from engine.errors import ConfigError, ConnectorError
from engine.metrics.health import report
from engine.metrics.registry import Metrics
from engine.port import Accepted, Final, Retry
from simulators.gateway import GatewaySimulator, Knobs
from tests.harness import connector_events
from tests.test_messengers_support import SCENARIO, phone, request, wa_config

WA = Channel.WHATSAPP


def _reply(status: int, code: int | None = None, retry_after: float | None = None) -> HttpReply:
    data = {"error": {"message": "m", "type": "OAuthException", "code": code}} if code is not None else None
    return HttpReply(status=status, data=data, retry_after_s=retry_after, text="")


def _classify(reply: HttpReply) -> Decision:
    return classify(reply, retry_statuses=[429, 500, 503], pair_rate_delay_s=7.0, final_timeout_s=60.0)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, 131026, Final(Outcome.UNDELIVERED, provider_code="131026", provider_text="m")),
        (400, 131047, Final(Outcome.REJECTED, provider_code="131047", provider_text="m")),
        (400, 131049, Final(Outcome.REJECTED, provider_code="131049", provider_text="m")),
        (400, 131050, Final(Outcome.REJECTED, provider_code="131050", provider_text="m")),
        (400, 100, Final(Outcome.REJECTED, provider_code="100", provider_text="m")),
    ],
)
def test_error_codes_to_outcomes(status: int, code: int, expected: Final) -> None:
    assert _classify(_reply(status, code)) == Done(expected)


@pytest.mark.parametrize("code", [130429, 4, 80007])
def test_rate_codes_back_off_account_wide(code: int) -> None:
    decision = _classify(_reply(400, code, retry_after=2.0))
    assert isinstance(decision, Again) and decision.account_wide and decision.delay_s == 2.0


def test_pair_rate_waits_this_send_only() -> None:
    decision = _classify(_reply(400, 131056))
    assert isinstance(decision, Again) and not decision.account_wide and decision.delay_s == 7.0


def test_token_errors_make_the_account_unhealthy() -> None:
    assert isinstance(_classify(_reply(401, 190)), Unhealthy)
    assert isinstance(_classify(_reply(400, 190)), Unhealthy)


def test_5xx_retry_only_when_the_api_said_not_accepted() -> None:
    assert isinstance(_classify(_reply(503)), Again)
    assert isinstance(_classify(_reply(500, 131000)), Again)
    for status in (502, 504):  # a proxy lost the API's answer: may have been accepted
        with pytest.raises(MaybeSent):
            _classify(_reply(status))
    with pytest.raises(MaybeSent):  # 200 without an id proves nothing
        _classify(HttpReply(200, {"messages": []}, None, ""))


def test_template_body_params_from_vars() -> None:
    body = template_message("+79161234567", SCENARIO.messages.whatsapp,
                            {"creditor": "Вода\nканал", "account": "1", "amount": 10})
    assert body["to"] == "79161234567"
    assert body["template"]["language"] == {"policy": "deterministic", "code": "ru"}
    params = body["template"]["components"][0]["parameters"]
    assert [p["text"] for p in params] == ["Вода канал", "1", "10,00\u00a0₽"]
    with pytest.raises(ValueError, match="amount"):
        template_message("+79161234567", SCENARIO.messages.whatsapp, {"creditor": "x", "account": "1"})


def test_from_config_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="accounts"):
        WhatsAppConnector.from_config({"accounts": []}, resend_unconfirmed=False)
    with pytest.raises(ConfigError, match="access_token"):
        WhatsAppConnector.from_config({"accounts": [{"phone_number_id": "1"}]}, resend_unconfirmed=False)


async def test_send_accepted_and_targets() -> None:
    async with GatewaySimulator(Knobs(emit_sent=False)) as sim:
        conn = WhatsAppConnector.from_config(wa_config(sim.url), resend_unconfirmed=False)
        assert [(t.name, t.rate_per_s, t.max_concurrent) for t in conn.targets()] == [("wa-test", 80.0, 50)]
        async with conn:
            result = await conn.send(request(1, WA, "wa-test"))
        assert isinstance(result, Accepted) and result.correlation_id.startswith("wamid.")
        assert not result.hold_slot
        assert sim.stats.accepted["whatsapp"][phone(1).lstrip("+")] == 1


async def test_missing_var_is_an_error_before_the_wire() -> None:
    async with GatewaySimulator() as sim, WhatsAppConnector.from_config(wa_config(sim.url)) as conn:
        result = await conn.send(request(1, WA, "wa-test", vars={"creditor": "x"}))
        assert isinstance(result, Final) and result.outcome is Outcome.ERROR
        assert sim.stats.requests["whatsapp"] == 0


async def test_number_without_account_sync_131026_is_undelivered() -> None:
    knobs = Knobs(no_account_share=0.5, wa_no_account="sync")
    async with GatewaySimulator(knobs) as sim, WhatsAppConnector.from_config(wa_config(sim.url)) as conn:
        numbers = range(40)
        results = await asyncio.gather(*(conn.send(request(n, WA, "wa-test")) for n in numbers))
        for n, result in zip(numbers, results, strict=True):
            if sim.has_account("whatsapp", phone(n)):
                assert isinstance(result, Accepted)
            else:
                assert result == Final(Outcome.UNDELIVERED, provider_code="131026",
                                       provider_text="Message undeliverable: Message Undeliverable.")
        assert 5 < sum(isinstance(r, Final) for r in results) < 35


async def _send_until_done(conn: WhatsAppConnector, ns: range, channel: Channel, target: str) -> dict[int, int]:
    """Like the dispatcher: a ``Retry`` puts the same attempt back; returns sends per task."""
    calls: dict[int, int] = {}
    pending = list(ns)
    while pending:
        results = await asyncio.gather(*(conn.send(request(n, channel, target)) for n in pending))
        for n in pending:
            calls[n] = calls.get(n, 0) + 1
        assert all(isinstance(r, Accepted | Retry) for r in results)
        pending = [n for n, r in zip(pending, results, strict=True) if isinstance(r, Retry)]
        if pending:
            await asyncio.sleep(min(r.delay_s for r in results if isinstance(r, Retry)))
    return calls


async def test_429_storm_every_message_accepted_once() -> None:
    knobs = Knobs(rate_limit_per_s=200.0, rate_burst=20.0, retry_after_s=0.05, emit_sent=False)
    async with GatewaySimulator(knobs) as sim:
        conn = WhatsAppConnector.from_config(wa_config(sim.url, max_attempts=3, retry_budget_s=0.5))
        conn.metrics = Metrics(process=False)
        async with conn:
            await _send_until_done(conn, range(150), WA, "wa-test")
        assert sim.stats.throttled["whatsapp"] > 20  # it was a storm
        assert sim.stats.accepted_total("whatsapp") == 150
        assert sim.stats.accepted_twice("whatsapp") == []
        assert connector_events(conn, "gateway")["throttled"] > 0


async def test_5xx_burst_is_retried_and_accepted_once() -> None:
    async with GatewaySimulator(Knobs(emit_sent=False)) as sim:
        sim.burst("whatsapp", 30, 503)
        sim.burst("whatsapp", 30, 500)
        conn = WhatsAppConnector.from_config(wa_config(sim.url, max_attempts=20))
        async with conn:
            results = await asyncio.gather(*(conn.send(request(n, WA, "wa-test")) for n in range(40)))
        assert all(isinstance(r, Accepted) for r in results)
        assert sim.stats.server_errors["whatsapp"] == 60
        assert sim.stats.accepted_total("whatsapp") == 40 and sim.stats.accepted_twice("whatsapp") == []


async def test_502_504_and_lost_answers_are_unknown_never_resent() -> None:
    async with GatewaySimulator(Knobs(emit_sent=False, hang_s=0.4)) as sim:
        conn = WhatsAppConnector.from_config(wa_config(sim.url, read_timeout_s=0.2))
        async with conn:
            sim.burst("whatsapp", 1, 502)
            with pytest.raises(ConnectorError):
                await conn.send(request(1, WA, "wa-test"))
            sim.knobs.hang_share = 1.0  # accepted, then the answer never comes in time
            with pytest.raises(ConnectorError):
                await conn.send(request(2, WA, "wa-test"))
        assert sim.stats.requests["whatsapp"] == 2  # one request each: nothing resent
        assert sim.stats.accepted["whatsapp"][phone(2).lstrip("+")] == 1


async def test_connection_refused_is_retry() -> None:
    async with GatewaySimulator() as sim:
        url = sim.url
    conn = WhatsAppConnector.from_config(wa_config(url, max_attempts=2))
    conn.metrics = Metrics(process=False)
    async with conn:
        result = await conn.send(request(1, WA, "wa-test"))
    assert isinstance(result, Retry)
    assert connector_events(conn, "gateway")["not_sent"] == 2


async def test_revoked_token_marks_unhealthy_until_the_file_has_a_good_one(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("sim-wa-token\n")
    async with GatewaySimulator(Knobs(emit_sent=False)) as sim:
        raw = wa_config(sim.url)
        del raw["accounts"][0]["access_token"]
        raw["accounts"][0]["access_token_file"] = str(token_file)
        conn = WhatsAppConnector.from_config(raw)
        conn.metrics = metrics = Metrics(process=False)

        def account_state() -> str:  # as the console's health page shows the gateway account
            [session] = report(metrics, "p", 0)["sessions"]
            return f"{session['kind']}:{session['target']}:{session['state']}"

        async with conn:
            assert account_state() == "gateway:wa-test:up"
            assert isinstance(await conn.send(request(1, WA, "wa-test")), Accepted)
            sim.knobs.wa_token = "rotated"
            result = await conn.send(request(2, WA, "wa-test"))
            assert isinstance(result, Retry) and result.delay_s == 30.0 and "190" in result.reason
            assert not conn.healthy("wa-test") and account_state() == "gateway:wa-test:down"
            before = sim.stats.requests["whatsapp"]
            assert isinstance(await conn.send(request(3, WA, "wa-test")), Retry)
            assert sim.stats.requests["whatsapp"] == before  # nothing goes through an unhealthy account
            await asyncio.sleep(0.2)
            assert not conn.healthy("wa-test")  # probes keep failing with the old token
            token_file.write_text("rotated\n")
            async with asyncio.timeout(5):
                while not conn.healthy("wa-test"):
                    await asyncio.sleep(0.02)
            assert isinstance(await conn.send(request(3, WA, "wa-test")), Accepted)
            assert account_state() == "gateway:wa-test:up"


def test_registry_builds_it_and_route_avoids_unhealthy_accounts() -> None:
    from connectors.registry import build_connector
    from engine.config.settings import Settings

    raw = wa_config("http://127.0.0.1:1")
    raw["accounts"].append({"name": "wa-second", "phone_number_id": "1000000002", "access_token": "t",
                            "rate_per_s": 20, "max_concurrent": 5})
    conn = build_connector(WA, Settings.model_validate({"channels": {"whatsapp": {"connector": raw}}}))
    assert isinstance(conn, WhatsAppConnector) and not conn.resend_unconfirmed
    assert [(t.name, t.rate_per_s, t.max_concurrent) for t in conn.targets()] == [
        ("wa-test", 80.0, 50), ("wa-second", 20.0, 5)]
    tasks = [request(n, WA, "").task for n in range(20)]
    assert {conn.route(t) for t in tasks} == {"wa-test", "wa-second"}
    assert all(conn.route(t) == conn.route(t) for t in tasks)  # a debtor keeps its business number
    conn.clients["wa-second"].mark_unhealthy("test")
    assert {conn.route(t) for t in tasks} == {"wa-test"}


async def test_periodic_5xx_outage_is_ridden_out() -> None:
    knobs = Knobs(emit_sent=False, outage_every_s=0.2, outage_s=0.1, error_status=500)
    async with GatewaySimulator(knobs) as sim:
        async with WhatsAppConnector.from_config(wa_config(sim.url, max_attempts=20, backoff_max_s=0.05)) as conn:
            results = []
            for n in range(30):
                results.append(await conn.send(request(n, WA, "wa-test")))
                await asyncio.sleep(0.01)
        assert all(isinstance(r, Accepted) for r in results)
        assert sim.stats.server_errors["whatsapp"] > 0 and sim.stats.accepted_twice("whatsapp") == []
