"""The night's pure decisions (engine.planner.decide, engine.planner.plan): stages, transitions,
promises, stops, contact search, phone order, the caps budget, windows and the spread, and the
byte-identical plan (issue 19, acceptance 3)."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.calendar.windows import WindowCalendar
from engine.config.scenario_files import load_scenarios
from engine.config.settings import CapSettings, WindowSettings
from engine.demo.portfolio import portfolio
from engine.domain.outcomes import Channel
from engine.intake.lines import FileFormat
from engine.planner.decide import History, Skip, Used, decide_stage, fit_touch, usable_phones
from engine.planner.plan import Planner, task_line
from engine.planner.portfolio import Debtor, PortfolioDebtor, read_portfolio
from engine.planner.strategy import Touch, load_strategy

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = load_scenarios(ROOT / "scenarios")
CAPS = CapSettings()
STRATEGY = load_strategy(ROOT / "strategies" / "utility.yaml", SCENARIOS, CAPS)
CALENDAR = WindowCalendar(WindowSettings())
RATES = {Channel.IVR: 20.0, Channel.SMS: 40.0, Channel.VIBER: 40.0}
MONDAY = date(2026, 12, 7)


def debtor(n: int = 1, *, days: int = 45, amount: float = 5000.0, phones: tuple[str, ...] | None = None,
           **kw: object) -> Debtor:
    return Debtor.of(PortfolioDebtor.model_validate({
        "debtor_id": f"d{n}", "phones": list(phones or (f"+7916{n:07d}",)), "tz": "Europe/Moscow",
        "creditor": "Мосэнергосбыт", "account": f"{n:08d}", "amount": amount, "days_overdue": days,
        "address": "ул. Ленина, 1", "vars": {"pay_url": "https://pay.example/x"}, **kw}))


def planner(rates: dict[Channel, float] | None = None) -> Planner:
    return Planner(STRATEGY, SCENARIOS, CAPS, CALENDAR, RATES if rates is None else rates)


# ---- stages ---------------------------------------------------------------------------------------


def test_new_debtor_enters_first_matching_stage() -> None:
    assert decide_stage(STRATEGY, debtor(days=45), History(), MONDAY).stage == "soft"
    assert decide_stage(STRATEGY, debtor(days=45, amount=50_000), History(), MONDAY).stage == "firm"
    assert decide_stage(STRATEGY, debtor(days=120), History(), MONDAY).stage == "firm"
    assert decide_stage(STRATEGY, debtor(days=200), History(), MONDAY).stage == "pre_court"
    young = decide_stage(STRATEGY, debtor(days=10), History(), MONDAY)
    assert young.stage is None and young.skip is Skip.NO_STAGE


def test_no_result_moves_after_the_days_in_stage() -> None:
    h = History(stage="soft", since=MONDAY - timedelta(days=13))
    assert decide_stage(STRATEGY, debtor(), h, MONDAY).stage == "soft"
    h = History(stage="soft", since=MONDAY - timedelta(days=14))
    d = decide_stage(STRATEGY, debtor(), h, MONDAY)
    assert (d.stage, d.since, d.move) == ("firm", MONDAY, ("soft", "firm", "no_result"))
    # A promise made in the stage restarts the count (and pauses contact while it runs).
    h = History(stage="soft", since=MONDAY - timedelta(days=20), promise_made=MONDAY - timedelta(days=10),
                promise_date=MONDAY + timedelta(days=1))
    d = decide_stage(STRATEGY, debtor(), h, MONDAY)
    assert (d.stage, d.move, d.skip) == ("soft", None, Skip.PROMISE)


def test_promise_pauses_until_its_date_then_a_broken_one_moves() -> None:
    since = MONDAY - timedelta(days=3)
    for promised in (MONDAY, MONDAY + timedelta(days=5)):
        h = History(stage="soft", since=since, promise_date=promised, promise_made=since)
        d = decide_stage(STRATEGY, debtor(), h, MONDAY)
        assert (d.stage, d.skip) == ("soft", Skip.PROMISE)
    h = History(stage="soft", since=since, promise_date=MONDAY - timedelta(days=1), promise_made=since)
    d = decide_stage(STRATEGY, debtor(), h, MONDAY)
    assert d.move == ("soft", "firm", "broken_promise") and d.skip is None
    # Only once: the next night the promise lies before the new stage began.
    h = History(stage="firm", since=MONDAY, promise_date=MONDAY - timedelta(days=1), promise_made=since)
    assert decide_stage(STRATEGY, debtor(), h, MONDAY + timedelta(days=1)).move is None


def test_stops_and_payment() -> None:
    h = History(stage="soft", since=MONDAY)
    assert decide_stage(STRATEGY, debtor(amount=0), h, MONDAY).skip is Skip.PAID
    for reason in ("refused", "representative"):
        h = History(stage="soft", since=MONDAY, stop_reason=reason)
        assert decide_stage(STRATEGY, debtor(), h, MONDAY).skip is Skip.STOP_LIST
    h = History(stage="soft", since=MONDAY, opted_out=True)
    assert decide_stage(STRATEGY, debtor(), h, MONDAY).skip is Skip.OPT_OUT


def test_every_phone_invalid_means_contact_search_and_a_new_phone_brings_back() -> None:
    two = ("+79160000001", "+79160000002")
    h = History(stage="firm", since=MONDAY - timedelta(days=3), dead_phones=frozenset({two[0]}))
    assert decide_stage(STRATEGY, debtor(phones=two), h, MONDAY).stage == "firm"
    h = History(stage="firm", since=MONDAY - timedelta(days=3), dead_phones=frozenset(two))
    d = decide_stage(STRATEGY, debtor(phones=two), h, MONDAY)
    assert (d.stage, d.move, d.skip) == ("contact_search", ("firm", "contact_search", "all_phones_invalid"),
                                         Skip.NO_PHONE)
    h = History(stage="contact_search", since=MONDAY, dead_phones=frozenset(two))
    later = MONDAY + timedelta(days=5)
    d = decide_stage(STRATEGY, debtor(phones=(*two, "+79160000003")), h, later)
    assert (d.stage, d.move) == ("soft", ("contact_search", "soft", "phone_found"))


def test_phones_in_order_of_past_success() -> None:
    three = ("+79160000001", "+79160000002", "+79160000003")
    h = History(phone_success={three[2]: 4, three[1]: 1}, dead_phones=frozenset({three[1]}))
    assert usable_phones(debtor(phones=three), h) == [three[2], three[0]]


def test_ageing_debt_pulls_up_never_down() -> None:
    h = History(stage="soft", since=MONDAY - timedelta(days=3))
    assert decide_stage(STRATEGY, debtor(days=95), h, MONDAY).move == ("soft", "firm", "entry")
    h = History(stage="pre_court", since=MONDAY - timedelta(days=3))
    assert decide_stage(STRATEGY, debtor(days=45), h, MONDAY).stage == "pre_court"


# ---- touches, budget, windows ---------------------------------------------------------------------


def _lines(plan_tasks: list) -> list[dict]:
    return [json.loads(task_line(t)) for t in plan_tasks]


def test_cadence_follows_the_cycle() -> None:
    p = planner()
    d = debtor()
    plans = {k: p.plan(MONDAY + timedelta(days=k), [d], {"d1": History(stage="soft", since=MONDAY)})
             for k in range(8)}
    channels = {k: [(t["channel"], t.get("cascade")) for t in _lines(v.tasks)] for k, v in plans.items()}
    assert channels == {0: [("sms", None)], 1: [], 2: [("ivr", None)], 3: [], 4: [("viber", ["sms"])],
                        5: [], 6: [], 7: [("sms", None)]}


def test_data_a_scenario_cannot_use_is_reported() -> None:
    h = {"d1": History(stage="soft", since=MONDAY - timedelta(days=4))}
    plan = planner().plan(MONDAY, [debtor(address="")], h)  # the Viber text says the address
    assert plan.tasks == [] and plan.report.skipped_touches == {"bad_data": 1}
    assert plan.report.bad_data == {"vars.address: missing (viber text of 'soft_reminder' uses it)": 1}


def test_budget_trims_a_cascade_then_skips() -> None:
    p = planner()
    h = History(stage="soft", since=MONDAY - timedelta(days=4), used={"message": Used(1, 3, 5)})
    [task] = _lines(p.plan(MONDAY, [debtor()], {"d1": h}).tasks)
    assert (task["channel"], task["cascade"]) == ("viber", ["sms"])  # one message slot: Viber or SMS
    # A call that is a conversation, cascading to an SMS, needs a slot of each class: with the
    # day's conversation used, not even the call fits; with messages used up, the SMS is dropped.
    talking = SCENARIOS["soft_reminder"].model_copy(update={"ivr_cap_class": "conversation"})
    touch = Touch(day=0, channel=Channel.IVR, scenario="soft_reminder", cascade=[Channel.SMS])
    assert fit_touch(touch, talking, CAPS, {"message": Used(2, 2, 2)}) == ((Channel.IVR,), None)
    assert fit_touch(touch, talking, CAPS, {"conversation": Used(0, 2, 2)}) == (None, Skip.CAP_WEEK)
    assert fit_touch(touch, talking, CAPS, {}) == ((Channel.IVR, Channel.SMS), None)
    h = History(stage="soft", since=MONDAY - timedelta(days=4), used={"message": Used(0, 4, 5)})
    plan = p.plan(MONDAY, [debtor()], {"d1": h})
    assert plan.tasks == [] and plan.report.skipped_touches == {"cap_week": 1}
    h = History(stage="soft", since=MONDAY - timedelta(days=4), used={"message": Used(0, 0, 16)})
    assert p.plan(MONDAY, [debtor()], {"d1": h}).report.skipped_touches == {"cap_month": 1}


@settings(max_examples=150, deadline=None)
@given(used_day=st.integers(0, 3), used_week=st.integers(0, 5), used_month=st.integers(0, 17),
       offset=st.integers(0, 6), stage=st.sampled_from(["soft", "firm", "pre_court"]))
def test_never_more_tasks_than_the_budget(used_day: int, used_week: int, used_month: int, offset: int,
                                          stage: str) -> None:
    h = History(stage=stage, since=MONDAY - timedelta(days=offset),
                used={"message": Used(used_day, used_week, used_month)})
    plan = planner().plan(MONDAY, [debtor(days=200 if stage == "pre_court" else 120 if stage == "firm" else 45)],
                          {"d1": h})
    slots = len(plan.tasks)  # every touch of this strategy takes one message slot
    left = min(2 - used_day, 4 - used_week, 16 - used_month)
    assert slots <= max(left, 0)


def test_not_before_inside_the_window_and_preferred_hours() -> None:
    zones = ["Europe/Kaliningrad", "Europe/Moscow", "Asia/Yekaterinburg", "Asia/Vladivostok", "Asia/Kamchatka"]
    people = [debtor(i, tz=z) for i, z in enumerate(zones, start=1)]
    since = MONDAY - timedelta(days=2)  # the soft stage's robocall day, preferred 10:00–13:00
    plan = planner().plan(MONDAY, people, {d.debtor_id: History(stage="soft", since=since) for d in people})
    assert len(plan.tasks) == len(zones)
    for t in _lines(plan.tasks):
        local = datetime.fromisoformat(t["not_before"]).astimezone(ZoneInfo(t["tz"]))
        assert local.date() == MONDAY and 10 <= local.hour < 13, (t["tz"], local)


def test_spread_keeps_each_channel_under_its_rate() -> None:
    rnd = random.Random(5)
    people = [debtor(i, tz="Europe/Moscow") for i in range(1, 3001)]
    rnd.shuffle(people)
    plan = planner({Channel.SMS: 5.0}).plan(MONDAY, people, {})
    per_second = Counter(t["not_before"] for t in _lines(plan.tasks) if t["channel"] == "sms")
    assert sum(per_second.values()) == 3000
    assert max(per_second.values()) <= 4  # 5/s × capacity share 0.8
    first = min(per_second)
    assert first == "2026-12-07T05:00:00Z"  # 08:00 Moscow, the window's opening


def test_over_capacity_is_reported_not_planned() -> None:
    people = [debtor(i) for i in range(1, 301)]
    plan = planner({Channel.SMS: 0.005}).plan(MONDAY, people, {})  # 0.004/s × 12 h ≈ 172 tasks
    assert 150 < len(plan.tasks) < 200
    assert plan.report.skipped_touches["over_capacity"] == 300 - len(plan.tasks)
    for t in _lines(plan.tasks):
        assert datetime.fromisoformat(t["not_before"]) < datetime(2026, 12, 7, 17, 0, tzinfo=UTC)


def test_same_inputs_byte_identical_plan() -> None:
    """Acceptance 3 (pure part): input order and repetition change nothing."""
    lines = [json.dumps(x, ensure_ascii=False).encode() for x in portfolio(3000, seed=3)]
    people = list(read_portfolio(lines, FileFormat(), []))
    rnd = random.Random(1)
    histories = {d.debtor_id: History(stage=rnd.choice(["soft", "firm", "pre_court"]),
                                      since=MONDAY - timedelta(days=rnd.randrange(30)),
                                      used={"message": Used(0, rnd.randrange(5), rnd.randrange(17))})
                 for d in people if rnd.random() < 0.5}

    def text() -> str:
        shuffled = people[:]
        rnd.shuffle(shuffled)
        plan = planner().plan(MONDAY, shuffled, dict(reversed(list(histories.items()))))
        return "\n".join(task_line(t) for t in plan.tasks) + json.dumps(plan.report.as_dict()) + repr(plan.states)

    first = text()
    assert first == text() == text()
    assert len(first) > 100_000
