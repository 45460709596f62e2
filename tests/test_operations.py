"""The systemd units in ops/systemd and docs/operations.md agree (issue 17): every unit is described
there with the user, the folders and the files it uses; and the units pass ``systemd-analyze
verify`` (their keys and values are what systemd reads)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "ops" / "systemd").iterdir())
PAGE = ROOT / "docs" / "operations.md"
INSTALLED = "/opt/volna/.venv/bin/volna"


def _verify(directory: Path) -> list[str]:
    """``systemd-analyze verify`` of every unit in ``directory``; what it says."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    units = sorted(str(p) for p in directory.iterdir())
    proc = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=60)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


def _copies(tmp_path: Path) -> Path:
    """The units with this venv's ``volna`` in place of the installed one (verify checks that the
    program exists)."""
    out = tmp_path / "units"
    out.mkdir()
    volna = str(Path(sys.executable).with_name("volna"))
    for unit in UNITS:
        (out / unit.name).write_text(unit.read_text(encoding="utf-8").replace(INSTALLED, volna), encoding="utf-8")
    return out


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    assert _verify(_copies(tmp_path)) == []


def test_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    units = _copies(tmp_path)
    api = units / "volna-api.service"
    api.write_text(api.read_text(encoding="utf-8").replace("KillSignal=", "KilSignal="), encoding="utf-8")
    assert any("KilSignal" in line for line in _verify(units))


def _values(unit: Path, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit.read_text(encoding="utf-8"), flags=re.M)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_the_operations_page_describes_the_unit_and_what_it_uses(unit: Path) -> None:
    page = PAGE.read_text(encoding="utf-8")
    name = unit.name.removesuffix(".service").removesuffix(".timer").removesuffix(".target").rstrip("@")
    assert name in page, f"docs/operations.md does not describe {unit.name}"
    used = [*_values(unit, "User"), *_values(unit, "Group"), *_values(unit, "WorkingDirectory"),
            *_values(unit, "SupplementaryGroups"), *_values(unit, "ReadWritePaths"),
            *(v.lstrip("-") for v in _values(unit, "EnvironmentFile") if "sim-" not in v)]
    for exec_start in _values(unit, "ExecStart"):
        used += re.findall(r"/opt/volna/\S+/volna", exec_start) + re.findall(r"--config (\S+)", exec_start)
    for item in filter(None, used):
        assert f"`{item}`" in page or f" {item} " in page or f"{item}`" in page, (
            f"docs/operations.md does not say {item!r}, which {unit.name} uses")
    if unit.suffix == ".service" and "sim-" not in unit.name:
        assert _values(unit, "User") == ["volna"] and _values(unit, "WorkingDirectory") == ["/opt/volna"]
        assert any(INSTALLED in e and "--config /etc/volna/volna.toml" in e for e in _values(unit, "ExecStart"))
