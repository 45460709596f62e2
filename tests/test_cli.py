"""The command line's own dispatch (engine/cli/main.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from engine.cli import main as cli


def test_a_broken_command_module_is_an_error_not_a_missing_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """``volna api`` whose module fails to import must say so (a broken install), not fall through to
    "invalid choice" as the pre-dispatch once did by swallowing the ImportError."""
    real = importlib.import_module

    def broken(name: str, package: str | None = None) -> object:
        if name == "engine.api.cli":
            raise ImportError("aiohttp is missing")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ImportError, match="aiohttp is missing"):
        cli.main(["api", "--help"])


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in ("load", "wave", "run", "stoplist", "results", "scenarios", "sim", "api", "token", "demo"):
        assert f"    {name} " in out or f"    {name}\n" in out, name


def test_a_command_with_its_own_parser_after_global_options_is_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "volna.toml"
    config.write_text('[log]\njson = false\n')
    assert cli.main(["--config", str(config), "api"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["volna: `api` takes its own options: put it first (volna api --help)"]
