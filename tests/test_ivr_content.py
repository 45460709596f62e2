"""What the law asks of a scenario's content, checked by ``volna scenarios check|compile`` and
``volna run``; the shipped scenarios; amounts at the boundaries of what Asterisk could say; the
intake refusing IVR tasks a script cannot say; promises; recordings' retention."""

from __future__ import annotations

import os
import textwrap
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml

from connectors.ami.dialplan import compile_dialplan
from connectors.ami.variables import channel_variables, recording_name
from engine.calendar.clock import ScaledClock
from engine.cli import main as cli
from engine.cli.recordings import expired, prune
from engine.config.scenario_files import load_scenarios
from engine.domain import speech
from engine.domain.ivr import (
    ConfirmIdentityStep,
    IvrScript,
    MenuStep,
    SayDateStep,
    promise,
    required_prompts,
    spoken,
)
from engine.domain.outcomes import Channel, Outcome
from engine.domain.scenarios import Scenario
from engine.intake.loader import Intake
from tests.harness import ROOT, context, lines_of, make_settings, task

SHIPPED = load_scenarios(ROOT / "scenarios")

#: A lawful scenario to break one rule at a time.
LAWFUL = """\
name: {name}
messages:
  sms: "{{creditor}}: долг {{amount:money}}. Тел. {{phone_back}}"
ivr:
  prompt_vars:
    creditor_prompt: {{allowed: [volna/creditor-a, volna/creditor-b], default: volna/creditor-a}}
  steps:
    - {{id: greeting, play: [volna/hello]}}
    - {{id: identity, confirm_identity: {{}}}}
    - {{id: creditor, play: [volna/debt-to, "{{creditor_prompt}}"]}}
    - {{id: amount, say_amount: {{var: amount}}}}
"""


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], action: str = "check") -> tuple[int, str]:
    (tmp_path / "scenarios").mkdir(exist_ok=True)
    (tmp_path / "scenarios" / "x.yaml").write_text(text, encoding="utf-8")
    config = tmp_path / "volna.toml"
    config.write_text("[log]\njson = false\n", encoding="utf-8")
    argv = ["--config", str(config), "scenarios", action, "--dir", str(tmp_path / "scenarios")]
    if action == "compile":
        argv += ["--out", str(tmp_path / "out")]
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_a_lawful_scenario_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _check(tmp_path, LAWFUL.format(name="x"), capsys) == (0, "")


def test_check_refuses_disclosure_before_identity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Acceptance 2: an amount, a creditor, an account said before confirm_identity: the file and the step."""
    raw = yaml.safe_load(LAWFUL.format(name="x"))
    steps = raw["ivr"]["steps"]
    raw["ivr"]["steps"] = [steps[0], steps[2], steps[3], {"id": "account", "say_digits": {"var": "account"}},
                           steps[1]]
    code, err = _check(tmp_path, yaml.safe_dump(raw, allow_unicode=True), capsys)
    path = tmp_path / "scenarios" / "x.yaml"
    assert code == 2
    assert f"{path}: ivr.steps.1 (creditor): plays {{creditor_prompt}} (the creditor) before a confirm_identity step" \
        in err
    assert f"{path}: ivr.steps.2 (amount): says the amount before a confirm_identity step" in err
    assert f"{path}: ivr.steps.3 (account): says the account before a confirm_identity step" in err
    assert "Traceback" not in err and "greeting" not in err
    # ... also when compiling, and not at all with disclosure: public and a reason.
    assert _check(tmp_path, yaml.safe_dump(raw, allow_unicode=True), capsys, "compile")[0] == 2
    assert not (tmp_path / "out").exists()
    raw |= {"disclosure": "public", "disclosure_reason": "the number is the creditor's own account holder line"}
    assert _check(tmp_path, yaml.safe_dump(raw, allow_unicode=True), capsys)[0] == 0


def test_a_public_disclosure_needs_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _check(tmp_path, LAWFUL.format(name="x") + "disclosure: public\n", capsys)
    assert code == 2 and "x.yaml: invalid scenario" in err and "needs a disclosure_reason" in err


@pytest.mark.parametrize(("sms", "problem"), [
    ("долг {amount:money}. Тел. {phone_back}", "messages.sms: does not name the creditor ({creditor})"),
    ("{creditor}: долг {amount:money}", "messages.sms: gives no contact phone ({phone_back} or a number)"),
])
def test_check_refuses_a_message_without_creditor_or_phone(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           sms: str, problem: str) -> None:
    """Acceptance 2: an SMS without the creditor, or without a contact phone."""
    raw = yaml.safe_load(LAWFUL.format(name="x"))
    raw["messages"]["sms"] = sms
    code, err = _check(tmp_path, yaml.safe_dump(raw, allow_unicode=True), capsys)
    assert code == 2 and f"{tmp_path / 'scenarios' / 'x.yaml'}: {problem}" in err


def test_a_phone_written_into_the_text_will_do_and_whatsapp_passes_both() -> None:
    ok = Scenario.model_validate({"name": "s", "messages": {
        "sms": "{creditor}: долг. Звоните 8 800 123-45-67", "viber": "{creditor}: +7 (495) 123-45-67",
        "whatsapp": {"name": "t", "body_params": ["creditor", "amount", "phone_back"]}}})
    from engine.domain.compliance import scenario_problems

    assert scenario_problems(ok) == []
    bad = ok.model_copy(update={"messages": ok.messages.model_copy(update={
        "whatsapp": ok.messages.whatsapp.model_copy(update={"body_params": ["amount"]})})})  # type: ignore[union-attr]
    assert [str(p) for p in scenario_problems(bad)] == [
        "messages.whatsapp.body_params: does not pass the creditor (creditor)",
        "messages.whatsapp.body_params: does not pass a contact phone (phone_back)"]


@pytest.mark.parametrize(("change", "message"), [
    ({"default": "volna/creditor-c"}, "default volna/creditor-c is not in its whitelist"),
    (None, "step creditor: prompt variable {debtor_prompt} has no whitelist"),
])
def test_check_refuses_a_prompt_variable_outside_its_whitelist(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               change: dict[str, Any] | None, message: str) -> None:
    """Acceptance 2: a default outside the whitelist, or a prompt variable with none: the file and where."""
    raw = yaml.safe_load(LAWFUL.format(name="x"))
    if change is None:
        raw["ivr"]["steps"][2]["play"] = ["volna/debt-to", "{debtor_prompt}"]
    else:
        raw["ivr"]["prompt_vars"]["creditor_prompt"] |= change
    code, err = _check(tmp_path, yaml.safe_dump(raw, allow_unicode=True), capsys)
    assert code == 2 and f"{tmp_path / 'scenarios' / 'x.yaml'}: invalid scenario" in err and message in err


def test_volna_run_refuses_an_unlawful_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "x.yaml").write_text(LAWFUL.format(name="x").replace(" Тел. {phone_back}", ""))
    config = tmp_path / "volna.toml"
    config.write_text(f'scenarios_dir = "{tmp_path / "scenarios"}"\n[log]\njson = false\n')
    assert cli.main(["--config", str(config), "run", "--channels", "sms"]) == 2
    assert "messages.sms: gives no contact phone" in capsys.readouterr().err


def test_the_shipped_scenarios_confirm_identity_say_the_date_capture_a_promise_and_record() -> None:
    """Acceptance 3 (the content; the dialplan's lint and the simulator's captures are
    tests/test_dialplan.py and tests/test_sim_ami_captures.py)."""
    from engine.domain.compliance import scenario_problems

    for name, scenario in SHIPPED.items():
        script = scenario.ivr
        assert script is not None and scenario_problems(scenario) == [], name
        kinds = [type(s) for s in script.steps]
        first_disclosure = next(i for i, s in enumerate(script.steps) if script.discloses(s))
        assert kinds.index(ConfirmIdentityStep) < first_disclosure, name
        assert SayDateStep in kinds and script.record == "all", name
        captures = [o.capture for _, m in script.menus() for o in m.options if o.capture is not None]
        assert captures and all(c.date for c in captures), name
        assert scenario.disclosure == "confirmed"
        assert not scenario.counts(Channel.IVR, Outcome.WRONG_PARTY)
    assert any(path.count(".") for s in SHIPPED.values() for path, _ in s.ivr.menus())  # type: ignore[union-attr]
    assert isinstance(SHIPPED["pre_court"].ivr.steps[-1], MenuStep)  # type: ignore[union-attr]
    dialplan = compile_dialplan(SHIPPED)
    assert dialplan.count("MixMonitor(${VOLNA_REC})") == 2 and dialplan.count("UserEvent(VolnaIdentity") == 4


def test_wrong_party_can_never_count() -> None:
    with pytest.raises(ValueError, match="never counts"):
        Scenario.model_validate({"name": "s", "caps_count": {"ivr": ["answered", "wrong_party"]}})


# ---- amounts, dates, digits -------------------------------------------------------------------------


def test_amounts_at_the_boundaries_of_saynumber_are_said() -> None:
    """Acceptance 6: 10⁹ − 1, 10⁹ and 2³¹ (where SayNumber stops, and where atoi overflows) are
    said — as the digit files of ``say.c``'s Russian grammar, with billions of our own."""
    assert speech.number_prompts(10**9 - 1) == [
        "digits/900", "digits/90", "digits/9", "digits/millions", "digits/900", "digits/90", "digits/9",
        "digits/thousands", "digits/900", "digits/90", "digits/9"]
    assert speech.number_prompts(10**9) == ["digits/1", "volna/milliard"]
    assert speech.number_prompts(2**31) == [
        "digits/2", "volna/milliarda", "digits/100", "digits/40", "digits/7", "digits/millions", "digits/400",
        "digits/80", "digits/3", "digits/thousands-i", "digits/600", "digits/40", "digits/8"]
    assert speech.number_prompts(5 * 10**9 + 21_000) == ["digits/5", "volna/milliardov", "digits/20", "digits/1f",
                                                         "digits/thousand"]
    script = SHIPPED["soft_reminder"].ivr
    assert script is not None
    for amount in (10**9 - 1, 10**9, 2**31, "999999999999,99"):
        said = channel_variables(script, {"amount": amount, "due_date": "25.12.2026"})["VOLNA_AMOUNT_SAY"]
        assert said.endswith(("volna/rubley", "volna/kopeek")) and "digits/0" not in said
    with pytest.raises(ValueError, match="not an amount"):
        channel_variables(script, {"amount": 10**12, "due_date": "25.12.2026"})


async def test_the_intake_takes_the_amounts_it_can_say_and_refuses_the_rest(redis: aioredis.Redis,
                                                                            redis_url: str) -> None:
    """Acceptance 6 and issue item 5: the README's account ``7701-123456`` is said (separators are
    not), amounts up to 2³¹ and beyond load; what no step can say is refused at the intake with
    the line, the step and the var."""
    ctx = context(make_settings(redis_url), ScaledClock(0), redis)
    await ctx.waves.create("w1", "c1", date(2026, 12, 1))

    def line(n: int, **vars_: Any) -> dict[str, Any]:
        row = task(n, channel="ivr", scenario="pre_court")
        row["vars"] |= {"account": "7701-123456"} | vars_
        return row

    rows = [line(1, amount=10**9 - 1), line(2, amount=10**9), line(3, amount=2**31), line(4, amount=10**12),
            line(5, account="ЛС-77"), line(6, due_date="завтра"), line(7, creditor_prompt="volna/unknown"),
            {**line(8, account="ЛС-77"), "channel": "sms", "cascade": []},  # an SMS never says the account
            {**line(9, account="ЛС-77"), "channel": "sms", "cascade": ["ivr"]}]
    report = await Intake(ctx).load("w1", lines_of(rows))
    assert report.accepted == 4, report.rejections
    assert [(r.line_no, r.reason) for r in report.rejections] == [
        (4, "vars: step amount: task var 'amount': 1000000000000 is not an amount"),
        (5, "vars: step account: task var 'account': 'ЛС-77' is not digits"),
        (6, "vars: step due: task var 'due_date': 'завтра' is not a date (DD.MM.YYYY or YYYY-MM-DD)"),
        (7, "vars: prompt variable 'creditor_prompt': 'volna/unknown' is not in its whitelist"),
        (9, "vars: step account: task var 'account': 'ЛС-77' is not digits")]


def test_dates_digits_and_the_prompts_a_script_needs() -> None:
    assert speech.date_prompts(date(2026, 12, 25)) == ["volna/date/day-25", "volna/date/month-12"]
    assert speech.parse_date("2026-03-01") == speech.parse_date("01.03.2026") == date(2026, 3, 1)
    assert speech.digit_prompts("77 01/12.3") == ["digits/7", "digits/7", "digits/0", "digits/1", "digits/1",
                                                 "digits/2", "digits/3"]
    need = required_prompts(SHIPPED["soft_reminder"].ivr)  # type: ignore[arg-type]
    # Prompts passed as variables, the digit and unit files of amounts, the date files: all listed.
    assert {"volna/creditor-mosenergosbyt", "volna/creditor-generic", "digits/1f", "digits/thousands-i",
            "volna/milliardov", "volna/rubley", "volna/kopeyka", "volna/date/day-31", "volna/date/month-02",
            "volna/identity-holder-press-1", "volna/promise-enter-date"} <= set(need)
    assert need["volna/date/day-25"] == "двадцать пятого" and need["volna/creditor-mosoblgaz"] == "Мособлгазом"
    assert all(need.values()), [p for p, t in need.items() if not t]  # every shipped prompt says what it says


@pytest.mark.parametrize(("ddmm", "amount", "expected"), [
    ("2512", "1500", {"date": "2026-12-25", "amount": 1500}),
    ("3112", "", {"date": "2026-12-31"}),
    ("3011", "", {"date": "2026-11-30"}),  # yesterday: a slip, not next year
    ("3102", "", {"invalid": "3102", "reason": "no such date"}),
    ("2001", "", {"invalid": "2001", "reason": "more than 30 days ahead"}),
    ("25", "", {"invalid": "25", "reason": "not four digits"}),
])
def test_a_promise_keyed_in(ddmm: str, amount: str, expected: dict[str, Any]) -> None:
    assert promise(ddmm, amount, date(2026, 12, 1), 30) == expected
    assert promise("0501", "", date(2026, 12, 28), 30) == {"date": "2027-01-05"}  # after new year


def test_spoken_names_the_step_and_the_var() -> None:
    script = IvrScript.model_validate(yaml.safe_load(textwrap.dedent("""
        steps:
          - {id: identity, confirm_identity: {}}
          - {id: due, say_date: {var: pay_by}}
    """)))
    assert spoken(script, {"pay_by": "2026-12-25"}) == {"pay_by": ["volna/date/day-25", "volna/date/month-12"]}
    with pytest.raises(ValueError, match="step due: task var 'pay_by' is missing"):
        spoken(script, {})


# ---- recordings ----------------------------------------------------------------------------------


def test_recordings_are_named_from_the_attempt_and_pruned_after_three_years(tmp_path: Path) -> None:
    assert recording_name("2026-12-01.soft", "t:1", 2) == "volna/2026-12-01.soft/t=3A1-2.wav"
    store = tmp_path / "volna"
    old, new = store / "w0" / "t1-1.wav", store / "w1" / "t2-1.wav"
    for path in (old, new):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"RIFF")
    now = time.time()
    os.utime(old, (now - 1097 * 86400, now - 1097 * 86400))
    assert expired([(old, now - 1097 * 86400), (new, now)], now, 1096) == [old]
    assert prune(store, 1096, dry_run=True) == [old] and old.exists()
    assert prune(store, 1096) == [old]
    assert not old.exists() and not old.parent.exists() and new.exists()


def test_recordings_prune_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "volna" / "w1").mkdir(parents=True)
    config = tmp_path / "volna.toml"
    config.write_text(f'[recordings]\ndir = "{tmp_path}"\n[log]\njson = false\n')
    assert cli.main(["--config", str(config), "recordings", "prune", "--dry-run"]) == 0
    assert "0 recordings older than 1096 days" in capsys.readouterr().out
    assert cli.main(["--config", str(config), "recordings", "prune", "--dir", str(tmp_path / "nowhere")]) == 2
    assert "no such directory" in capsys.readouterr().err
    config.write_text(f'[recordings]\ndir = "{tmp_path}"\n[retention]\ninteraction_log_days = 365\n'
                      '[log]\njson = false\n')
    assert cli.main(["--config", str(config), "recordings", "prune"]) == 2
    assert "kept at least 1096 days (3 years, Minjust order No. 134); nothing deleted" in capsys.readouterr().err
