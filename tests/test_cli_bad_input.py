"""Every command of ``volna`` answers bad input with one line and exit 2: no traceback, no usage
text, and nothing half-written left behind (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock

ROOT = Path(__file__).resolve().parent.parent
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)

BAD = [
    # load
    ["load", "missing.jsonl", "--wave", "w1"],
    ["load", "tasks.jsonl", "--wave", "no-such-wave"],
    ["load", "tasks.jsonl", "--wave", "w1", "--encoding", "koi8"],
    ["load", "tasks.jsonl"],
    # wave
    ["wave", "create", "w2", "--campaign", "c1", "--day", "2026-13-01"],
    ["wave", "create", "w2", "--campaign", "c1", "--day", "2026-01-01"],  # over in every zone
    ["wave", "create", "w1", "--campaign", "c1", "--day", "2026-12-01"],  # exists
    ["wave", "start", "typo"],
    ["wave", "pause", "w1"],  # created, not running
    ["wave", "status", "typo"],
    ["wave", "fly", "w1"],
    ["wave"],
    # run
    ["run", "--channels", "fax"],
    ["run", "--metrics-port", "port"],
    # stoplist
    ["stoplist", "add", "--debtor", "d1", "--reason", "bored"],
    ["stoplist", "add", "--phone", "not a phone", "--reason", "refused"],
    ["stoplist", "import", "missing.csv"],
    ["stoplist", "remove"],
    # results
    ["results", "export", "--wave", "typo", "--out", "out.jsonl"],
    ["results", "export", "--day", "yesterday", "--out", "out.jsonl"],
    ["results", "tail", "--day", "2026-02-30"],
    # scenarios
    ["scenarios", "check", "--dir", "no-such-dir"],
    ["scenarios", "compile", "--dir", "bad-scenarios"],
    # the archive's
    ["report", "--month", "2026-13"],
    ["report", "--format", "pdf", "--month", "2026-11"],
    ["report", "--month", "2026-11"],  # no archive configured
    ["erase"],
    ["archive", "--once"],  # no archive configured
    ["retention", "--bogus"],
    # config
    ["config", "check", "missing.toml"],
    ["config", "check", "tasks.jsonl"],  # not TOML
    ["config", "bogus"],
    # phones
    ["phones", "show", "not a phone"],
    ["phones", "reactivate", "+79161234567"],  # no --reason
    ["phones", "reactivate", "+79161234567", "--reason", " "],
    ["phones", "list", "--since", "yesterday"],
    ["phones"],
    # commands with their own parsers
    ["sim", "fax"],
    ["sim", "smsc", "--port", "many"],
    ["api", "--port", "many"],
    ["token", "create", "--role", "king", "--name", "x"],
    ["demo", "--debtors", "many"],
    ["--config", "missing.toml", "wave", "list"],
    ["bogus"],
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "tasks.jsonl").write_text('{"task_id": "t1"}\n', encoding="utf-8")
    bad = tmp_path / "bad-scenarios"
    bad.mkdir()
    (bad / "broken.yaml").write_text("name: broken\nretry: [{when: [nonsense]}]\n", encoding="utf-8")
    return tmp_path


def _volna(args: list[str], cwd: Path, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "VOLNA_SCENARIOS_DIR": str(ROOT / "scenarios"),
           "VOLNA_CLOCK": ScaledClock(NOON_MSK).spec(), "VOLNA_LOG__JSON": "false"}
    return subprocess.run([sys.executable, "-m", "engine.cli.main", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
async def test_bad_input_is_one_line_and_exit_2(args: list[str], workdir: Path, redis: aioredis.Redis,
                                                redis_url: str) -> None:
    assert _volna(["wave", "create", "w1", "--campaign", "c1", "--day", "2026-12-01"], workdir,
                  redis_url).returncode == 0
    before = sorted(await redis.keys("*"))
    out = _volna(args, workdir, redis_url)
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-1500:])
    assert "Traceback" not in out.stderr and len(err) == 1, out.stderr[-1500:]
    assert sorted(await redis.keys("*")) == before, "bad input wrote something"


async def test_by_is_taken_before_or_after_the_action(workdir: Path, redis: aioredis.Redis, redis_url: str) -> None:
    assert _volna(["wave", "create", "w1", "--campaign", "c1", "--day", "2026-12-01"], workdir,
                  redis_url).returncode == 0
    assert _volna(["wave", "start", "w1", "--by", "anna"], workdir, redis_url).returncode == 0
    assert _volna(["wave", "--by", "boris", "pause", "w1"], workdir, redis_url).returncode == 0
    meta = await redis.hgetall("volna:{w:w1}:meta")
    assert (meta["running_by"], meta["paused_by"]) == ("anna", "boris")
    assert _volna(["stoplist", "add", "--debtor", "d1", "--reason", "paid", "--by", "vera"], workdir,
                  redis_url).returncode == 0
    assert "vera" in await redis.hget("volna:stop:debtor", "d1")


def test_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "engine.cli.main", "--help"], capture_output=True, text=True,
                         timeout=30)
    for name in ("load", "wave", "run", "stoplist", "results", "scenarios", "sim", "api", "token", "demo"):
        assert f"    {name}" in out.stdout, name
