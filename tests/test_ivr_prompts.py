"""``volna scenarios prompts``: every sound file the scenarios need, what is missing from a sounds
directory, and placeholders spoken by espeak-ng and converted by sox (acceptance 4)."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import pytest

from engine.cli import main as cli
from engine.config.scenario_files import load_scenarios
from engine.domain.ivr import required_prompts
from tests.harness import ROOT


def _volna(tmp_path: Path, *args: str) -> int:
    config = tmp_path / "volna.toml"
    config.write_text(f'scenarios_dir = "{ROOT / "scenarios"}"\n[log]\njson = false\n', encoding="utf-8")
    return cli.main(["--config", str(config), "scenarios", "prompts", *args])


def _needed() -> set[str]:
    return {p for s in load_scenarios(ROOT / "scenarios").values() if s.ivr for p in required_prompts(s.ivr)}


def test_an_empty_sounds_directory_lists_everything_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "sounds"
    empty.mkdir()
    assert _volna(tmp_path, "--sounds", str(empty)) == 3
    out = capsys.readouterr().out.splitlines()
    needed = _needed()
    assert out[0] == f"0 of {len(needed)} prompts present in {empty}; missing {len(needed)}:"
    listed = {line.split()[0].removeprefix("ru/") for line in out[1:]}
    assert listed == needed
    # Prompts passed as variables and the files amounts, accounts and dates are composed of, too.
    assert {"volna/creditor-mosvodokanal", "digits/2f", "digits/million-a", "volna/milliard",
            "volna/date/month-12"} <= listed
    assert "  ru/volna/creditor-mosvodokanal  (pre_court, soft_reminder)  Мосводоканалом" in out
    assert _volna(tmp_path, "--sounds", str(empty), "--json") == 3
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["missing"]) == needed and {p["prompt"] for p in doc["prompts"]} == needed


def test_synth_writes_every_prompt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are not installed (ops/system-deps.sh installs them)")
    out = tmp_path / "sounds"
    assert _volna(tmp_path, "--synth", str(out), "--sounds", str(out)) == 0
    printed = capsys.readouterr().out
    needed = _needed()
    assert f"synthesized {len(needed)} prompts into {out}" in printed
    assert f"{len(needed)} of {len(needed)} prompts present in {out}; missing 0:" in printed
    files = sorted((out / "ru").rglob("*.wav"))
    assert {str(f.relative_to(out / "ru").with_suffix("")) for f in files} == needed
    with wave.open(str(out / "ru" / "volna" / "date" / "day-25.wav")) as w:  # what Asterisk plays as is
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2) and w.getnframes() > 2000
    # Run again: what is there is kept.
    assert _volna(tmp_path, "--synth", str(out)) == 0
    assert f"synthesized 0 prompts into {out} ({len(needed)} already there)" in capsys.readouterr().out


def test_synth_without_espeak_says_how_to_get_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _volna(tmp_path, "--synth", str(tmp_path / "sounds")) == 2
    assert capsys.readouterr().err.strip() == ("volna: --synth needs espeak-ng and sox (Debian: apt-get install "
                                               "espeak-ng sox; ops/system-deps.sh installs them)")


def test_synth_keeps_a_prompt_there_in_another_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The Russian sound pack ships ``digits/1.gsm``: a placeholder ``digits/1.wav`` beside it would be
    played instead (Asterisk picks the format cheapest to transcode)."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are not installed (ops/system-deps.sh installs them)")
    out = tmp_path / "sounds"
    (out / "ru" / "digits").mkdir(parents=True)
    (out / "ru" / "digits" / "1.gsm").write_bytes(b"\xd8" * 33)
    (out / "volna").mkdir()
    (out / "volna" / "goodbye.ulaw").write_bytes(b"\xff" * 160)  # language-less, found too
    assert _volna(tmp_path, "--synth", str(out)) == 0
    needed = _needed()
    assert f"synthesized {len(needed) - 2} prompts into {out} (2 already there)" in capsys.readouterr().out
    assert not (out / "ru" / "digits" / "1.wav").exists() and not (out / "ru" / "volna" / "goodbye.wav").exists()
