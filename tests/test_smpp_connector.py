"""The SMPP connector against the SMSC simulator over real TCP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connectors.smpp import SmppConnector
from connectors.smpp.bind import BindState
from engine.domain.outcomes import Outcome
from engine.errors import ConnectorError
from engine.metrics.registry import Metrics
from engine.port import Accepted, Final, Retry
from simulators.smsc import Knobs, SmscSimulator
from tests.harness import connector_events
from tests.test_smpp_support import TARGET, Events, account, phone, request, running, until

# ---- (1) text: alphabets, parts, reassembly ----------------------------------------------------


async def test_cyrillic_200_chars_is_three_ucs2_parts_reassembled() -> None:
    text = ("Уважаемый абонент! Задолженность за отопление и горячую воду составляет 15 300 руб. "
            "Оплатите до 25 числа, чтобы избежать пеней и ограничения подачи ресурса. Подробнее: 8-800.")
    text = (text * 2)[:200]
    assert len(text) == 200
    async with running() as (sim, conn, _):
        result = await conn.send(request(1, text))
        assert isinstance(result, Accepted)
        assert result.data == {"parts": 3} and len(result.part_ids) == 2
        assert len({result.correlation_id, *result.part_ids}) == 3
        assert sim.stats.per_text == {text: 1}
        assert sim.stats.parts_per_message == {3: 1}
        assert sim.stats.per_destination == {phone(1).lstrip("+"): 1}
        assert sim.stats.broken_parts == 0 and sim.stats.udh_ref_bits == {8: 3}


async def test_each_part_is_announced_as_the_smsc_takes_it() -> None:
    """``SendRequest.announce`` hears each part's id with the message's shape before ``send``
    returns (the core registers it at once: a receipt for part 1 never waits for part 3)."""
    from dataclasses import replace

    heard: list[tuple[str, int, str, dict[str, Any], int]] = []

    async def announce(cid: str, parts: int, policy: str, data: dict[str, Any]) -> None:
        heard.append((cid, parts, policy, data, sum(sim.stats.per_text.values())))

    async with running() as (sim, conn, _):
        result = await conn.send(replace(request(1, "Ж" * 150), announce=announce))
        assert isinstance(result, Accepted) and len(result.part_ids) == 2
        assert [h[0] for h in heard] == [result.correlation_id, *result.part_ids]
        assert {(h[1], h[2], str(h[3])) for h in heard} == {(3, "all", "{'parts': 3}")}
        assert heard[0][4] == 0  # part 1 was announced before the message was whole at the SMSC
        heard.clear()
        assert isinstance(await conn.send(replace(request(2, "short"), announce=announce)), Accepted)
        assert heard == []  # one part: its id comes with the Accepted


async def test_later_parts_go_ahead_of_new_messages_for_the_window() -> None:
    """One bind, window 1, a slow SMSC, a queue of new messages waiting: a long message whose
    first part is in is not left half sent — its later parts take the window first."""
    knobs = Knobs(submit_latency_min_s=0.02, submit_latency_max_s=0.02)
    async with running(knobs, binds=1, window=1, window_wait_s=0.5) as (sim, conn, _):
        long_send = asyncio.create_task(conn.send(request(1, "Ж" * 300)))  # 5 parts
        await asyncio.sleep(0.005)
        others = await asyncio.gather(*(conn.send(request(10 + i, f"n {i}")) for i in range(40)))
        result = await long_send
        assert isinstance(result, Accepted) and len(result.part_ids) == 4
        # Behind 40 new messages part 2 would wait 40 × 20 ms > window_wait_s: PartlySent, `unknown`.
        assert sum(isinstance(r, Accepted) for r in others) + sum(isinstance(r, Retry) for r in others) == 40
        assert sim.stats.parts_per_message.get(5) == 1


async def test_gsm_160_is_one_part_161_is_two() -> None:
    async with running() as (sim, conn, _):
        one = await conn.send(request(1, "a" * 159 + "1"))
        two = await conn.send(request(2, "b" * 160 + "2"))
        assert isinstance(one, Accepted) and one.data == {"parts": 1} and one.part_ids == ()
        assert isinstance(two, Accepted) and two.data == {"parts": 2} and len(two.part_ids) == 1
        assert sim.stats.parts_per_message == {1: 1, 2: 1}
        assert sim.stats.per_text["a" * 159 + "1"] == 1 and sim.stats.per_text["b" * 160 + "2"] == 1


@pytest.mark.parametrize("ref_bits", [8, 16])
async def test_escapes_and_emoji_never_cut(ref_bits: int) -> None:
    texts = [
        "a" * 152 + "€" + "b" * 20,  # GSM: the escape lands on the part boundary
        "x" * 151 + "[" + "]" * 100,  # a run of escapes across the boundary
        "Ж" * 66 + "😀" + "Ж" * 70,  # UCS-2: a surrogate pair on the boundary
        "😀" * 180,  # nothing but pairs: 33 a part, 6 parts
        "€" * 300,  # nothing but escapes
    ]
    async with running(concat_ref_bits=ref_bits) as (sim, conn, _):
        for i, text in enumerate(texts):
            result = await conn.send(request(i, text))
            assert isinstance(result, Accepted), (i, result)
        assert sim.stats.broken_parts == 0
        assert dict(sim.stats.per_text) == {t: 1 for t in texts}
        assert set(sim.stats.udh_ref_bits) == {ref_bits}


async def test_too_many_parts_is_rejected_not_truncated() -> None:
    async with running(max_parts=2) as (sim, conn, _):
        result = await conn.send(request(1, "Ж" * 135))
        assert isinstance(result, Final) and result.outcome is Outcome.REJECTED
        assert result.provider_text == "text needs 3 parts, limit 2" and result.data == {"parts": 3}
        assert sim.stats.submits == 0
        empty = await conn.send(request(2, ""))
        assert isinstance(empty, Final) and empty.outcome is Outcome.REJECTED


async def test_concurrent_long_messages_to_one_number_use_distinct_refs() -> None:
    async with running() as (sim, conn, _):
        texts = [f"{i:03d}" + "Ж" * 100 for i in range(8)]
        results = await asyncio.gather(*(conn.send(request(i, t, number=phone(1))) for i, t in enumerate(texts)))
        assert all(isinstance(r, Accepted) for r in results)
        # the simulator joins parts by (source, destination, ref): distinct refs → every text whole
        assert dict(sim.stats.per_text) == {t: 1 for t in texts}
        assert sim.reassembler.incomplete == 0 and sim.reassembler.duplicate_parts == 0


# ---- submit_sm_resp statuses ---------------------------------------------------------------


async def test_invalid_destination_is_final_invalid_number() -> None:
    async with running(Knobs(invalid_prefix="7999000")) as (_sim, conn, _):
        result = await conn.send(request(1, "hello", number="+79990001234"))
        assert isinstance(result, Final) and result.outcome is Outcome.INVALID_NUMBER
        assert result.provider_code == "0x0000000B"
        assert isinstance(await conn.send(request(2, "hello")), Accepted)


# ---- (2) throttling --------------------------------------------------------------------------


async def test_throttled_sim_every_message_accepted_once_and_backed_off() -> None:
    n = 120
    knobs = Knobs(tps_limit=100.0)
    async with running(knobs, binds=2, window_wait_s=20.0,
                       throttle={"retry_min_s": 0.02, "retry_max_s": 0.5}) as (sim, conn, _):
        texts = [f"throttle test {i}" for i in range(n)]
        results = await asyncio.gather(*(conn.send(request(i, t)) for i, t in enumerate(texts)))
        assert all(isinstance(r, Accepted) for r in results)
        assert len({r.correlation_id for r in results if isinstance(r, Accepted)}) == n
        assert dict(sim.stats.per_text) == {t: 1 for t in texts}  # accepted exactly once each
        assert sim.stats.throttled > 0 and connector_events(conn, "smpp")["throttled"] == sim.stats.throttled
        assert conn.accounts[TARGET].rate.cuts > 0  # the account slowed down …
        # … so the SMSC saw a bounded number of refusals, not a retry storm
        assert sim.stats.throttled < n // 2


async def test_queue_full_is_retried_like_throttling() -> None:
    knobs = Knobs(window=2, submit_latency_min_s=0.02, submit_latency_max_s=0.02)
    async with running(knobs, window=6, throttle={"retry_min_s": 0.01}) as (sim, conn, _):
        texts = [f"window {i}" for i in range(20)]
        results = await asyncio.gather(*(conn.send(request(i, t)) for i, t in enumerate(texts)))
        assert all(isinstance(r, Accepted) for r in results)
        assert sim.stats.queue_full > 0 and dict(sim.stats.per_text) == {t: 1 for t in texts}


async def test_throttled_past_budget_is_retry_for_the_core() -> None:
    knobs = Knobs(tps_limit=0.001, tps_burst=1.0)
    async with running(knobs, throttle={"retry_min_s": 0.01, "retry_max_s": 0.02, "budget_s": 0.2}) as (
            sim, conn, _):
        assert isinstance(await conn.send(request(0, "takes the only token")), Accepted)
        result = await conn.send(request(1, "throttled"))
        assert isinstance(result, Retry) and "ESME_RTHROTTLED" in result.reason
        assert sim.stats.per_text["throttled"] == 0


# ---- (3) receipts on another bind --------------------------------------------------------------


async def test_receipt_on_another_transceiver_bind() -> None:
    knobs = Knobs(receipt_routing="other", receipt_delay_min_s=0.01, receipt_delay_max_s=0.03)
    async with running(knobs, binds=2) as (sim, conn, events):
        results = await asyncio.gather(*(conn.send(request(i, f"receipt {i}")) for i in range(10)))
        ids = {r.correlation_id for r in results if isinstance(r, Accepted)}
        assert len(ids) == 10
        await events.wait_for(10)
        assert events.ids() == ids
        assert all(e.outcome is Outcome.DELIVERED and e.final and e.provider_code == "DELIVRD"
                   for e in events.items)
        assert sim.stats.receipts_on_other_session == 10
        await until(lambda: sim.stats.receipts_acked == 10)


async def test_transmitter_and_receiver_binds() -> None:
    knobs = Knobs(undelivered_share=0.5, seed=7)
    async with running(knobs, bind_mode="transmitter_receiver", binds=1, receiver_binds=1) as (sim, conn, events):
        assert dict(sim.stats.binds) == {"transmitter": 1, "receiver": 1}
        results = await asyncio.gather(*(conn.send(request(i, f"tx/rx {i}")) for i in range(12)))
        ids = {r.correlation_id for r in results if isinstance(r, Accepted)}
        await events.wait_for(12)
        assert events.ids() == ids
        outcomes = {e.outcome for e in events.items}
        assert outcomes == {Outcome.DELIVERED, Outcome.UNDELIVERED}
        undelivered = next(e for e in events.items if e.outcome is Outcome.UNDELIVERED)
        assert undelivered.provider_code == "UNDELIV" and undelivered.provider_text == "001"


@pytest.mark.parametrize("tlvs", [False, True])
async def test_hex_response_ids_decimal_receipt_ids(tlvs: bool) -> None:
    knobs = Knobs(id_format="hex", receipt_id_format="dec", receipt_tlvs=tlvs, first_message_id=0x1A2B)
    async with running(knobs, submit_id_base="hex", receipt_id_base="dec") as (_, conn, events):
        result = await conn.send(request(1, "ids"))
        assert isinstance(result, Accepted) and result.correlation_id == "6699"  # "1A2B" on the wire
        (event,) = await events.wait_for(1)
        assert event.correlation_id == "6699"


async def test_mixed_bases_need_configuration() -> None:
    """With the default "text" rule, a hex response and a decimal receipt do not meet (documented)."""
    knobs = Knobs(id_format="hex", receipt_id_format="dec", receipt_tlvs=False, first_message_id=0x1A2B)
    async with running(knobs) as (_, conn, events):
        result = await conn.send(request(1, "ids"))
        assert isinstance(result, Accepted) and result.correlation_id == "1A2B"
        (event,) = await events.wait_for(1)
        assert event.correlation_id == "6699"


async def test_data_sm_receipts() -> None:
    async with running(Knobs(receipt_command="data_sm")) as (sim, conn, events):
        result = await conn.send(request(1, "data_sm receipt"))
        assert isinstance(result, Accepted)
        (event,) = await events.wait_for(1)
        assert event.correlation_id == result.correlation_id and event.outcome is Outcome.DELIVERED
        await until(lambda: sim.stats.receipts_acked == 1)


async def test_receipt_sink_failure_is_answered_with_error_and_redelivered() -> None:
    async with running(Knobs(receipt_retry_s=0.05)) as (sim, conn, events):
        events.fail_next = 1
        result = await conn.send(request(1, "sink"))
        assert isinstance(result, Accepted)
        (event,) = await events.wait_for(1)
        assert event.correlation_id == result.correlation_id
        assert sim.stats.receipts_nacked == 1 and connector_events(conn, "smpp")["receipt_sink_errors"] == 1


# ---- (4) connection dropped with submits outstanding ---------------------------------------------


async def test_drop_with_outstanding_submits_gives_one_result_each_and_no_duplicate() -> None:
    knobs = Knobs(submit_latency_min_s=0.05, submit_latency_max_s=0.05, drop_after_pdus=9, drop_times=1)
    async with running(knobs, window=10) as (sim, conn, _):
        texts = [f"drop {i}" for i in range(30)]
        results: list[Any] = await asyncio.gather(*(conn.send(request(i, t)) for i, t in enumerate(texts)),
                                                  return_exceptions=True)
        assert len(results) == 30
        unknown = [t for t, r in zip(texts, results, strict=True) if isinstance(r, ConnectorError)]
        accepted = [t for t, r in zip(texts, results, strict=True) if isinstance(r, Accepted)]
        assert len(unknown) + len(accepted) == 30, results  # one result each: accepted or unknown
        assert unknown  # the bind dropped with submits outstanding
        assert sim.stats.dropped_sessions == 1
        assert sim.stats.accepted_twice() == []  # never re-sent by the connector
        assert all(sim.stats.per_text[t] == 1 for t in accepted)
        # the unknown ones did reach the SMSC (accepted, answer lost): exactly the at-most-once case
        assert all(sim.stats.per_text[t] <= 1 for t in unknown)
        assert connector_events(conn, "smpp")["unconfirmed"] == len(unknown)
        # re-bound, and sending again
        await conn.wait_bound(5.0)
        assert isinstance(await conn.send(request(99, "after the drop")), Accepted)


async def test_no_answer_times_out_as_unknown_then_rebinds() -> None:
    async with running(response_timeout_s=0.3, connect_timeout_s=0.5) as (sim, conn, _):
        sim.knobs.silent = True
        with pytest.raises(ConnectorError, match="no response"):
            await conn.send(request(1, "into the void"))
        # the enquire_link probe goes unanswered too: the bind is dropped
        await until(lambda: not conn.healthy(TARGET))
        sim.knobs.silent = False
        await conn.wait_bound(5.0)
        assert isinstance(await conn.send(request(2, "back")), Accepted)
        assert sim.stats.accepted_twice() == []


# ---- (5) garbage from the SMSC ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unknown_command", "bad_body", "stray_response", "bad_length"])
async def test_garbage_pdu_does_not_kill_the_connector(kind: str) -> None:
    async with running() as (sim, conn, events):
        assert isinstance(await conn.send(request(1, "before")), Accepted)
        assert sim.inject_garbage(kind) == 1
        if kind == "bad_length":
            await until(lambda: connector_events(conn, "smpp")["framing_errors"] == 1)
            await conn.wait_bound(5.0)
        result = await conn.send(request(2, "after"))
        assert isinstance(result, Accepted)
        await events.wait_for(2)
        stats = connector_events(conn, "smpp")
        if kind == "unknown_command":
            assert stats["generic_nacks_sent"] == 1 and sim.stats.garbage_answered == 1
        elif kind == "bad_body":
            # answered with deliver_sm_resp although unreadable, counted, bind kept
            assert stats["malformed_pdus"] == 1 and sim.stats.garbage_answered == 1 and stats["binds_lost"] == 0
        elif kind == "stray_response":
            assert stats["unexpected_responses"] == 1 and stats["binds_lost"] == 0
        else:
            assert stats["binds_lost"] == 1 and stats["binds"] == 2


async def test_garbage_every_few_pdus_while_sending() -> None:
    async with running(Knobs(garbage_every_pdus=5, garbage_kind="bad_body")) as (sim, conn, _):
        results = await asyncio.gather(*(conn.send(request(i, f"noisy {i}")) for i in range(40)))
        assert all(isinstance(r, Accepted) for r in results)
        # every garbage PDU answered (deliver_sm_resp) and counted; the bind was never dropped
        await until(lambda: sim.stats.garbage_answered == sim.stats.garbage_sent
                    == connector_events(conn, "smpp")["malformed_pdus"])
        assert sim.stats.garbage_sent > 0 and connector_events(conn, "smpp")["binds_lost"] == 0


# ---- binds: credentials, keep-alive, shutdown, window ------------------------------------------


async def test_wrong_password_is_not_healthy_until_the_file_is_fixed(tmp_path: Any) -> None:
    secret = tmp_path / "password"
    secret.write_text("wrong\n")
    async with SmscSimulator() as sim:
        raw = account(sim.port, password=None, password_file=str(secret), window_wait_s=0.2)
        async with SmppConnector.from_config({"accounts": [raw]}) as conn:
            assert not conn.healthy(TARGET)
            assert sim.stats.bind_failures["volna"] >= 1
            result = await conn.send(request(1, "no bind"))
            assert isinstance(result, Retry)
            secret.write_text("secret\n")
            await conn.wait_bound(5.0)
            assert conn.healthy(TARGET)
            assert isinstance(await conn.send(request(2, "bound now")), Accepted)


async def test_enquire_link_when_idle_and_unbind_on_close() -> None:
    async with running(enquire_link_s=0.1, binds=2) as (sim, conn, _):
        await until(lambda: sim.stats.enquire_links >= 2)
        binds = [b for b in conn.accounts[TARGET].binds if b is not None]
    assert sim.stats.unbinds == 2
    assert all(b.state is BindState.CLOSED for b in binds)


async def test_window_is_respected_per_bind() -> None:
    knobs = Knobs(submit_latency_min_s=0.03, submit_latency_max_s=0.03)
    async with running(knobs, binds=2, window=3) as (_sim, conn, _):
        account_ = conn.accounts[TARGET]
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, *(b.outstanding for b in account_.binds if b is not None))
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        results = await asyncio.gather(*(conn.send(request(i, f"w {i}")) for i in range(30)))
        watcher.cancel()
        assert all(isinstance(r, Accepted) for r in results)
        assert peak == 3  # filled, never exceeded
        assert {b.outstanding for b in account_.binds if b is not None} == {0}


async def test_routes_and_targets() -> None:
    async with SmscSimulator() as sim:
        raw = {"accounts": [account(sim.port, name="a1", rate_per_s=20, binds=2, window=5),
                            account(sim.port, name="a2", max_concurrent=7)]}
        async with SmppConnector.from_config(raw) as conn:
            await conn.wait_bound()
            assert [(t.name, t.rate_per_s, t.max_concurrent) for t in conn.targets()] == [
                ("a1", 20.0, None), ("a2", 1000.0, 7)]  # none: the binds' windows bound it; set
            routes = {conn.route(request(i, "x").task) for i in range(20)}
            assert routes == {"a1", "a2"}
            assert conn.route(request(3, "x").task) == conn.route(request(3, "y").task)
            unknown = await conn.send(request(1, "x", target="nope"))
            assert isinstance(unknown, Final) and unknown.outcome is Outcome.ERROR


async def test_window_full_past_window_wait_is_retry() -> None:
    knobs = Knobs(submit_latency_min_s=0.5, submit_latency_max_s=0.5)
    async with running(knobs, window=1, window_wait_s=0.1) as (sim, conn, _):
        first, second = await asyncio.gather(conn.send(request(1, "slot")), conn.send(request(2, "no slot")))
        assert isinstance(first, Accepted)
        assert isinstance(second, Retry) and "window room" in second.reason
        assert sim.stats.per_text == {"slot": 1}  # the second never reached the wire


async def test_cancelled_send_frees_its_slot() -> None:
    knobs = Knobs(submit_latency_min_s=0.2, submit_latency_max_s=0.2)
    async with running(knobs, window=1) as (sim, conn, _):
        waiting_for_resp = asyncio.create_task(conn.send(request(1, "cancelled in flight")))
        waiting_for_slot = asyncio.create_task(conn.send(request(2, "cancelled waiting")))
        third = asyncio.create_task(conn.send(request(3, "goes through")))
        await asyncio.sleep(0.05)
        waiting_for_resp.cancel()
        waiting_for_slot.cancel()
        assert isinstance(await third, Accepted)
        assert sim.stats.per_text == {"cancelled in flight": 1, "goes through": 1}
        assert conn.accounts[TARGET].binds[0] is not None and conn.accounts[TARGET].binds[0].outstanding == 0
        # the late answer to the cancelled one is dropped quietly
        assert connector_events(conn, "smpp")["unexpected_responses"] == 0


async def test_receipts_before_the_sink_is_bound_are_delivered_again() -> None:
    async with SmscSimulator(Knobs(receipt_retry_s=0.05)) as sim:
        conn = SmppConnector.from_config({"accounts": [account(sim.port)]})
        async with conn:
            await conn.wait_bound()
            result = await conn.send(request(1, "early receipt"))
            assert isinstance(result, Accepted)
            await until(lambda: sim.stats.receipts_nacked >= 1)
            events = Events()
            conn.bind_events(events)
            (event,) = await events.wait_for(1)
            assert event.correlation_id == result.correlation_id


async def test_tls(tmp_path: Any) -> None:
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    async with SmscSimulator(ssl_context=server_ctx) as sim:
        raw = account(sim.port, tls={"enabled": True, "ca_file": str(cert), "server_hostname": "localhost"})
        async with SmppConnector.from_config({"accounts": [raw]}) as conn:
            await conn.wait_bound()
            assert isinstance(await conn.send(request(1, "over TLS")), Accepted)
        # without our CA the handshake fails: the bind never comes up
        raw = account(sim.port, tls={"enabled": True, "server_hostname": "localhost"}, connect_timeout_s=1.0)
        conn = SmppConnector.from_config({"accounts": [raw]})
        conn.metrics = Metrics(process=False)
        async with conn:
            assert not conn.healthy(TARGET) and connector_events(conn, "smpp")["bind_failures"] >= 1


async def test_reports_binds_and_throttling_to_metrics() -> None:
    from engine.metrics.registry import Metrics

    metrics = Metrics(process=False)
    async with SmscSimulator(Knobs(tps_limit=0.001, tps_burst=1.0)) as sim:
        conn = SmppConnector.from_config({"accounts": [account(
            sim.port, binds=2, throttle={"retry_min_s": 0.01, "retry_max_s": 0.02, "budget_s": 0.1})]})
        conn.metrics = metrics
        async with conn:
            await conn.wait_bound()
            assert metrics.connections_up.labels("smpp", TARGET)._value.get() == 2
            assert metrics.connections_configured.labels("smpp", TARGET)._value.get() == 2
            await conn.send(request(1, "token"))
            assert isinstance(await conn.send(request(2, "throttled")), Retry)
            assert metrics.throttled_total.labels("smpp", TARGET)._value.get() >= 1
        assert metrics.connections_up.labels("smpp", TARGET)._value.get() == 0
