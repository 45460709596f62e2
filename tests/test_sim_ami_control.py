"""The AMI simulator's reach ledger and HTTP control endpoint: restart, queues, inbound calls, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulators.ami import AmiSimulator, Knobs
from tests.test_sim_support import AmiClient, Msg, hangups

ROOT = Path(__file__).resolve().parent.parent


def _knobs(**overrides: Any) -> Knobs:
    base: dict[str, Any] = dict(shuffle=False, ring_min_s=0.01, ring_max_s=0.02, talk_min_s=0.05, talk_max_s=0.06,
                                no_answer_s=0.05, key_mix="", steps="greeting,main")
    return Knobs(**{**base, **overrides})


def _originate(c: AmiClient, number: str, uid: str, conv_ok: bool = False) -> None:
    c.send("Originate", ("Variable", f"VOLNA_CALL={uid}"), ("Variable", f"VOLNA_CONV_OK={int(conv_ok)}"),
           ActionID=f"a-{uid}", Channel=f"Local/+{number}@debtors", Context="volna-soft_reminder", Exten="s",
           Priority="1", Async="true", ChannelId=uid, OtherChannelId=f"{uid}-2", CallerID='"Volna" <84950000000>')


def _of(c: AmiClient, uid: str, name: str) -> list[Msg]:
    return [m for m in c.events(name) if m.get("Uniqueid", "").startswith(uid) or m.get("DestUniqueid") == uid]


async def _http(method: str, url: str, **kwargs: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
            http.request(method, url, **kwargs) as resp:
        return resp.status, await resp.text()


async def test_reach_ledger_records_who_was_reached(tmp_path: Path) -> None:
    outcomes = {"79000000001": "answered", "79000000002": "machine", "79000000003": "busy",
                "79000000004": "no_answer", "79000000005": "unallocated", "79000000006": "congestion",
                "79000000007": "answered"}
    path = tmp_path / "ami-reach.jsonl"
    knobs = _knobs(by_number=outcomes, keys_by_number={"79000000007": "1"}, reach_log=str(path))
    before_ms = int(time.time() * 1000)
    async with AmiSimulator(knobs, http_port=0) as sim:
        c = await AmiClient.login(sim.port)
        for number in outcomes:
            _originate(c, number, f"u{number[-1]}", conv_ok=number == "79000000007")
        await c.until(hangups(2 * len(outcomes)))
        events = sim.reach.events()
        status, body = await _http("GET", f"{sim.http_url}/reach")
        assert status == 200 and json.loads(body) == events
        status, body = await _http("GET", f"{sim.http_url}/reach?format=jsonl&number=%2B79000000007")
        assert [json.loads(line) for line in body.splitlines()] == sim.reach.events(number="79000000007")
        status, body = await _http("GET", f"{sim.http_url}/reach?kind=machine&since_ms={before_ms}")
        assert [e["number"] for e in json.loads(body)] == ["79000000002"]
        await c.close()
    assert sorted((e["number"], e["kind"], e["ref"]) for e in events) == [
        ("79000000001", "answered", "u1"), ("79000000002", "machine", "u2"),
        ("79000000007", "answered", "u7"), ("79000000007", "operator", "u7")]
    assert all(e["channel"] == "ivr" and before_ms <= e["at_ms"] <= time.time() * 1000 for e in events)
    assert [json.loads(line) for line in path.read_text().splitlines()] == events


async def test_restart_behaves_like_asterisk_shutting_down() -> None:
    knobs = _knobs(by_number={"79000000001": "no_answer", "79000000002": "answered"}, no_answer_s=30,
                   talk_min_s=30, talk_max_s=30)
    async with AmiSimulator(knobs, http_port=0) as sim:
        everything = await AmiClient.login(sim.port, events="on")
        engine = await AmiClient.login(sim.port, events="call,user")
        _originate(engine, "79000000001", "ring")
        _originate(engine, "79000000002", "talk")
        await engine.until(lambda m: any(x.get("Event") == "OriginateResponse" for x in m))  # talk answered
        await asyncio.sleep(0.05)
        status, body = await _http("POST", f"{sim.http_url}/restart?down_s=1&shutdown_s=0.25")
        assert status == 202 and json.loads(body)["state"] == "shutting_down"
        status, body = await _http("POST", f"{sim.http_url}/restart?down_s=1")
        assert (status, body) == (409, "restart: a restart is already running\n")
        await engine.until(hangups(4))
        # The ringing call: soft hang-up for the shutdown, a failed originate (Reason 0), causes 0.
        assert [m["Cause"] for m in _of(engine, "ring", "SoftHangupRequest")] == ["4", "4"]
        ring_or = next(m for m in engine.events("OriginateResponse") if m["Uniqueid"] == "ring")
        assert (ring_or["Response"], ring_or["Reason"]) == ("Failure", "0")
        assert [m["Cause"] for m in _of(engine, "ring", "Hangup")] == ["0", "0"]
        assert [m["DialStatus"] for m in _of(engine, "ring", "DialEnd")] == ["NOANSWER"]
        # The answered call: its IVR ends (VolnaEnd), hung up normally after the shutdown's request.
        assert _of(engine, "talk", "SoftHangupRequest")[0]["Cause"] == "4"
        assert [m["Cause"] for m in _of(engine, "talk", "Hangup")] == ["16", "16"]
        assert sim.stats.cut_by_shutdown == 2 and not sim.calls
        # While shutting down AMI stays open and refuses every action.
        engine.send("Ping", ActionID="p1")
        await engine.until(lambda m: any(x.get("ActionID") == "p1" for x in m))
        ping = next(m for m in engine.inbox if m.get("ActionID") == "p1")
        assert (ping["Response"], ping["Message"]) == ("Error", "Asterisk is shutting down")
        # Then Shutdown (system class only), and the connections close.
        await everything.until(lambda m: bool(everything.closed), timeout_s=3)
        await engine.until(lambda m: bool(engine.closed), timeout_s=3)
        shutdown = everything.events("Shutdown")
        assert [(m["Shutdown"], m["Restart"], m["Privilege"]) for m in shutdown] == [("Cleanly", "True", "system,all")]
        assert not engine.events("Shutdown") and not engine.events("FullyBooted")
        assert sim.state.value == "down"
        with pytest.raises(OSError):
            await AmiClient.connect(sim.port)
        # Back after down_s: a login with the system class gets FullyBooted again.
        deadline = time.monotonic() + 3
        while sim.state.value != "up" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        again = await AmiClient.login(sim.port, events="system,call")
        await again.until(lambda m: any(x.get("Event") == "FullyBooted" for x in m))
        status, body = await _http("GET", f"{sim.http_url}/stats")
        stats = json.loads(body)
        assert stats["state"] == "up" and stats["restarts"] == 1 and stats["refused_shutting_down"] == 1
        for c in (everything, engine, again):
            await c.close()


async def test_shutdown_event_at_the_start_with_the_knob() -> None:
    async with AmiSimulator(_knobs(shutdown_event_at="start")) as sim:
        c = await AmiClient.login(sim.port, events="system")
        sim.start_restart(down_s=0.0, shutdown_s=1.0)
        await c.until(lambda m: any(x.get("Event") == "Shutdown" for x in m), timeout_s=0.8)
        assert sim.state.value == "shutting_down" and not c.closed
        await c.close()


async def test_queue_summary_and_an_operator_taking_the_call() -> None:
    knobs = _knobs(keys_by_number={"79000000001": "1", "79000000002": "1"}, talk_min_s=0.4, talk_max_s=0.4)
    async with AmiSimulator(knobs, http_port=0) as sim:
        status, body = await _http("POST", f"{sim.http_url}/queues/debt-operators",
                                   json={"logged_in": 2, "available": 1})
        assert status == 200 and json.loads(body)["available"] == 1
        c = await AmiClient.login(sim.port, events="call,user,agent")
        c.send("QueueSummary", ActionID="qs1")
        msgs = await c.until(lambda m: any(x.get("Event") == "QueueSummaryComplete" for x in m))
        head = next(m for m in msgs if m.get("ActionID") == "qs1" and "Response" in m)
        assert (head["Response"], head["EventList"], head["Message"]) == \
            ("Success", "start", "Queue summary will follow")
        summary = next(m for m in msgs if m.get("Event") == "QueueSummary")
        assert {k: summary[k] for k in ("Queue", "LoggedIn", "Available", "Callers", "HoldTime", "TalkTime",
                                        "LongestHoldTime", "ActionID")} == {
            "Queue": "debt-operators", "LoggedIn": "2", "Available": "1", "Callers": "0", "HoldTime": "0",
            "TalkTime": "0", "LongestHoldTime": "0", "ActionID": "qs1"}
        complete = next(m for m in msgs if m.get("Event") == "QueueSummaryComplete")
        assert (complete["EventList"], complete["ListItems"], complete["ActionID"]) == ("Complete", "1", "qs1")

        # Both debtors press 1 while the one agent available takes the first of them.
        _originate(c, "79000000001", "op1", conv_ok=True)
        _originate(c, "79000000002", "op2", conv_ok=True)
        await c.until(lambda m: any(x.get("Event") == "QueueCallerJoin" for x in m), timeout_s=3)
        assert sim.queues.by_name["debt-operators"].available == 0  # the agent is on the call
        await c.until(lambda m: any(x.get("UserEvent") == "VolnaQueue" for x in m), timeout_s=3)
        [joined] = [m["Uniqueid"] for m in c.events("QueueCallerJoin")]
        [refused] = [m for m in c.events("UserEvent") if m["UserEvent"] == "VolnaQueue"]
        assert refused["Status"] == "JOINEMPTY" and {joined, refused["Uniqueid"]} == {"op1", "op2"}
        await c.until(hangups(4))
        assert sim.queues.by_name["debt-operators"].available == 1  # released at hang-up
        assert sorted((e["ref"], e["kind"]) for e in sim.reach.events()) == sorted([
            ("op1", "answered"), ("op2", "answered"), (joined, "operator")])
        c.send("QueueSummary", ActionID="qs2", Queue="nobody")
        msgs = await c.until(lambda m: any(x.get("Event") == "QueueSummaryComplete" and x.get("ActionID") == "qs2"
                                           for x in m))
        assert next(m for m in msgs if m.get("ActionID") == "qs2" and "Event" in m)["ListItems"] == "0"
        await c.close()


async def test_inbound_call_on_command() -> None:
    async with AmiSimulator(_knobs(timestamp_events=True), http_port=0) as sim:
        c = await AmiClient.login(sim.port)
        status, body = await _http("POST", f"{sim.http_url}/inbound",
                                   json={"number": "+79161234567", "did": "84951112233", "talk_s": 0.3})
        assert status == 201
        made = json.loads(body)
        await c.until(lambda m: any(x.get("Event") == "Hangup" for x in m))
        mine = [m for m in c.events() if m.get("Uniqueid") == made["uniqueid"]]
        assert [m["Event"] for m in mine] == ["Newchannel", "Newstate", "HangupRequest", "SoftHangupRequest",
                                              "UserEvent", "Hangup"]
        new = mine[0]
        assert (new["Channel"], new["CallerIDNum"], new["Context"], new["Exten"], new["ChannelState"]) == \
            (made["channel"], "+79161234567", "from-debtors", "84951112233", "4")
        assert mine[1]["ChannelState"] == "6" and mine[-1]["Cause"] == "16"
        end = mine[4]
        assert (end["UserEvent"], end["Did"], end["Exten"]) == ("VolnaInboundEnd", "84951112233", "h")
        talk_s = float(mine[-1]["Timestamp"]) - float(mine[1]["Timestamp"])
        assert 0.25 < talk_s < 1.0
        # The awaitable way and the knob still work.
        await sim.inbound_call("89161234567", talk_s=0.01)
        sim.knobs.inbound_per_s = 50
        await c.until(lambda m: sum(x.get("Event") == "Hangup" for x in m) >= 3)
        assert sim.stats.inbound_calls >= 3 and not sim.reach.events()  # a debtor calling in is no reach
        await c.close()


async def test_every_control_endpoint_answers_bad_input_in_one_line() -> None:
    async with AmiSimulator(_knobs(), http_port=0) as sim:
        url = sim.http_url
        cases = [
            ("POST", "/restart?down_s=soon", {}, "down_s: expected a number from 0 to 300"),
            ("POST", "/restart?later=1", {}, "later: unknown query parameter"),
            ("POST", "/queues/debt-operators", {"json": {"logged_in": 1, "available": 3}},
             "available: more than logged_in"),
            ("POST", "/queues/debt-operators", {"json": {"available": -1}},
             "available: expected an integer from 0 to 100000"),
            ("POST", "/queues/debt-operators", {"data": b"{not json"}, "body: not valid JSON"),
            ("POST", "/inbound", {"json": {"did": "84950000000"}}, "number: required"),
            ("POST", "/inbound", {"json": {"number": "call me"}}, "number: expected 3 to 20 digits"),
            ("POST", "/inbound", {"json": {"number": "79161234567", "talk_s": "long"}},
             "talk_s: expected a number from 0 to 3600"),
            ("GET", "/reach?since_ms=yesterday", {}, "since_ms: expected an integer (epoch milliseconds)"),
        ]
        for method, path, kwargs, line in cases:
            status, body = await _http(method, url + path, **kwargs)
            assert (status, body) == (400, line + "\n"), path
        status, _ = await _http("GET", f"{url}/stats")
        assert status == 200 and sim.state.value == "up" and not sim.queues.by_name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_reach_log_survives_kill_9(tmp_path: Path) -> None:
    """``--reach-log``: every event is on disk as a whole line the moment it happens."""
    port, path = _free_port(), tmp_path / "reach.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "simulators.ami", "--port", str(port), "--log-level", "WARNING",
                             "--reach-log", str(path), "--ring-max-s", "0.02", "--talk-min-s", "30",
                             "--talk-max-s", "30", "--key-mix", ""],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        c = await AmiClient.login(port)
        _originate(c, "79000000001", "k1")
        await c.until(lambda m: any(x.get("Event") == "OriginateResponse" for x in m))
        deadline = time.monotonic() + 3
        while not path.exists() or not path.read_text().endswith("\n"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # mid-call: the ledger must already hold the answer
        proc.wait(10)
        await c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    [line] = path.read_text().splitlines()
    event = json.loads(line)
    assert (event["number"], event["channel"], event["kind"], event["ref"]) == ("79000000001", "ivr", "answered", "k1")
