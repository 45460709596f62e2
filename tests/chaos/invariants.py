"""The verdicts of a chaos run, from what Redis says (results stream, task states, counts) and what
the peers received (every send with its arrival time). Pure: no I/O, testable on made-up data.

=================  ================================================================================
one_final          every loaded task (follow-ups included) has exactly one ``final`` result record,
                   its state is final with that outcome, and the counters agree (guarantee 1)
at_most_once       a peer got each attempt at most once; on a channel with ``resend_unconfirmed``
                   at most as often as the attempt was dispatched (each resend has its own
                   ``dispatched`` record); no send without a ``dispatched`` record (guarantee 4)
caps               per debtor and local day, the contacts the peers say reached the debtor's numbers
                   (their reach ledgers: answered calls and answering machines, delivered or read
                   messages, calls put through to an operator as conversations) stay within the
                   day's cap of their class (guarantee 3). The engine's own outcome labels are not
                   read: a slot the engine forgot to count is caught by what reached the phone
windows            every send arrived while the window was open in every candidate zone of its
                   task, at engine time (guarantee 2): checked here with zoneinfo alone, 08:00–20:00
                   local on the wave's day (a working day), not with the engine's calendar
=================  ================================================================================
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from connectors.ami.calls import call_ids
from engine.calendar.zones import task_zones
from tests.chaos.world import WireSend

OPEN, CLOSE = time(8, 0), time(20, 0)
SHOWN = 8  # examples listed per failed invariant


@dataclass
class Verdict:
    name: str
    ok: bool
    summary: str
    examples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"{'PASS' if self.ok else 'FAIL'}  {self.name:<13} {self.summary}"
        shown, out = 0, [head]
        for e in self.examples:  # an indented example belongs to the one above it
            if not e.startswith("  "):
                shown += 1
            if shown > SHOWN:
                break
            out.append(f"        {e}")
        return out


@dataclass(frozen=True, slots=True)
class Reach:
    """What a peer says reached a number (``simulators.reach``), at engine time."""

    channel: str
    number: str  # digits
    kind: str  # answered | machine | operator | delivered | read
    ref: str
    engine_ms: int


@dataclass
class Observed:
    wave_id: str
    day: date
    tasks: dict[str, dict[str, Any]]
    states: dict[str, dict[str, Any]]
    counts: dict[str, int]
    records: list[dict[str, Any]]
    wire: list[WireSend]
    #: Channels whose connector resends unconfirmed attempts.
    resend: frozenset[str]
    #: cap class → the day's limit.
    day_caps: dict[str, int]
    #: What the peers say reached each number.
    reach: list[Reach] = field(default_factory=list)


AttemptKey = tuple[str, int]  # (task id, attempt number)


@dataclass
class _Index:
    dispatched: Counter[AttemptKey]
    channel_of: dict[AttemptKey, str]
    result_of: dict[AttemptKey, dict[str, Any]]
    by_call_id: dict[str, AttemptKey]
    by_task_channel: dict[tuple[str, str], list[AttemptKey]]


def _index(o: Observed) -> _Index:
    dispatched: Counter[AttemptKey] = Counter()
    channel_of: dict[AttemptKey, str] = {}
    result_of: dict[AttemptKey, dict[str, Any]] = {}
    for r in o.records:
        key = (r["task_id"], int(r["attempt"]))
        if r["kind"] == "dispatched":
            dispatched[key] += 1
            channel_of[key] = r["channel"]
        elif r["kind"] == "result":
            result_of.setdefault(key, r)
            channel_of.setdefault(key, r["channel"])
    by_call_id = {call_ids(f"{o.wave_id}:{t}:{a}")[0]: (t, a) for (t, a) in dispatched if channel_of[(t, a)] == "ivr"}
    by_task_channel: dict[tuple[str, str], list[AttemptKey]] = defaultdict(list)
    for key in sorted(dispatched):
        by_task_channel[(key[0], channel_of[key])].append(key)
    return _Index(dispatched, channel_of, result_of, by_call_id, by_task_channel)


def _attempts_of(send: WireSend, o: Observed, ix: _Index) -> list[AttemptKey]:
    """The attempt(s) a send belongs to: a call by its ChannelId; a message by its task (the text
    carries the task id) and channel — several attempts when a task used that channel twice."""
    if send.channel == "ivr":
        key = ix.by_call_id.get(send.ref)
        return [key] if key else []
    return list(ix.by_task_channel.get((send.ref, send.channel), []))


def check(o: Observed) -> list[Verdict]:
    ix = _index(o)
    return [one_final(o), at_most_once(o, ix), caps(o, ix), windows(o, ix)]


def one_final(o: Observed) -> Verdict:
    finals: Counter[str] = Counter()
    outcome: dict[str, str] = {}
    for r in o.records:
        if r["kind"] == "result" and r.get("final"):
            finals[r["task_id"]] += 1
            outcome[r["task_id"]] = r.get("outcome", "")
    bad: list[str] = []
    missing = [t for t in o.tasks if finals[t] == 0]
    twice = [t for t, n in finals.items() if n > 1]
    stray = [t for t in finals if t not in o.tasks]
    bad += [f"{t}: no final result (state {o.states.get(t)})" for t in missing[:SHOWN]]
    bad += [f"{t}: {finals[t]} final results" for t in twice[:SHOWN]]
    bad += [f"{t}: a final result for a task never loaded" for t in stray[:SHOWN]]
    wrong_state = [t for t in o.tasks if o.states.get(t, {}).get("s") != "f"
                   or (finals[t] == 1 and o.states[t].get("out") != outcome[t])]
    bad += [f"{t}: state {o.states.get(t)} vs final {outcome.get(t)}" for t in wrong_state[:SHOWN]]
    c = o.counts
    expect = {"total": len(o.tasks), "final": len(o.tasks), "queued": 0, "leased": 0}
    off = {k: (c.get(k, 0), v) for k, v in expect.items() if c.get(k, 0) != v}
    if off:
        bad.append("counters (got, want): " + ", ".join(f"{k} {g}≠{w}" for k, (g, w) in off.items()))
    summary = (f"{len(o.tasks)} tasks, {sum(finals.values())} final results; missing {len(missing)}, "
               f"twice {len(twice)}, state mismatches {len(wrong_state)}")
    return Verdict("one_final", not bad, summary, bad)


def at_most_once(o: Observed, ix: _Index) -> Verdict:
    per_attempt: Counter[AttemptKey] = Counter()
    per_group: Counter[tuple[AttemptKey, ...]] = Counter()
    unreported: list[str] = []
    for send in o.wire:
        keys = tuple(_attempts_of(send, o, ix))
        if not keys:
            unreported.append(f"{send.channel} {send.ref or '?'} to {send.number}: no dispatched record")
        elif len(keys) == 1:
            per_attempt[keys[0]] += 1
        else:
            per_group[keys] += 1
    bad = list(unreported)
    resent = 0
    for key, n in per_attempt.items():
        channel = ix.channel_of.get(key, "?")
        allowed = ix.dispatched[key] if channel in o.resend else 1
        if n > 1 and channel in o.resend and n <= allowed:
            resent += n - 1
        if n > allowed:
            bad.append(f"{channel} {key[0]} attempt {key[1]}: on the wire {n}×, dispatched {ix.dispatched[key]}×")
    for keys, n in per_group.items():
        channel = ix.channel_of.get(keys[0], "?")
        allowed = sum(ix.dispatched[k] for k in keys) if channel in o.resend else len(keys)
        if n > allowed:
            bad.append(f"{channel} {keys[0][0]} attempts {[k[1] for k in keys]}: on the wire {n}×, allowed {allowed}")
    by_channel = Counter(s.channel for s in o.wire)
    summary = (f"{len(o.wire)} sends ({', '.join(f'{k} {v}' for k, v in sorted(by_channel.items()))}); "
               f"{resent} reported resends; {len(unreported)} unreported; {len(bad) - len(unreported)} over")
    return Verdict("at_most_once", not bad, summary, bad)


def _reached(o: Observed, ix: _Index) -> set[AttemptKey]:
    reached: set[AttemptKey] = set()
    for send in o.wire:
        reached.update(_attempts_of(send, o, ix))
    return reached


def caps(o: Observed, ix: _Index) -> Verdict:
    """Per debtor and local day, from the reach ledgers only. A call that reached an operator is
    a conversation (not also a voice message); a message delivered and then read is one contact."""
    debtor_of: dict[str, str] = {}
    zones_of: dict[str, tuple[str, ...]] = {}
    for task in o.tasks.values():
        digits = "".join(c for c in task["phone"] if c.isdigit())
        debtor_of[digits] = task["debtor_id"]
        zones_of.setdefault(task["debtor_id"], task_zones(task.get("tz"), task.get("region"), task["phone"]))
    operator_calls = {r.ref for r in o.reach if r.kind == "operator"}
    contacts: dict[tuple[str, date, str], set[tuple[str, str]]] = defaultdict(set)
    unknown = 0
    for r in o.reach:
        debtor = debtor_of.get(r.number)
        if debtor is None:
            unknown += 1
            continue
        if r.kind == "operator":
            klass = "conversation"
        elif r.channel == "ivr" and r.ref in operator_calls:
            continue
        else:
            klass = "message"
        # A debtor whose zone is uncertain has a local day in each candidate zone: count in each.
        for day in {datetime.fromtimestamp(r.engine_ms / 1000, ZoneInfo(z)).date() for z in zones_of[debtor]}:
            contacts[(debtor, day, klass)].add((r.channel, r.ref))
    bad = []
    for (debtor, day, klass), refs in sorted(contacts.items()):
        if len(refs) > o.day_caps[klass]:
            bad.append(f"{debtor} {day} {klass}: {len(refs)} > {o.day_caps[klass]}: {sorted(refs)[:6]}")
            bad += [f"  {line}" for line in _story(o, debtor)]
    if unknown:
        bad.append(f"{unknown} contacts reached numbers no task has")
    debtors = {t["debtor_id"] for t in o.tasks.values()}
    at_cap = sum(1 for (_, _, klass), refs in contacts.items() if len(refs) == o.day_caps[klass])
    reached = sum(len(refs) for refs in contacts.values())
    summary = (f"{len(debtors)} debtors, {reached} contacts the peers saw reach them, {at_cap} debtor-days at a "
               f"cap, {len(bad)} over")
    return Verdict("caps", not bad, summary, bad)


def _story(o: Observed, debtor: str) -> list[str]:
    """What the engine recorded for one debtor, in order: enough to tell which slot went back."""
    out = []
    for r in sorted((r for r in o.records if r.get("debtor_id") == debtor),
                    key=lambda r: (r.get("finished_at") or r.get("sent_at") or r.get("claimed_at") or 0)):
        data = {k: v for k, v in (r.get("data") or {}).items() if k in ("cut", "correlation_id", "message_id",
                                                                        "parts", "late", "superseded", "amd")}
        out.append(f"{r['kind']:<10} {r['task_id']}#{r['attempt']} {r['channel']:<8} {r.get('outcome') or '-':<16} "
                   f"final={r.get('final')} provider={r.get('provider_code')!s}/{(r.get('provider_text') or '')[:60]} "
                   f"at={r.get('finished_at') or r.get('sent_at')} {data or ''}")
    return out


def local_open(at_ms: int, zones: Iterable[str], day: date) -> bool:
    for zone in zones:
        local = datetime.fromtimestamp(at_ms / 1000, ZoneInfo(zone))
        if local.date() != day or not OPEN <= local.time() < CLOSE:
            return False
    return True


def windows(o: Observed, ix: _Index) -> Verdict:
    bad: list[str] = []
    checked = 0
    for send in o.wire:
        keys = _attempts_of(send, o, ix)
        if not keys or send.engine_ms is None:
            continue
        task = o.tasks.get(keys[0][0])
        if task is None:
            continue
        zones = task_zones(task.get("tz"), task.get("region"), task["phone"])
        checked += 1
        if not local_open(send.engine_ms, zones, o.day):
            at = datetime.fromtimestamp(send.engine_ms / 1000, ZoneInfo(zones[0])).strftime("%Y-%m-%d %H:%M:%S")
            bad.append(f"{send.channel} {keys[0][0]}/{keys[0][1]} at {at} {zones[0]}"
                       f"{f' (+{len(zones) - 1} zones)' if len(zones) > 1 else ''}")
    summary = f"{checked} sends checked against their zones' windows, {len(bad)} outside"
    return Verdict("windows", not bad, summary, bad)
