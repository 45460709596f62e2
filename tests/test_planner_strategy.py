"""Strategies as data (issue 19, acceptance 4): the shipped strategy loads; a file with an unknown
channel, scenario or stage, or a cadence that can never fit the caps, is refused with the file,
the line and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config.scenario_files import load_scenarios
from engine.config.settings import CapSettings
from engine.planner.strategy import StrategyError, load_strategy

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = load_scenarios(ROOT / "scenarios")

GOOD = """\
name: t
campaign: c1
stages:
  - name: search
  - name: soft
    entry: {days_overdue: {min: 30}}
    cadence:
      cycle_days: 7
      touches:
        - {day: 0, channel: sms, scenario: soft_reminder}
        - {day: 3, channel: ivr, scenario: soft_reminder}
transitions:
  - {from: soft, to: search, when: broken_promise}
outcomes:
  all_phones_invalid: search
"""


def _load(tmp_path: Path, text: str, caps: CapSettings | None = None) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StrategyError) as err:
        load_strategy(path, SCENARIOS, caps or CapSettings())
    return str(err.value)


def test_shipped_strategy_loads() -> None:
    strategy = load_strategy(ROOT / "strategies" / "utility.yaml", SCENARIOS, CapSettings())
    assert [s.name for s in strategy.stages] == ["contact_search", "soft", "firm", "pre_court"]
    assert {(t.from_stage, t.to, t.when) for t in strategy.transitions} >= {
        ("soft", "firm", "no_result"), ("firm", "pre_court", "broken_promise")}


def test_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_strategy(path, SCENARIOS, CapSettings()).stage("soft").cadence is not None


def test_unknown_channel_names_file_and_line(tmp_path: Path) -> None:
    msg = _load(tmp_path, GOOD.replace("{day: 3, channel: ivr", "{day: 3, channel: telegram"))
    assert msg.startswith(f"{tmp_path / 'bad.yaml'}:11: ")
    assert "unknown channel 'telegram'" in msg


def test_unknown_cascade_channel(tmp_path: Path) -> None:
    msg = _load(tmp_path, GOOD.replace("scenario: soft_reminder}\n        - {day: 3",
                                       "scenario: soft_reminder, cascade: [pigeon]}\n        - {day: 3"))
    assert ":10: " in msg and "pigeon" in msg


def test_unknown_scenario(tmp_path: Path) -> None:
    msg = _load(tmp_path, GOOD.replace("{day: 3, channel: ivr, scenario: soft_reminder}",
                                       "{day: 3, channel: ivr, scenario: hard_sell}"))
    assert ":11: " in msg and "unknown scenario 'hard_sell'" in msg


def test_unknown_stage_in_transition(tmp_path: Path) -> None:
    msg = _load(tmp_path, GOOD.replace("{from: soft, to: search", "{from: soft, to: court"))
    assert ":13: " in msg and "unknown stage 'court'" in msg


def test_unknown_stage_for_invalid_phones(tmp_path: Path) -> None:
    msg = _load(tmp_path, GOOD.replace("all_phones_invalid: search", "all_phones_invalid: skip_trace"))
    assert ":15: " in msg and "unknown stage 'skip_trace'" in msg


def test_unknown_key(tmp_path: Path) -> None:
    msg = _load(tmp_path, GOOD.replace("    entry: {days_overdue", "    entrance: {days_overdue"))
    assert ":6: " in msg and "unknown key" in msg


def test_cadence_over_the_day_cap(tmp_path: Path) -> None:
    # Three messages on one day: the day cap is 2.
    text = GOOD.replace("        - {day: 3, channel: ivr, scenario: soft_reminder}\n",
                        "        - {day: 0, channel: ivr, scenario: soft_reminder}\n"
                        "        - {day: 0, channel: viber, scenario: soft_reminder}\n")
    msg = _load(tmp_path, text)
    assert ":10: " in msg and "the day cap is 2" in msg


def test_cadence_over_every_week(tmp_path: Path) -> None:
    # Five messages in a 7-day cycle: every calendar week holds at least 4 (cap 4)… five days of
    # a 6-day cycle put at least 5 in any 7 days: never fits.
    touches = "".join(f"        - {{day: {d}, channel: sms, scenario: soft_reminder}}\n" for d in range(5))
    text = GOOD.replace("      cycle_days: 7", "      cycle_days: 6").replace(
        "        - {day: 0, channel: sms, scenario: soft_reminder}\n"
        "        - {day: 3, channel: ivr, scenario: soft_reminder}\n", touches)
    msg = _load(tmp_path, text)
    assert ":8: " in msg and "can never fit" in msg and "week cap is 4" in msg


def test_cadence_that_fits_some_weeks_is_accepted(tmp_path: Path) -> None:
    # 2 messages every 4 days with a week cap of 3: some calendar weeks hold 4, but the fewest any
    # week holds is 3, so it can fit; the planner trims the rest against the debtor's budget.
    caps = CapSettings.model_validate({"message": {"day": 2, "week": 3, "month": 16}})
    text = GOOD.replace("      cycle_days: 7", "      cycle_days: 4").replace("{day: 3, channel: ivr",
                                                                            "{day: 1, channel: ivr")
    path = tmp_path / "ok.yaml"
    path.write_text(text, encoding="utf-8")
    load_strategy(path, SCENARIOS, caps)
    caps2 = CapSettings.model_validate({"message": {"day": 2, "week": 2, "month": 16}})
    assert "week cap is 2" in _load(tmp_path, text, caps2)


def test_cadence_over_every_month(tmp_path: Path) -> None:
    caps = CapSettings.model_validate({"message": {"day": 2, "week": 4, "month": 6}})
    msg = _load(tmp_path, GOOD, caps)  # 2 a week: every 28 days hold 8 > 6
    assert ":8: " in msg and "month cap is 6" in msg


def test_scenario_without_the_channel(tmp_path: Path) -> None:
    # The shipped scenarios have no WhatsApp template? They do; an IVR-less scenario is made up here.
    scenarios = {**SCENARIOS, "text_only": SCENARIOS["soft_reminder"].model_copy(update={"ivr": None})}
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("{day: 3, channel: ivr, scenario: soft_reminder}",
                                 "{day: 3, channel: ivr, scenario: text_only}"), encoding="utf-8")
    with pytest.raises(StrategyError, match=r":11: .*nothing to say on ivr"):
        load_strategy(path, scenarios, CapSettings())


def test_not_yaml(tmp_path: Path) -> None:
    msg = _load(tmp_path, GOOD + "  - [unclosed\n")
    assert "bad.yaml:" in msg and "not valid YAML" in msg
