"""Who may import whom (README, "The code"): the import-linter contracts in pyproject.toml hold,
and they do catch a forbidden import (checked on a copy of the packages with one added)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def _copy(tmp_path: Path) -> Path:
    for name in ("engine", "connectors", "simulators"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "ui", "lua"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_every_contract_is_kept() -> None:
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "BROKEN" not in out.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    # the engine's dispatcher importing a concrete connector
    ("engine/dispatch/loop.py", "from connectors.smpp import SmppConnector", "The engine imports no connector"),
    # a connector reaching into the engine's store
    ("connectors/smpp/connector.py", "from engine.store import keys", "Connectors implement the engine's port"),
    # the domain importing a layer above it
    ("engine/domain/models.py", "from engine.waves import control", "The engine's layers import downwards only"),
    # a simulator importing the engine (a codec bug must not sit on both ends of the wire)
    ("simulators/smsc/codec.py", "from engine.domain import outcomes", "Simulators import neither"),
    # a cycle hidden in a function
    ("engine/store/keys.py", "def _late() -> None:\n    from engine.store import schema", "No import cycles"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    root = _copy(tmp_path)
    path = root / module
    path.write_text(path.read_text() + "\n\n" + line + "\n")
    out = _lint(root)
    assert out.returncode != 0
    broken = [ln for ln in out.stdout.splitlines() if "BROKEN" in ln]
    assert any(ln.startswith(contract) for ln in broken), out.stdout[-3000:]
