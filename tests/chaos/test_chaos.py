"""The chaos run in ``make test`` (a small one), and the invariant checker on made-up data.

The seed is random unless ``VOLNA_CHAOS_SEED`` is set; a failing run prints its seed and the
commands that replay it. Bigger runs: ``load/chaos.py`` (``make chaos``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from connectors.ami.calls import call_ids
from tests.chaos.invariants import Observed, Reach, check
from tests.chaos.plan import DAY, Options, make_plan
from tests.chaos.run import run_chaos
from tests.chaos.world import JumpClock, WireSend

TASKS = 2000


@pytest.mark.timeout(400)
async def test_chaos_run_keeps_every_guarantee(tmp_path: Path) -> None:
    seed = int(os.environ.get("VOLNA_CHAOS_SEED") or random.SystemRandom().randrange(1, 1 << 31))
    # The work folder under the session's temporary folder: its processes' logs are read for phone
    # numbers with the rest of the suite's (tests/conftest.py).
    report = await run_chaos(Options(seed=seed, tasks=TASKS), workdir=tmp_path, log=lambda _: None)
    text = report.text()
    print(text)
    assert report.ok, (f"{text}\n\nreplay: VOLNA_CHAOS_SEED={seed} .venv/bin/pytest tests/chaos/test_chaos.py"
                       f" -k keeps_every  (or: {report.replay()})")


# ---- the plan is a function of the seed ------------------------------------------------------


def test_the_same_seed_gives_the_same_plan() -> None:
    a, b, c = make_plan(Options(seed=5, tasks=300)), make_plan(Options(seed=5, tasks=300)), make_plan(
        Options(seed=6, tasks=300))
    assert (a.rows, a.faults, a.start_ms, a.appendfsync) == (b.rows, b.faults, b.start_ms, b.appendfsync)
    assert a.rows != c.rows and a.faults != c.faults
    jump = next(f for f in a.faults if f.kind == "jump")
    assert {f.kind for f in a.faults} >= {"kill", "redis", "ami_drop", "burst", "jump"}
    assert {f.kind for f in a.faults} & {"smsc_drop", "smsc_garbage"}
    # The Vladivostok window (closing at 10:00 UTC) is still open at the jump and closed after it.
    from tests.chaos.plan import BOUNDARY_MS

    assert a.start_ms + jump.at_s * 1000 < BOUNDARY_MS < a.start_ms + jump.at_s * 1000 + 10 * 60_000


def test_the_failover_option_makes_each_redis_fault_a_master_failover() -> None:
    plain, failover = make_plan(Options(seed=5, tasks=300)), make_plan(Options(seed=5, tasks=300, failover=True))
    assert [f.kind for f in failover.faults] == ["failover" if f.kind == "redis" else f.kind for f in plain.faults]
    assert [f.params for f in failover.faults] == [f.params for f in plain.faults]


def test_the_replay_command_names_only_what_differs() -> None:
    from tests.chaos.run import Report

    assert Report(make_plan(Options(seed=7))).replay() == ".venv/bin/python load/chaos.py --seed 7"
    assert Report(make_plan(Options(seed=7, tasks=2000, clock_jump=False))).replay() == \
        ".venv/bin/python load/chaos.py --seed 7 --tasks 2000 --no-clock-jump"


def test_jump_clock_maps_real_time_to_the_spec_in_force() -> None:
    clock = JumpClock(1_000_000)
    before = clock.current.epoch_real_ms / 1000 - 1.0
    clock.jump(600_000)
    after = clock.history[-1][0] / 1000
    assert clock.engine_ms_at(before) == 999_000
    assert clock.engine_ms_at(after + 1.0) == clock.history[-1][1].start_ms + 1000
    assert clock.now_ms() >= 1_600_000


# ---- the checker catches what it must ---------------------------------------------------------

NOON_MSK = 1_796_115_600_000  # 2026-12-01 09:00 UTC = 12:00 Moscow
EVENING_MSK = NOON_MSK + 9 * 3_600_000  # 21:00 Moscow: closed


def _observed(wire: list[WireSend], records: list[dict[str, Any]], *, n_tasks: int = 3,
              resend: frozenset[str] = frozenset(), reach: list[Reach] | None = None) -> Observed:
    """By default every send reached the handset (one delivery in the SMSC's reach ledger each)."""
    tasks = {f"T{i:06d}": {"task_id": f"T{i:06d}", "debtor_id": "D1", "channel": "sms", "phone": "+79160000001",
                           "tz": "Europe/Moscow"} for i in range(1, n_tasks + 1)}
    finals = {r["task_id"]: r["outcome"] for r in records if r["kind"] == "result" and r.get("final")}
    states = {t: {"s": "f", "out": finals.get(t)} for t in tasks}
    counts = {"total": n_tasks, "final": n_tasks, "queued": 0, "leased": 0}
    if reach is None:
        reach = [Reach(w.channel, w.number, "answered" if w.channel == "ivr" else "delivered", f"m{i}",
                       w.engine_ms or 0) for i, w in enumerate(wire)]
    return Observed("w", DAY, tasks, states, counts, records, wire, resend, {"message": 2, "conversation": 1},
                    reach)


def _rec(kind: str, task: str, outcome: str | None = None, channel: str = "sms", attempt: int = 1,
         final: bool = True) -> dict[str, Any]:
    return {"kind": kind, "task_id": task, "attempt": attempt, "channel": channel, "outcome": outcome,
            "final": final if kind == "result" else False}


def _sms(task: str, at_ms: int = NOON_MSK) -> WireSend:
    return WireSend("sms", "79160000001", at_ms / 1000, task, at_ms)


def _verdicts(o: Observed) -> dict[str, bool]:
    return {v.name: v.ok for v in check(o)}


def test_checker_passes_a_clean_run() -> None:
    records = [r for t in ("T000001", "T000002") for r in (_rec("dispatched", t), _rec("result", t, "delivered"))]
    records += [_rec("result", "T000003", "skipped_cap")]
    o = _observed([_sms("T000001"), _sms("T000002")], records)
    assert _verdicts(o) == {"one_final": True, "at_most_once": True, "caps": True, "windows": True}


def test_checker_catches_each_violation() -> None:
    base = [r for t in ("T000001", "T000002", "T000003") for r in
            (_rec("dispatched", t), _rec("result", t, "delivered"))]
    # A third counted contact for one debtor (cap 2), sent after 20:00 Moscow, one of them twice.
    wire = [_sms("T000001"), _sms("T000002"), _sms("T000003", EVENING_MSK), _sms("T000001")]
    verdicts = _verdicts(_observed(wire, base))
    assert verdicts == {"one_final": True, "at_most_once": False, "caps": False, "windows": False}
    # A task without a final result, one with two.
    records = [*base[:4], _rec("dispatched", "T000003"), _rec("result", "T000002", "delivered")]
    assert not _verdicts(_observed(wire[:2], records))["one_final"]
    # A send the engine never reported.
    assert not _verdicts(_observed([*wire[:2], _sms("T000009")], base))["at_most_once"]


def test_caps_are_judged_by_what_reached_the_phone_not_by_the_engines_labels() -> None:
    """Three messages reached D1 (its message cap is two a day) although the engine recorded two of
    them as not counting (rejected, undelivered): the verdict believes the SMSC. A call put
    through to an operator is a conversation, and the day's one conversation is allowed."""
    records = [r for t, out in (("T000001", "delivered"), ("T000002", "rejected"), ("T000003", "undelivered"))
               for r in (_rec("dispatched", t), _rec("result", t, out))]
    wire = [_sms("T000001"), _sms("T000002"), _sms("T000003")]
    assert not _verdicts(_observed(wire, records))["caps"]
    def reached(channel: str, kind: str, ref: str) -> Reach:
        return Reach(channel, "79160000001", kind, ref, NOON_MSK)

    two = [reached("sms", "delivered", "m1"), reached("sms", "read", "m1"), reached("sms", "delivered", "m2"),
           reached("ivr", "answered", "c1"), reached("ivr", "operator", "c1")]
    assert _verdicts(_observed(wire, records, reach=two))["caps"]
    assert not _verdicts(_observed(wire, records, reach=[*two, reached("ivr", "operator", "c2")]))["caps"]


def test_checker_allows_reported_resends_only() -> None:
    records = [_rec("dispatched", "T000001"), _rec("dispatched", "T000001"), _rec("result", "T000001", "delivered")]
    wire = [_sms("T000001"), _sms("T000001")]
    assert _verdicts(_observed(wire, records, n_tasks=1, resend=frozenset({"sms"})))["at_most_once"]
    assert not _verdicts(_observed(wire, records, n_tasks=1))["at_most_once"]
    assert not _verdicts(_observed([*wire, _sms("T000001")], records, n_tasks=1,
                                   resend=frozenset({"sms"})))["at_most_once"]


def test_checker_finds_calls_by_their_channel_id() -> None:
    call = call_ids("w:T000001:1")[0]
    records = [_rec("dispatched", "T000001", channel="ivr"), _rec("result", "T000001", "answered", channel="ivr")]
    ok = _observed([WireSend("ivr", "79160000001", NOON_MSK / 1000, call, NOON_MSK)], records, n_tasks=1)
    assert _verdicts(ok)["at_most_once"]
    twice = _observed([WireSend("ivr", "79160000001", NOON_MSK / 1000, call, NOON_MSK)] * 2, records, n_tasks=1)
    assert not _verdicts(twice)["at_most_once"]
