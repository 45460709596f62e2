"""The AMI connector against the AMI simulator over TCP: outcomes, data, actions, the wire contract."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from connectors.ami import AmiConnector
from connectors.ami.calls import call_ids
from connectors.ami.settings import format_number
from engine.domain.outcomes import Outcome
from engine.errors import ConfigError
from engine.port import Accepted, Final, Retry
from simulators.ami import AmiSimulator
from tests.harness import connector_events
from tests.test_ami_support import Sink, config, digits, fast_knobs, request, running, wait_for


async def test_answered_call_reports_keys_steps_and_actions() -> None:
    knobs = fast_knobs(keys_by_number={digits(1): "2"}, steps="greeting,amount,main")
    async with running(knobs) as (sim, conn, sink):
        req = request(1)
        t0 = time.monotonic()
        result = await conn.send(req)
        assert time.monotonic() - t0 < 0.5  # the "queued" answer, not the call
        cid = call_ids(req.attempt.key)[0]
        assert result == Accepted(correlation_id=cid, hold_slot=True, final_timeout_s=pytest.approx(98.2),
                                  data={"server": "ast1", "trunk": "trunk-a", "operator_offer": "offered"})
        await wait_for(lambda: len(sink.late) == 1)
        ev = sink.late[0]
        assert (ev.correlation_id, ev.outcome, ev.final) == (cid, Outcome.ANSWERED, True)
        assert (ev.provider_code, ev.provider_text) == ("reason=4;cause=16", "Normal Clearing")
        assert ev.actions == ("sms_payment_details",)
        assert ev.data["dtmf"] == "2" and ev.data["step"] == "main"
        assert ev.data["steps"] == ["greeting", "amount", "main"] and ev.data["seconds"] >= 0
        assert sim.stats.per_number == {digits(1): 1}


OUTCOME_CASES = {
    "busy": (Outcome.BUSY, "reason=5;cause=17"),
    "no_answer": (Outcome.NO_ANSWER, "reason=3;cause=19"),
    "congestion": (Outcome.CONGESTION, "reason=8;cause=34"),
    "invalid": (Outcome.INVALID_NUMBER, "reason=8;cause=1"),
    "rejected": (Outcome.REJECTED, "reason=5;cause=21"),
    "failed": (Outcome.FAILED, "reason=0;cause=0"),
    "machine": (Outcome.ANSWERED_MACHINE, "reason=4;cause=16"),
    "answered": (Outcome.ANSWERED, "reason=4;cause=16"),
}


@pytest.mark.parametrize("dial", ["Local/{number}@debtor-sim", "PJSIP/{number}@trunk-a"])
async def test_every_simulated_outcome(dial: str) -> None:
    names = sorted(OUTCOME_CASES)
    knobs = fast_knobs(by_number={digits(i): name for i, name in enumerate(names)})
    async with running(knobs, trunk={"dial": dial}) as (_, conn, sink):
        ids = {}
        for i, name in enumerate(names):
            result = await conn.send(request(i))
            assert isinstance(result, Accepted)
            ids[result.correlation_id] = name
        await wait_for(lambda: len(sink.late) == len(names))
        for cid, ev in sink.by_id().items():
            outcome, code = OUTCOME_CASES[ids[cid]]
            if dial.startswith("PJSIP") and ids[cid] == "failed":
                code = "reason=0"  # no channel at all: only the OriginateResponse, Uniqueid <unknown>
            assert (ev.outcome, ev.provider_code) == (outcome, code), ids[cid]
        assert 1 <= conn.trunk_high_water("trunk-a") <= len(names)
        assert conn._trunks["trunk-a"].active == 0


async def test_operator_only_when_the_conversation_cap_has_room() -> None:
    knobs = fast_knobs(keys_by_number={digits(1): "1", digits(2): "1"}, steps="greeting,amount,main")
    async with running(knobs) as (_, conn, sink):
        yes = await conn.send(request(1, conv_ok=True))
        no = await conn.send(request(2, conv_ok=False))
        await wait_for(lambda: len(sink.late) == 2)
        got = sink.by_id()
        assert isinstance(yes, Accepted) and isinstance(no, Accepted)
        assert yes.data["operator_offer"] == "offered" and no.data["operator_offer"] == "cap_full"
        assert got[yes.correlation_id].actions == ("operator",) and got[yes.correlation_id].data["operator_offered"]
        assert got[yes.correlation_id].data["queue"] == {"name": "debt-operators", "result": "connected",
                                                         "wait_s": 0.0}
        assert got[no.correlation_id].actions == () and got[no.correlation_id].data["dtmf"] == "1"
        assert "operator_offered" not in got[no.correlation_id].data


async def test_bad_input_never_dials() -> None:
    async with running() as (sim, conn, _):
        assert await conn.send(request(1, amount="lots")) == Final(
            Outcome.ERROR, provider_text="step amount: task var 'amount': not an amount: 'lots'")
        assert isinstance(await conn.send(request(2, target="nope")), Final)
        no_ivr = request(3)
        object.__setattr__(no_ivr, "scenario", None)
        assert await conn.send(no_ivr) == Final(Outcome.ERROR, provider_text="scenario has no ivr script")
        assert sim.stats.originates == 0


async def test_same_attempt_twice_dials_once() -> None:
    async with running(fast_knobs(talk_min_s=0.3, talk_max_s=0.3)) as (sim, conn, sink):
        first = await conn.send(request(1))
        again = await conn.send(request(1))
        assert isinstance(first, Accepted) and isinstance(again, Accepted)
        assert again.correlation_id == first.correlation_id and again.data == {"duplicate": True}
        await wait_for(lambda: len(sink.late) == 1)
        await sim.idle()
        assert sim.stats.originates == 1


async def test_wire_contract_of_login_and_originate() -> None:
    """What a real Asterisk receives: MD5 login with the event mask, then one async Originate."""
    received: list[bytes] = []

    async def fake_asterisk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        try:
            await answer(reader, writer)
        finally:
            writer.close()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.append(data)
            text = data.decode()
            aid = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("ActionID"))
            if "Action: Challenge" in text:
                writer.write(f"Response: Success\r\nActionID: {aid}\r\nChallenge: 12345\r\n\r\n".encode())
            elif "Action: Originate" in text:
                writer.write(f"Response: Success\r\nActionID: {aid}\r\nMessage: Originate successfully queued"
                             "\r\n\r\n".encode())
            else:
                writer.write(f"Response: Success\r\nActionID: {aid}\r\nMessage: ok\r\n\r\n".encode())

    server = await asyncio.start_server(fake_asterisk, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = config(port, close_drain_s=0, trunk={"dial": "PJSIP/{number}@trunk-a", "number_format": "national_8",
                              "caller_id": '"Volna" <84950000000>'})
    conn = AmiConnector.from_config(cfg)
    req = request(7, amount="1 521,01", conv_ok=False)
    async with conn:
        result = await conn.send(req)
    server.close()
    await server.wait_closed()
    cid, other, aid = call_ids(req.attempt.key)
    assert isinstance(result, Accepted) and result.correlation_id == cid
    wire = b"".join(received).decode()
    key = hashlib.md5(b"12345sim-secret").hexdigest()
    assert f"Action: Login\r\nActionID: ctl-2\r\nUsername: volna\r\nAuthType: MD5\r\nKey: {key}\r\n" \
           "Events: call,user,system,agent\r\n\r\n" in wire
    originate = wire[wire.index("Action: Originate"):].split("\r\n\r\n")[0].split("\r\n")
    assert originate == [
        "Action: Originate", f"ActionID: {aid}", "Channel: PJSIP/89160000007@trunk-a",
        "Context: volna-soft_reminder", "Exten: s", "Priority: 1", "Timeout: 2000", "Async: true",
        f"ChannelId: {cid}", f"OtherChannelId: {other}", 'CallerID: "Volna" <84950000000>',
        "Variable: VOLNA_TASK=t7", "Variable: VOLNA_ATTEMPT=1", f"Variable: VOLNA_CALL={cid}",
        "Variable: VOLNA_CONV_OK=0", "Variable: VOLNA_OP_RESERVE=1", "Variable: VOLNA_REC=volna/w1/t7-1.wav",
        "Variable: VOLNA_AMOUNT_SAY=digits/1f&digits/thousand&digits/500&digits/20&digits/1&volna/rubl"
        "&digits/1f&volna/kopeyka",
    ]
    assert "Secret" not in wire


async def test_login_refused_keeps_the_trunk_unhealthy() -> None:
    async with running(server={"secret": "wrong"}, connect_timeout_s=0.3, agents=None) as (sim, conn, _):
        assert not conn.healthy("trunk-a")
        assert isinstance(await conn.send(request(1)), Retry)
        sim.knobs.secret = "wrong"  # the operator fixes the other side: the next attempt logs in
        await wait_for(lambda: conn.healthy("trunk-a"), 5.0)
        assert sim.stats.login_failures >= 1


async def test_plain_login_and_secret_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "ami-secret"
    secret.write_text("sim-secret\n")
    async with running(server={"auth": "plain", "secret": None, "secret_file": str(secret)}) as (_, conn, sink):
        assert conn.healthy("trunk-a")
        assert isinstance(await conn.send(request(1)), Accepted)
        await wait_for(lambda: len(sink.late) == 1)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="dial"):
        AmiConnector.from_config(config(1, trunk={"dial": "PJSIP/trunk-a"}))
    with pytest.raises(ConfigError, match="secret"):
        AmiConnector.from_config(config(1, server={"secret": None}))
    for alias, fmt in (("+7…", "e164"), ("7…", "e164_digits"), ("8…", "national_8"), ("8", "national_8")):
        trunk = AmiConnector.from_config(config(1, trunk={"number_format": alias}))._trunks["trunk-a"]
        assert trunk.settings.number_format == fmt
    assert [format_number("+79161234567", f) for f in ("e164", "e164_digits", "national_8")] == [
        "+79161234567", "79161234567", "89161234567"]
    assert format_number("+375291234567", "national_8") == "810375291234567"
    conn = AmiConnector.from_config(config(1), resend_unconfirmed=True)
    assert conn.resend_unconfirmed is True
    assert [(t.name, t.rate_per_s, t.max_concurrent) for t in conn.targets()] == [("trunk-a", 20.0, 50)]


async def test_max_duration_hangs_up_with_the_hangup_action() -> None:
    async with running(fast_knobs(talk_min_s=30, talk_max_s=30)) as (sim, conn, sink):
        result = await conn.send(request(1))
        assert isinstance(result, Accepted)
        call = conn._servers["ast1"].tracker.calls[result.correlation_id]
        await wait_for(lambda: call.answered)
        call.deadline = asyncio.get_running_loop().time()  # as if max_duration_s had passed
        await wait_for(lambda: len(sink.late) == 1, 3.0)
        assert sink.late[0].outcome is Outcome.ANSWERED and sim.stats.hangup_actions == 1
        assert connector_events(conn, "ami")["hangups_sent"] == 1


async def test_inbound_call_from_a_debtor() -> None:
    async with running(inbound_contexts=["from-debtors"], inbound_dids=["84950000000"]) as (sim, conn, sink):
        assert conn.healthy("trunk-a")
        await sim.inbound_call("89161234567")
        await sim.inbound_call("89161234568", did="84959999999")  # another DID: not ours
        await sim.inbound_call("<unknown>")
        await wait_for(lambda: len(sink.inbound) == 2)
        await asyncio.sleep(0.1)
        start, end = sink.inbound  # the start at once (robocalls cancelled), the end with the length
        assert (start.kind, end.kind) == ("call_start", "call_end")
        assert start.phone == end.phone == "+79161234567" and end.data["did"] == "84950000000"
        assert start.source_id == end.source_id == end.data["call_id"]
        assert end.data["call_id"].startswith("ast1:") and sink.late == []
        assert end.data["duration_s"] >= 0 and end.data["answered"] is True


async def test_two_servers_round_robin_and_failover() -> None:
    async with AmiSimulator(fast_knobs()) as sim1, AmiSimulator(fast_knobs()) as sim2:
        cfg = config(sim1.port)
        second = {**cfg["servers"][0], "name": "ast2", "port": sim2.port,
                  "trunks": [{**cfg["servers"][0]["trunks"][0], "name": "trunk-b"}]}
        cfg["servers"].append(second)
        conn = AmiConnector.from_config(cfg)
        sink = Sink()
        conn.bind_events(sink)
        async with conn:
            assert [t.name for t in conn.targets()] == ["trunk-a", "trunk-b"]
            routed = [conn.route(request(i).task) for i in range(4)]
            assert sorted(routed) == ["trunk-a", "trunk-a", "trunk-b", "trunk-b"]
            for i, target in enumerate(routed):
                assert isinstance(await conn.send(request(i, target=target)), Accepted)
            await wait_for(lambda: len(sink.late) == 4)
            assert sim1.stats.originates == 2 and sim2.stats.originates == 2
            sim2.knobs.secret = "rotated"
            sim2.drop_connections()
            await wait_for(lambda: not conn.healthy("trunk-b"))
            assert {conn.route(request(i).task) for i in range(4)} == {"trunk-a"}
            assert isinstance(await conn.send(request(9, target="trunk-b")), Retry)
