"""`volna demo` with small numbers: three compressed days with the night's plan between them; every
process starts, the planned waves run, each day's report comes, the summary of the days, all stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT


def test_demo_small(tmp_path: Path) -> None:
    # Its own private Redis and PostgreSQL.
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VOLNA_ARCHIVE__DSN")}
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "demo", "--debtors", "300", "--minutes", "0.4", "--no-live",
         "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "=== Volna demo: the day's report ===" in out
    assert "console: http://127.0.0.1:" in out and "token: " in out
    for line in ("reached (answered or delivered)", "keys pressed", "invalid numbers found", "skipped: by caps"):
        assert line in out
    # Debtors called back and wrote stop (engine/demo/replies.py): recorded, and on the stop-list.
    # Over the three days (a day of 300 debtors may draw no "Стоп."); the stop-list count is the
    # running total, so the last day's.
    callbacks = sum(int(part.split(" ")[0]) for part in out.split("callbacks recorded: ")[1:])
    opt_outs = int(out.split("opt-outs by reply: ")[-1].split(" ")[0])
    assert callbacks >= 1 and opt_outs >= 1, out[-2000:]
    # The day is archived, and the report comes from PostgreSQL.
    assert "=== archived in PostgreSQL: " in out and "SMS parts billed" in out
    held = int(out.split("=== archived in PostgreSQL: ")[1].split(" records")[0])
    exported = sorted(tmp_path.glob("results-*.jsonl"))
    assert len(exported) == 3 and out.count("=== Volna demo: the day's report ===") == 3
    assert out.count("=== the night before ") == 3
    # The summary of the days: stage moves by the nights, numbers deactivated, promises, caps.
    summary = out.split("=== Volna demo: 3 days, ")[1]
    # (A move to contact search needs every number deactivated: phones.invalid_strikes = 2 strikes from
    # distinct attempts, which three short days seldom give; tests/test_planner_days.py shows that move.)
    assert "debtors moved between stages by the nights: " in summary and " → " in summary
    assert "invalid_number outcomes (strikes towards deactivating a number), by day: " in summary
    made = int(summary.split("promises to pay: ")[1].split(" made")[0])
    assert made > 0
    assert "— none broken" in summary
    records = [json.loads(line) for line in exported[0].read_text(encoding="utf-8").splitlines()]
    # The first day of every stage: an SMS (soft, pre-court) or a call (firm); Viber comes on day 4.
    assert {r["channel"] for r in records} >= {"ivr", "sms"}
    assert held >= len(records)  # the export is results and inbound only; the archive has dispatches too
    finals = [r for r in records if r.get("final")]
    assert len({r["task_id"] + r["wave_id"] for r in finals}) == len(finals)
    # Every child process was stopped: none of their logs ends with a traceback.
    for log in tmp_path.glob("*.log"):
        assert "Traceback" not in log.read_text(encoding="utf-8", errors="replace")[-2000:], log.name
