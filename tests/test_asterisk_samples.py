"""The Asterisk files shipped in ops/asterisk (docs/getting-started.md): the sample extensions.conf
with the compiled dialplan passes asterisklint; pjsip.conf, queues.conf, manager.conf and amd.conf
parse as Asterisk configuration; and the files agree with each other and with
ops/volna.example.toml (the trunk Volna dials, the queues the scenarios use, the inbound context,
the AMI account and its event classes)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.test_dialplan import ASTERISKLINT, _only_amd_missing

ROOT = Path(__file__).resolve().parent.parent
ASTERISK = ROOT / "ops" / "asterisk"
EXAMPLE = ROOT / "ops" / "volna.example.toml"

#: asterisklint's config parser on one file: every message it raises, one per line.
_PARSE = """
import sys
from asterisklint import FileConfigParser
parser = FileConfigParser()
parser.include(sys.argv[1])
for _ in parser:
    pass
"""


def _config_issues(path: Path) -> list[str]:
    """What asterisklint says of a configuration file, less what is style or its own limits:
    spaces around ``=`` (Asterisk accepts them) and template use (``[name](template)``), which
    it does not implement and reports as a bad line."""
    proc = subprocess.run([sys.executable, "-c", _PARSE, path.name], cwd=path.parent, capture_output=True,
                          text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = path.read_text(encoding="utf-8").splitlines()
    issues = []
    for issue in (proc.stdout + proc.stderr).splitlines():
        if not issue.strip() or "W_WSH_VARSET" in issue or "I_NOTIMPL_TEMPLATES" in issue:
            continue
        match = re.match(rf"{re.escape(path.name)}:(\d+) E_CONF_BAD_LINE", issue)
        if match and re.match(r"^\[[\w-]+\]\([\w!,-]+\)", lines[int(match.group(1)) - 1]):
            continue
        issues.append(issue)
    return issues


def _sections(path: Path) -> dict[str, list[dict[str, list[str]]]]:
    """``name → [its keys and values]`` (a name may hold several sections: pjsip's types)."""
    out: dict[str, list[dict[str, list[str]]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if match := re.match(r"^\[([^\]]+)\]", line):
            current = {}
            out.setdefault(match.group(1), []).append(current)
        elif current is not None and (match := re.match(r"^([\w-]+)\s*=>?\s*(.*)$", line)):
            current.setdefault(match.group(1), []).append(match.group(2).strip())
    return out


def test_the_sample_extensions_conf_with_volnas_dialplan_passes_asterisklint(tmp_path: Path) -> None:
    for name in ("extensions.conf", "extensions_volna.conf"):
        shutil.copy(ASTERISK / name, tmp_path / name)
    assert _only_amd_missing(_lint_tree(tmp_path)) == []
    # Not vacuous: a Goto to a context that is not there is reported.
    text = (tmp_path / "extensions.conf").read_text(encoding="utf-8")
    (tmp_path / "extensions.conf").write_text(text.replace("Goto(volna-inbound,", "Goto(volna-inbund,"),
                                              encoding="utf-8")
    assert any("volna-inbund" in i for i in _lint_tree(tmp_path))


def _lint_tree(directory: Path) -> list[str]:
    """``asterisklint dialplan-check`` of ``directory/extensions.conf`` as Asterisk would read it."""
    proc = subprocess.run([str(ASTERISKLINT), "dialplan-check", "extensions.conf"], cwd=directory,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "ALINT_IGNORE": ""})
    issues = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert (proc.returncode == 0) == (not issues), issues
    return issues


@pytest.mark.parametrize("name", ["pjsip.conf", "queues.conf", "manager.conf", "amd.conf"])
def test_the_configuration_samples_parse(name: str) -> None:
    assert _config_issues(ASTERISK / name) == []


def test_a_broken_configuration_line_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "pjsip.conf"
    broken.write_text((ASTERISK / "pjsip.conf").read_text(encoding="utf-8").replace("type = aor", "type aor"),
                      encoding="utf-8")
    assert any("E_CONF_BAD_LINE" in i for i in _config_issues(broken))


def test_the_samples_agree_with_each_other_and_with_the_example() -> None:
    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    ivr = example["channels"]["ivr"]["connector"]
    dialplan = (ASTERISK / "extensions_volna.conf").read_text(encoding="utf-8")
    contexts = set(re.findall(r"^\[([\w-]+)\]", dialplan, flags=re.M))
    pjsip, queues, manager = (_sections(ASTERISK / n) for n in ("pjsip.conf", "queues.conf", "manager.conf"))
    sample = _sections(ASTERISK / "extensions.conf")

    # Every queue the compiled scenarios put a debtor in, or ask about, is in queues.conf.
    used = set(re.findall(r"Queue\(([\w-]+)", dialplan)) | set(re.findall(r"QUEUE_MEMBER\(([\w-]+)", dialplan))
    assert used and used <= {q for q in queues if q != "general"}, used - set(queues)

    # The trunk Volna dials is a pjsip endpoint; calls from it reach the inbound context Volna follows.
    for server in ivr["servers"]:
        for trunk in server["trunks"]:
            endpoint = re.fullmatch(r"PJSIP/\{number\}@([\w-]+)", trunk["dial"])
            assert endpoint, trunk["dial"]
            found = [s for s in pjsip.get(endpoint.group(1), []) if s.get("type") == ["endpoint"]]
            assert found, f"pjsip.conf has no endpoint {endpoint.group(1)}"
            context = found[0]["context"][0]
            assert context in sample, f"extensions.conf has no [{context}]"
            assert all("Goto(volna-inbound," in e for e in sample[context][0]["exten"])
    assert set(ivr["inbound_contexts"]) <= contexts

    # The AMI account exists and may read every event class the connector logs in for.
    for server in ivr["servers"]:
        account = manager[server["username"]][0]
        assert set(ivr["events"].split(",")) <= set(account["read"][0].split(","))
        assert server["port"] == int(manager["general"][0]["port"][0])

    # No real secret ships.
    assert [s["password"] for s in pjsip["trunk-a-auth"]] == [["CHANGE_ME"]]


#: The ``digits/`` files of Asterisk's Russian core sounds 1.6.1 (asterisk-core-sounds-ru-gsm,
#: ``ru_RU_f_IvrvoiceRU/digits/``), of those the engine composes amounts, accounts and dates from.
PACK_RU_DIGITS = {f"digits/{n}" for n in [*range(21), 30, 40, 50, 60, 70, 80, 90, "thousand", "million"]}


def test_the_getting_started_prompt_lists_are_the_shipped_scenarios() -> None:
    from engine.config.scenario_files import load_scenarios
    from engine.domain.ivr import required_prompts

    needed: dict[str, tuple[str, set[str]]] = {}
    for name, scenario in load_scenarios(ROOT / "scenarios").items():
        if scenario.ivr is not None:
            for prompt, text in required_prompts(scenario.ivr).items():
                needed.setdefault(prompt, (text, set()))[1].add(name)
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    table = page.split("<!-- prompts:", 1)[1].split("<!-- /prompts -->", 1)[0]
    rows = {m[0]: (m[1], set(m[2].split(", "))) for m in re.findall(r"^\| `([^`]+)` \| (.*?) \| (.*?) \|$", table,
                                                                      flags=re.M)}
    own = {p: v for p, v in needed.items() if not p.startswith(("digits/", "volna/date/"))}
    assert rows == own
    digits = {p for p in needed if p.startswith("digits/")}
    dates = {p for p in needed if p.startswith("volna/date/")}
    assert (len(needed), len(digits), len(dates), len(own)) == (130, 45, 43, 42)
    assert digits & PACK_RU_DIGITS == PACK_RU_DIGITS and len(PACK_RU_DIGITS) == 30
    not_in_pack = "`digits/1f`, `digits/2f`, `digits/100` … `digits/900`, `digits/thousands`, `digits/thousands-i`, " \
                  "`digits/millions`, `digits/million-a` | 15 |"
    assert not_in_pack in page
    assert digits - PACK_RU_DIGITS == {"digits/1f", "digits/2f", "digits/thousands", "digits/thousands-i",
                                       "digits/millions", "digits/million-a", *(f"digits/{h}00" for h in range(1, 10))}
