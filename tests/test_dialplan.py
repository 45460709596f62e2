"""IVR scripts → Asterisk dialplan: the schema, the amount in Russian, and asterisklint on the result."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from connectors.ami.dialplan import compile_dialplan, write_dialplan
from connectors.ami.variables import channel_variables, ivr_entry, script_of
from engine.domain.ivr import IvrScript, MenuStep, plural_form, split_amount
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
ASTERISKLINT = Path(sys.executable).with_name("asterisklint")

#: Two scripts that use every kind of step: a soft reminder, and a pre-court notice with a nested
#: menu, a say_digits step, an answering-machine message and a prompt variable.
SOFT_REMINDER = """
max_duration_s: 180
amd: {on_machine: hangup}
operator: {queue: debt-operators, timeout_s: 60}
steps:
  - {id: greeting, play: [volna/greeting-soft]}
  - {id: identity, confirm_identity: {}}
  - id: amount
    say_amount: {var: amount, before: [volna/your-debt-is]}
  - id: due
    say_date: {var: due_date, before: [volna/pay-by]}
  - id: main
    menu:
      options:
        - {key: "1", action: operator, prompt: [volna/press-1-operator]}
        - {key: "2", action: sms_payment_details, prompt: [volna/press-2-sms], confirm: [volna/sms-sent]}
        - {key: "3", action: promise_to_pay, prompt: [volna/press-3-promise], confirm: [volna/thanks],
           capture: {amount: [volna/promise-enter-amount]}}
        - {key: "0", action: repeat, prompt: [volna/press-0-repeat]}
        - {key: "9", action: opt_out, prompt: [volna/press-9-optout], confirm: [volna/optout-done]}
goodbye: [volna/goodbye]
"""

PRE_COURT = """
max_duration_s: 240
ring_timeout_s: 35
record: operator
amd:
  on_machine: message
  message: [volna/pre-court-machine]
  total_analysis_ms: 4000
  notsure: machine
  initial_silence: machine
operator: {queue: pre-court-operators, timeout_s: 90, unavailable: [volna/operator-busy-callback]}
variables: [due_date]
prompt_vars:
  creditor_prompt: {allowed: [volna/creditor-a, volna/creditor-b]}
steps:
  - {id: notice, play: [volna/pre-court-greeting]}
  - {id: identity, confirm_identity: {prompt: [volna/if-you-are-holder, volna/press-1], key: "1"}}
  - {id: creditor, play: [volna/debt-to, "{creditor_prompt}"]}
  - id: account
    say_digits: {var: account, before: [volna/account-number]}
  - id: amount
    say_amount: {var: amount, before: [volna/debt-amount], after: [volna/pre-court-consequences]}
  - id: main
    menu:
      intro: [volna/menu-intro]
      timeout_s: 6
      attempts: 3
      after_choice: next
      options:
        - {key: "1", action: operator, prompt: [volna/press-1-operator]}
        - key: "2"
          action: menu
          prompt: [volna/press-2-pay]
          menu:
            options:
              - {key: "1", action: sms_payment_details, prompt: [volna/pay-1-sms], confirm: [volna/sms-sent]}
              - {key: "2", action: promise_to_pay, prompt: [volna/pay-2-promise], confirm: [volna/promise-noted],
                 capture: {date: [volna/promise-enter-date]}}
        - {key: "*", action: repeat, prompt: [volna/press-star-repeat]}
        - {key: "9", action: opt_out, prompt: [volna/press-9-optout], confirm: [volna/optout-done]}
  - {id: closing, play: [volna/pre-court-closing]}
goodbye: [volna/goodbye]
"""


def _scenarios(**scripts: str | None) -> dict[str, SimpleNamespace]:
    return {name: SimpleNamespace(name=name, ivr=None if s is None else yaml.safe_load(s))
            for name, s in scripts.items()}


def _lint(directory: Path, include: str) -> list[str]:
    """``asterisklint dialplan-check`` over a minimal config tree including ``include``; its issues."""
    (directory / "extensions.conf").write_text(
        f"[general]\nstatic=yes\nwriteprotect=yes\n\n[globals]\n\n#include {include}\n", encoding="utf-8"
    )
    proc = subprocess.run([str(ASTERISKLINT), "dialplan-check", "extensions.conf"], cwd=directory,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "ALINT_IGNORE": ""})
    issues = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert (proc.returncode == 0) == (not issues), issues
    return issues


def _only_amd_missing(issues: list[str]) -> list[str]:
    """asterisklint 0.4 has no table entry for app_amd's ``AMD()``: the one issue we accept."""
    return [i for i in issues if "E_APP_MISSING: app 'AMD' does not exist" not in i]


def test_examples_compile_to_one_context_each() -> None:
    text = compile_dialplan(_scenarios(soft_reminder=SOFT_REMINDER, pre_court=PRE_COURT, sms_only=None))
    assert "[volna-soft_reminder]" in text and "[volna-pre_court]" in text and "sms_only" not in text
    assert text.index("[volna-pre_court]") < text.index("[volna-soft_reminder]") < text.index("[volna-play]")
    assert "[volna-inbound]" in text and "Queue(debt-callbacks,,,,300)" in text
    for name in ("VolnaStep", "VolnaKey", "VolnaAction", "VolnaAmd", "VolnaQueue", "VolnaEnd", "VolnaIdentity",
                 "VolnaOffer", "VolnaPromise", "VolnaPrompt", "VolnaRecording"):
        assert f"UserEvent({name},Call: ${{VOLNA_CALL}},Task: ${{VOLNA_TASK}}" in text, name
    # The operator is offered (prompt) and honoured (key) only when the core allowed it and an agent
    # beyond the reserve is ready now.
    assert '"${VOLNA_DIGIT}${VOLNA_OFFER}" = "11"' in text
    assert 'GotoIf($["${VOLNA_CONV_OK}" != "1"]?main__ask)' in text
    assert "GotoIf($[0${QUEUE_MEMBER(debt-operators,ready)} <= 0${VOLNA_OP_RESERVE}]?main__ask)" in text
    assert "Read(VOLNA_DIGIT,volna/menu-intro&volna/press-2-pay&" in text
    # Amounts, accounts and dates: composed file lists played by the subroutine, reported when a file fails.
    assert "Gosub(volna-play,s,1(volna/debt-amount&${VOLNA_AMOUNT_SAY}&volna/pre-court-consequences,amount,1))" in text
    assert "Gosub(volna-play,s,1(volna/account-number&${VOLNA_ACCOUNT_SAY},account,1))" in text
    assert "Gosub(volna-play,s,1(volna/pay-by&${VOLNA_DUE_DATE_SAY},due,1))" in text
    assert "Gosub(volna-play,s,1(volna/debt-to&${VOLNA_CREDITOR_PROMPT},creditor,1))" in text
    assert 'GotoIf($["${PLAYBACKSTATUS}" = "SUCCESS"]?next)' in text
    assert "SayNumber" not in text and "SayDigits" not in text
    # Identity before anything else; a wrong key or none ends the call.
    assert "Read(VOLNA_DIGIT,volna/if-you-are-holder&volna/press-1,1,,1,6)" in text
    assert "Status: CONFIRMED" in text and '${IF($["${VOLNA_DIGIT}" = ""]?NONE:WRONG)}' in text
    # AMD: a silent person and NOTSURE are a person unless the script says machine.
    soft, court = text.split("[volna-soft_reminder]")[1], text.split("[volna-soft_reminder]")[0]
    assert '"${AMDCAUSE:0:14}" = "INITIALSILENCE"]?start)' in soft and 'NOTSURE"]?start)' in soft
    assert "INITIALSILENCE" not in court and 'NOTSURE"]?machine)' in court
    assert "AMD(,,,4000)" in court and "Queue(pre-court-operators,,,,90)" in text
    # Recording: from the answer by default; only before the queue with record: operator.
    assert soft.index("MixMonitor(${VOLNA_REC})") < soft.index("AMD(")
    assert court.index("MixMonitor(${VOLNA_REC})") > court.index("Queue(pre-court-operators")  - 400
    assert court.count("MixMonitor(${VOLNA_REC})") == 1 and court.index("AMD(") < court.index("MixMonitor(")
    # Nested menu and the promise capture.
    assert "UserEvent(VolnaKey,Call: ${VOLNA_CALL},Task: ${VOLNA_TASK},Step: main.2,Digit: ${VOLNA_DIGIT})" in text
    assert "Read(VOLNA_PDATE,volna/promise-enter-date,4,,1,8)" in text
    assert "Read(VOLNA_PAMT,volna/promise-enter-amount,9,,1,8)" in text
    # Repeat replays from the step after the identity check.
    assert "?end:creditor)" in court and "?end:amount)" in soft
    assert "Set(TIMEOUT(absolute)=240)" in text and "Set(CHANNEL(language)=ru)" in text
    assert not text.endswith("\n\n")


def test_dialplan_passes_asterisklint(tmp_path: Path) -> None:
    (tmp_path / "extensions_volna.conf").write_text(
        compile_dialplan(_scenarios(soft_reminder=SOFT_REMINDER, pre_court=PRE_COURT)), encoding="utf-8")
    issues = _lint(tmp_path, "extensions_volna.conf")
    assert _only_amd_missing(issues) == []
    assert len(issues) == 2  # one AMD() per context


def test_dialplan_without_amd_passes_asterisklint_clean(tmp_path: Path) -> None:
    script = yaml.safe_load(SOFT_REMINDER)
    del script["amd"]
    (tmp_path / "extensions_volna.conf").write_text(
        compile_dialplan({"plain": SimpleNamespace(name="plain", ivr=script)}), encoding="utf-8")
    assert _lint(tmp_path, "extensions_volna.conf") == []


def test_shipped_dialplan_passes_asterisklint(tmp_path: Path) -> None:
    shutil.copy(ROOT / "ops" / "asterisk" / "extensions_volna.conf", tmp_path / "extensions_volna.conf")
    assert _only_amd_missing(_lint(tmp_path, "extensions_volna.conf")) == []


def test_asterisklint_catches_a_broken_dialplan(tmp_path: Path) -> None:
    """The check is not vacuous: a typo in an application name is reported."""
    text = compile_dialplan(_scenarios(soft_reminder=SOFT_REMINDER)).replace("Playback(", "Playbak(", 1)
    (tmp_path / "extensions_volna.conf").write_text(text, encoding="utf-8")
    assert any("Playbak" in i for i in _lint(tmp_path, "extensions_volna.conf"))


def test_write_dialplan_keeps_an_existing_manager_conf(tmp_path: Path) -> None:
    paths = write_dialplan(_scenarios(soft_reminder=SOFT_REMINDER), tmp_path)
    assert [p.name for p in paths] == ["extensions_volna.conf", "manager.conf"]
    manager = (tmp_path / "manager.conf").read_text(encoding="utf-8")
    assert "secret = CHANGE_ME" in manager and "read = call,user,system,agent" in manager
    (tmp_path / "manager.conf").write_text("; mine\n", encoding="utf-8")
    paths = write_dialplan(_scenarios(pre_court=PRE_COURT), tmp_path)
    assert [p.name for p in paths] == ["extensions_volna.conf"]
    assert (tmp_path / "manager.conf").read_text(encoding="utf-8") == "; mine\n"
    assert "[volna-pre_court]" in (tmp_path / "extensions_volna.conf").read_text(encoding="utf-8")


def test_shipped_manager_conf_has_no_secret() -> None:
    text = (ROOT / "ops" / "asterisk" / "manager.conf").read_text(encoding="utf-8")
    secrets = [line for line in text.splitlines() if line.strip().startswith("secret")]
    assert secrets == ["secret = CHANGE_ME"]


@pytest.mark.parametrize(("value", "expected"), [
    (1234.5, (1234, 50)), ("1 234,56", (1234, 56)), ("0.005", (0, 1)), (0, (0, 0)), ("17", (17, 0)),
    ("99.999", (100, 0)), ("999999999999.99", (999_999_999_999, 99)),
])
def test_split_amount(value: object, expected: tuple[int, int]) -> None:
    assert split_amount(value) == expected


@pytest.mark.parametrize("value", ["", "abc", "-5", "1e20", "NaN", "1000000000000"])
def test_split_amount_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        split_amount(value)


def test_plural_forms() -> None:
    assert [plural_form(n) for n in (1, 21, 101, 2, 3, 4, 22, 0, 5, 11, 12, 14, 111, 25)] == [
        "one", "one", "one", "few", "few", "few", "few", "many", "many", "many", "many", "many", "many", "many"]


def test_channel_variables() -> None:
    script = IvrScript.model_validate(yaml.safe_load(PRE_COURT))
    got = channel_variables(script, {"amount": "1 521,01", "account": "0012-345", "due_date": "2025-12-01",
                                     "address": "not passed", "creditor_prompt": "volna/creditor-b"})
    assert got == {
        "VOLNA_DUE_DATE": "2025-12-01",
        "VOLNA_ACCOUNT_SAY": "digits/0&digits/0&digits/1&digits/2&digits/3&digits/4&digits/5",
        "VOLNA_AMOUNT_SAY": "digits/1f&digits/thousand&digits/500&digits/20&digits/1&volna/rubl&digits/1f"
                            "&volna/kopeyka",
        "VOLNA_CREDITOR_PROMPT": "volna/creditor-b",
    }
    with pytest.raises(ValueError, match="amount"):
        channel_variables(script, {"account": "1", "creditor_prompt": "volna/creditor-a"})
    with pytest.raises(ValueError, match="digits"):
        channel_variables(script, {"amount": 1, "account": "ЛС-12", "creditor_prompt": "volna/creditor-a"})
    with pytest.raises(ValueError, match="whitelist"):
        channel_variables(script, {"amount": 1, "account": "12", "creditor_prompt": "volna/other"})
    with pytest.raises(ValueError, match="no default"):
        channel_variables(script, {"amount": 1, "account": "12"})


@pytest.mark.parametrize(("change", "message"), [
    ({"operator": None}, "operator.queue"),
    ({"steps": [{"id": "a", "play": ["x"]}, {"id": "a", "play": ["y"]}]}, "unique"),
    ({"steps": [{"id": "end", "play": ["x"]}]}, "reserved"),
    ({"steps": [{"id": "a", "play": ["x"], "menu": {"options": []}}]}, "exactly one"),
    ({"steps": [{"id": "a", "play": ["x,Hangup()"]}]}, "pattern"),
    ({"steps": [{"id": "a", "menu": {"options": [{"key": "#", "action": "repeat"}]}}]}, "key"),
    ({"steps": [{"id": "a", "menu": {"options": [{"key": "1", "action": "repeat"},
                                                 {"key": "1", "action": "opt_out"}]}}]}, "unique"),
    ({"steps": [{"id": "a", "play": ["{who}"]}]}, "has no whitelist"),
    ({"prompt_vars": {"c": {"allowed": ["volna/a"], "default": "volna/b"}}}, "not in its whitelist"),
    ({"steps": [{"id": "a", "menu": {"options": [{"key": "1", "action": "menu"}]}}]}, "go together"),
    ({"steps": [{"id": "a", "menu": {"options": [{"key": "1", "action": "opt_out",
                                                  "capture": {}}]}}]}, "promise_to_pay"),
    ({"steps": [{"id": "wrong", "play": ["x"]}]}, "reserved"),
])
def test_invalid_scripts(change: dict, message: str) -> None:
    raw = {**yaml.safe_load(SOFT_REMINDER), **change}
    with pytest.raises(ConfigError, match=message):
        script_of(SimpleNamespace(name="bad", ivr=raw))


def test_entry_and_context_collision() -> None:
    scenarios = _scenarios(soft_reminder=SOFT_REMINDER)
    assert ivr_entry(scenarios["soft_reminder"]) == ("volna-soft_reminder", "s", 1)
    assert ivr_entry(SimpleNamespace(name="x", ivr=None)) is None
    script = IvrScript.model_validate(yaml.safe_load(SOFT_REMINDER))
    assert isinstance(script.steps[4], MenuStep) and script_of(SimpleNamespace(name="y", ivr=script)) is script
    clash = {"a.b": SimpleNamespace(name="a.b", ivr=yaml.safe_load(SOFT_REMINDER)),
             "a_b": SimpleNamespace(name="a_b", ivr=yaml.safe_load(SOFT_REMINDER))}
    with pytest.raises(ConfigError, match="one context"):
        compile_dialplan(clash)


def test_scenario_model_carries_a_script() -> None:
    from engine.domain.scenarios import Scenario

    scenario = Scenario.model_validate({"name": "soft_reminder", "ivr": yaml.safe_load(SOFT_REMINDER)})
    assert compile_dialplan({"soft_reminder": scenario}).count("[volna-soft_reminder]") == 1


def test_shipped_scenarios_compile_to_the_committed_dialplan(tmp_path: Path) -> None:
    """`volna scenarios compile` of scenarios/ gives ops/asterisk/extensions_volna.conf, which lints."""
    from engine.config.scenario_files import load_scenarios

    root = Path(__file__).resolve().parent.parent
    scenarios = load_scenarios(root / "scenarios")
    assert all(s.ivr is not None for s in scenarios.values())
    compiled = compile_dialplan(scenarios)
    assert compiled == (root / "ops" / "asterisk" / "extensions_volna.conf").read_text(encoding="utf-8")
    (tmp_path / "extensions_volna.conf").write_text(compiled, encoding="utf-8")
    assert _only_amd_missing(_lint(tmp_path, "extensions_volna.conf")) == []
