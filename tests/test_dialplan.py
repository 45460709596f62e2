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

#: The ``ivr:`` blocks proposed for scenarios/soft_reminder.yaml and scenarios/pre_court.yaml.
SOFT_REMINDER = """
max_duration_s: 180
amd: {on_machine: hangup}
operator: {queue: debt-operators, timeout_s: 60}
steps:
  - {id: greeting, play: [volna/greeting-soft]}
  - id: amount
    say_amount: {var: amount, before: [volna/your-debt-is]}
  - id: main
    menu:
      options:
        - {key: "1", action: operator, prompt: [volna/press-1-operator]}
        - {key: "2", action: sms_payment_details, prompt: [volna/press-2-sms], confirm: [volna/sms-sent]}
        - {key: "3", action: promise_to_pay, prompt: [volna/press-3-promise], confirm: [volna/thanks]}
        - {key: "0", action: repeat, prompt: [volna/press-0-repeat]}
        - {key: "9", action: opt_out, prompt: [volna/press-9-optout], confirm: [volna/optout-done]}
goodbye: [volna/goodbye]
"""

PRE_COURT = """
max_duration_s: 240
ring_timeout_s: 35
amd:
  on_machine: message
  message: [volna/pre-court-machine]
  total_analysis_ms: 4000
operator: {queue: pre-court-operators, timeout_s: 90, unavailable: [volna/operator-busy-callback]}
variables: [due_date]
steps:
  - {id: notice, play: [volna/pre-court-notice]}
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
        - {key: "2", action: sms_payment_details, prompt: [volna/press-2-sms], confirm: [volna/sms-sent]}
        - {key: "3", action: promise_to_pay, prompt: [volna/press-3-promise], confirm: [volna/promise-noted]}
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
    assert text.index("[volna-pre_court]") < text.index("[volna-soft_reminder]")
    for name in ("VolnaStep", "VolnaKey", "VolnaAction", "VolnaAmd", "VolnaQueue", "VolnaEnd"):
        assert f"UserEvent({name},Call: ${{VOLNA_CALL}},Task: ${{VOLNA_TASK}}" in text
    # The operator is offered (prompt) and honoured (key) only with room in the conversation cap.
    assert '"${VOLNA_DIGIT}${VOLNA_CONV_OK}" = "11"' in text
    assert 'GotoIf($["${VOLNA_CONV_OK}" = "1"]?main__op)' in text
    assert "Read(VOLNA_DIGIT,volna/menu-intro&volna/press-2-sms&" in text
    assert "SayNumber(${VOLNA_AMOUNT_KOP},f)" in text and "SayDigits(${VOLNA_ACCOUNT})" in text
    assert "AMD(,,,4000)" in text and "Queue(pre-court-operators,,,,90)" in text
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
    assert "secret = CHANGE_ME" in manager and "read = call,user" in manager
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
    ("99.999", (100, 0)),
])
def test_split_amount(value: object, expected: tuple[int, int]) -> None:
    assert split_amount(value) == expected


@pytest.mark.parametrize("value", ["", "abc", "-5", "1e20", "NaN"])
def test_split_amount_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        split_amount(value)


def test_plural_forms() -> None:
    assert [plural_form(n) for n in (1, 21, 101, 2, 3, 4, 22, 0, 5, 11, 12, 14, 111, 25)] == [
        "one", "one", "one", "few", "few", "few", "few", "many", "many", "many", "many", "many", "many", "many"]


def test_channel_variables() -> None:
    script = IvrScript.model_validate(yaml.safe_load(PRE_COURT))
    got = channel_variables(script, {"amount": "1 521,01", "account": "0012345", "due_date": "2025-12-01",
                                     "address": "not passed"})
    assert got == {
        "VOLNA_DUE_DATE": "2025-12-01", "VOLNA_ACCOUNT": "0012345", "VOLNA_AMOUNT": "1 521,01",
        "VOLNA_AMOUNT_RUB": "1521", "VOLNA_AMOUNT_KOP": "1",
        "VOLNA_AMOUNT_RUB_UNIT": "volna/rubl", "VOLNA_AMOUNT_KOP_UNIT": "volna/kopeyka",
    }
    with pytest.raises(ValueError, match="amount"):
        channel_variables(script, {"account": "1"})
    with pytest.raises(ValueError, match="digits"):
        channel_variables(script, {"amount": 1, "account": "12-34"})


@pytest.mark.parametrize(("change", "message"), [
    ({"operator": None}, "operator.queue"),
    ({"steps": [{"id": "a", "play": ["x"]}, {"id": "a", "play": ["y"]}]}, "unique"),
    ({"steps": [{"id": "end", "play": ["x"]}]}, "reserved"),
    ({"steps": [{"id": "a", "play": ["x"], "menu": {"options": []}}]}, "exactly one"),
    ({"steps": [{"id": "a", "play": ["x,Hangup()"]}]}, "pattern"),
    ({"steps": [{"id": "a", "menu": {"options": [{"key": "#", "action": "repeat"}]}}]}, "key"),
    ({"steps": [{"id": "a", "menu": {"options": [{"key": "1", "action": "repeat"},
                                                 {"key": "1", "action": "opt_out"}]}}]}, "unique"),
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
    assert isinstance(script.steps[2], MenuStep) and script_of(SimpleNamespace(name="y", ivr=script)) is script
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
