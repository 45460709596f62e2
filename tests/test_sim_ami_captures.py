"""The AMI simulator replays every ``volna-*`` capture of a real Asterisk 22.10.1 and matches it.

Each scenario is originated as ``volna run`` did on the real Asterisk (``Local/+7900000000N@debtors``
into ``volna-soft_reminder``, the captured ``ChannelId`` / ``ActionID``, ``CallerID: "Volna"
<84950000000>``), with shuffling off; then the sequence of events, each tagged with its leg
(``;1`` the originated half, ``;2`` the debtor's), must equal the capture's, and every field the
capture shows must have the captured value — except the few that are the moment's, not the
scenario's: a Local channel's sequence number, ``Priority``, ``Language``, ``VolnaEnd``'s
``Seconds`` and the AMD ``Cause`` figures (compared by shape).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from simulators.ami import AmiSimulator, Knobs
from tests.test_sim_support import (
    TRANSCRIPTS,
    AmiClient,
    Msg,
    hangups,
    leg_of,
    normalized,
    parse_raw,
    parse_summary,
    per_leg,
)

CALLER_ID = '"Volna" <84950000000>'
#: Fields whose captured value is the moment's, not the scenario's.
_SKIP = {"Privilege", "Priority", "LocalOnePriority", "LocalTwoPriority", "DestPriority", "Language",
         "LocalOneLanguage", "LocalTwoLanguage", "DestLanguage", "Seconds"}
_AMD_CAUSE = re.compile(r"^[A-Z]+(-\d+)+$")


def _knobs(**overrides: Any) -> Knobs:
    base: dict[str, Any] = dict(shuffle=False, amd=True, steps="greeting,amount,main", ring_min_s=0.01,
                                ring_max_s=0.02, talk_min_s=0.05, talk_max_s=0.06, no_answer_s=0.05, key_mix="")
    return Knobs(**{**base, **overrides})


def _originate(c: AmiClient, number: str, uid: str, action_id: str, task: str) -> None:
    c.send("Originate", ("Variable", f"VOLNA_TASK={task}"), ("Variable", f"VOLNA_CALL={uid}"),
           ("Variable", "VOLNA_CONV_OK=0"),
           ActionID=action_id, Channel=f"Local/+{number}@debtors", Context="volna-soft_reminder", Exten="s",
           Priority="1", Timeout="30000", Async="true", ChannelId=uid, OtherChannelId=f"{uid}-2",
           CallerID=CALLER_ID)


def _compare(name: str, got: Msg, expected: dict[str, str]) -> None:
    for key, value in expected.items():
        if key in _SKIP:
            continue
        if key == "Cause" and got.get("UserEvent") == "VolnaAmd":
            assert _AMD_CAUSE.match(got[key]), (name, key, got[key])
            continue
        assert normalized(got.get(key, "<missing>")) == normalized(value), (name, key, got.get(key), value)


async def test_soft_reminder_answered_key_2_as_captured() -> None:
    """``volna-soft_reminder-key2.txt``: raw wire, every field of every message."""
    real = parse_raw((TRANSCRIPTS / "volna-soft_reminder-key2.txt").read_text())
    uid = real[1]["Uniqueid"]
    number = real[1]["Exten"].lstrip("+")
    knobs = _knobs(keys_by_number={number: "2"})
    async with AmiSimulator(knobs) as sim:
        c = await AmiClient.login(sim.port)
        _originate(c, number, uid, real[0]["ActionID"], "cmp-1")
        await c.until(hangups(2))
        await c.close()
    got = [m for m in c.inbox if m.get("ActionID") != "login"]
    assert [(m.get("Event", "Response"), leg_of(m)) for m in got] == \
        [(m.get("Event", "Response"), leg_of(m)) for m in real]
    for g, r in zip(got, real, strict=True):
        assert list(g) == list(r) or g.get("Event") is None, f"header order of {r.get('Event')}"
        _compare(r.get("Event", "Response"), g, r)


_SUMMARY = parse_summary((TRANSCRIPTS / "volna-busy-invalid-noanswer-machine.txt").read_text())
_CASES = {"79000000004": "busy", "79000000007": "unallocated", "79000000005": "no_answer", "79000000008": "machine"}


def test_the_summary_capture_has_the_four_cases() -> None:
    assert set(_SUMMARY) == set(_CASES)


@pytest.mark.parametrize("number", sorted(_CASES))
async def test_volna_cases_as_captured(number: str) -> None:
    """``volna-busy-invalid-noanswer-machine.txt``: events per leg, in order, with the shown fields."""
    lines = _SUMMARY[number]
    first = lines[0].fields["Uniqueid"]
    action_id = next(ln.fields["ActionID"] for ln in lines if ln.event == "OriginateResponse")
    knobs = _knobs(by_number={number: _CASES[number]})
    async with AmiSimulator(knobs) as sim:
        c = await AmiClient.login(sim.port)
        _originate(c, number, first, action_id, "W1:soft")
        await c.until(hangups(2))
        await c.close()
    got = c.events()
    assert [(m["Event"], leg_of(m)) for m in got] == [(ln.event, ln.leg) for ln in lines]
    for g, ln in zip(got, lines, strict=True):
        _compare(ln.event, g, ln.fields)
    # The far leg's Hangup before the OriginateResponse, where the capture shows it so.
    names = [(m["Event"], leg_of(m)) for m in got]
    if _CASES[number] == "unallocated":
        assert names.index(("Hangup", ";2")) < names.index(("OriginateResponse", ";1"))


async def test_with_shuffle_each_leg_sees_the_same_events() -> None:
    """Shuffling (on by default) reorders within the groups a real Asterisk reorders, never
    drops or adds an event: per leg, the same multiset as the capture."""
    for number, outcome in _CASES.items():
        lines = _SUMMARY[number]
        knobs = _knobs(shuffle=True, seed=3, by_number={number: outcome})
        async with AmiSimulator(knobs) as sim:
            c = await AmiClient.login(sim.port)
            _originate(c, number, lines[0].fields["Uniqueid"], "a", "t")
            await c.until(hangups(2))
            await c.close()
        got = per_leg([(leg_of(m), m["Event"]) for m in c.events()])
        want = per_leg([(ln.leg, ln.event) for ln in lines])
        assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}, outcome
        for leg in got.values():  # a leg's own life stays in order
            assert leg[0] == "Newchannel" and leg[-1] == "Hangup"


async def test_originate_while_shutting_down_as_captured() -> None:
    """``volna-originate-while-shutting-down.txt``: while Asterisk shuts down (about 1.1 s) AMI
    stays open and each action the log names is answered ``Response: Error`` / ``Message:
    Asterisk is shutting down`` — a refusal, no call placed."""
    log_lines = (TRANSCRIPTS / "volna-originate-while-shutting-down.txt").read_text().splitlines()
    refused = [re.search(r"manager action '(\w+)'\. (Asterisk is shutting down)", ln) for ln in log_lines]
    actions = [(m.group(1), m.group(2)) for m in refused if m]
    assert actions and all(a == ("Originate", "Asterisk is shutting down") for a in actions)
    async with AmiSimulator(_knobs()) as sim:
        c = await AmiClient.login(sim.port)
        sim.start_restart(down_s=0.05, shutdown_s=1.1)  # the capture's window; the test leaves inside it
        await asyncio.sleep(0.05)
        started = time.monotonic()
        for i, (action, _) in enumerate(actions):
            c.send(action, ActionID=f"r{i}", Channel="Local/+79000000002@debtors", Context="volna-soft_reminder",
                   Exten="s", Priority="1", Async="true")
        msgs = await c.until(lambda m: sum(x.get("ActionID", "").startswith("r") for x in m) == len(actions))
        assert time.monotonic() - started < 0.8  # answered at once, AMI still open
        replies = [m for m in msgs if m.get("ActionID", "").startswith("r")]
        assert [(r["Response"], r["Message"]) for r in replies] == [("Error", msg) for _, msg in actions]
        assert sim.stats.originates == 0 and sim.stats.refused_shutting_down == len(actions)
        assert sim.state.value == "shutting_down"
        await c.close()
