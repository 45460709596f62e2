"""The demo's nights: the portfolio file of each day, the creditor's payments, ``volna plan`` run
as an operator runs it, and the summary of the days (stage moves, numbers deactivated, promises
honoured, the caps checked in the archive)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.config.settings import Settings
from engine.demo.portfolio import portfolio

ROOT = Path(__file__).resolve().parents[2]
STRATEGY = ROOT / "strategies" / "utility.yaml"


@dataclass
class Portfolio:
    """The creditor's side of the demo: the debtors, their debts ageing a day a night, and payments."""

    rows: list[dict[str, Any]]
    #: Debtors who paid (after a promise they kept), and on which day it showed.
    paid: dict[str, date] = field(default_factory=dict)

    @classmethod
    def generate(cls, n: int, seed: int) -> Portfolio:
        return cls(list(portfolio(n, seed=seed)))

    def write(self, path: Path, day: date, first: date) -> Path:
        with path.open("w", encoding="utf-8") as fh:
            for row in self.rows:
                r = dict(row)
                r["days_overdue"] = row["days_overdue"] + (day - first).days
                if row["debtor_id"] in self.paid:
                    r["amount"] = 0
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        return path

    def payments(self, promises: list[tuple[str, date]], day: date) -> int:
        """Promises whose date has passed by ``day``: two in three are kept (the debtor pays)."""
        kept = 0
        for debtor_id, due in promises:
            if due < day and debtor_id not in self.paid and sum(map(ord, debtor_id)) % 3 != 0:
                self.paid[debtor_id] = day
                kept += 1
        return kept


async def promises_made(settings: Settings) -> list[tuple[str, date]]:
    """Every promise to pay the archive holds: (debtor, promised date)."""
    from engine.archive.db import connection

    async with connection(settings.archive, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT debtor_id, (data->'promise'->>'date')::date FROM results WHERE kind = 'result' "
            "AND 'promise_to_pay' = ANY (actions) AND data->'promise' ? 'date' ORDER BY debtor_id")
        return [(str(d), due) for d, due in await cur.fetchall()]


def night_clock(day: date) -> str:
    """The planner's clock: the evening before ``day`` (19:00 UTC, every window of the day before
    closed, none of ``day``'s open), at real speed."""
    start = datetime(day.year, day.month, day.day, 19, tzinfo=UTC) - timedelta(days=1)
    return f"{int(start.timestamp() * 1000)}:1.0:{int(datetime.now(UTC).timestamp() * 1000)}"


def run_plan(config: Path, portfolio_path: Path, day: date, out: Path) -> dict[str, Any]:
    """``volna plan`` as an operator runs it at night; its JSON report."""
    args = [sys.executable, "-m", "engine.cli.main", "--config", str(config), "plan", str(portfolio_path),
            "--strategy", str(STRATEGY), "--day", day.isoformat(), "--json"]
    with (out / "plan.log").open("ab") as log:
        done = subprocess.run(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, timeout=600)
    if done.returncode not in (0, 3):
        raise RuntimeError(f"volna plan failed (exit {done.returncode}; see {out}/plan.log)")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def print_plan(report: dict[str, Any]) -> None:
    print(f"\n=== the night before {report['day']}: volna plan ({report['strategy']}) ===")
    print(f"debtors {report['debtors']}: " + ", ".join(f"{k} {v}" for k, v in report["per_stage"].items()))
    moves = report["moves"]
    if moves:
        print("moves between stages: " + ", ".join(f"{m['from']} → {m['to']} ({m['why']}) {m['debtors']}"
                                                   for m in moves))
    print(f"tasks for the day: {report['tasks']} (" + ", ".join(f"{k} {v}" for k, v in
                                                              report["tasks_per_channel"].items()) + ")")
    if report["skipped_debtors"]:
        print("no task tonight: " + ", ".join(f"{k} {v}" for k, v in report["skipped_debtors"].items()))
    if report["skipped_touches"]:
        print("touches left out: " + ", ".join(f"{k} {v}" for k, v in report["skipped_touches"].items()))


async def caps_check(settings: Settings) -> dict[str, tuple[int, int]]:
    """The most contacts any debtor had in one local day, week and month, per cap class, from the
    archive's interaction log, beside the cap: (most, cap)."""
    from engine.archive.db import connection

    out: dict[str, tuple[int, int]] = {}
    async with connection(settings.archive, autocommit=True) as conn:
        for period, column in (("day", "local_day"), ("week", "local_week"), ("month", "local_month")):
            cur = await conn.execute(
                f"SELECT cap_class, max(n) FROM (SELECT debtor_id, cap_class, {column}, count(*) AS n "
                f"FROM contacts GROUP BY 1, 2, 3) t GROUP BY cap_class")
            for cap_class, most in await cur.fetchall():
                limits = settings.caps.conversation if cap_class == "conversation" else settings.caps.message
                out[f"{cap_class} a {period}"] = (int(most), int(getattr(limits, period)))
    return out


def print_summary(days: list[date], plans: list[dict[str, Any]], finals: list[Counter[str]], honoured: int,
                  promised: int, caps: dict[str, tuple[int, int]]) -> bool:
    print(f"\n=== Volna demo: {len(days)} days, {days[0]} → {days[-1]}, with the night's plan between ===")
    moves: Counter[str] = Counter()
    for p in plans[1:]:
        for m in p["moves"]:
            moves[f"{m['from']} → {m['to']} ({m['why']})"] += m["debtors"]
    print("debtors moved between stages by the nights: "
          + (", ".join(f"{k} {v}" for k, v in sorted(moves.items())) or "none"))
    # Outcomes, not deactivations: a number is deactivated after phones.invalid_strikes of them
    # (each day's report gives the count deactivated so far).
    print("invalid_number outcomes (strikes towards deactivating a number), by day: " + ", ".join(
        f"{d} {f['invalid_number']}" for d, f in zip(days, finals, strict=True)))
    print(f"promises to pay: {promised} made, {honoured} honoured (paid after the promised date)")
    broken = {k: v for k, v in caps.items() if v[0] > v[1]}
    print("caps across the days (most contacts of any debtor / cap): "
          + ", ".join(f"{k} {m}/{c}" for k, (m, c) in sorted(caps.items()))
          + (" — none broken" if not broken else f" — BROKEN: {sorted(broken)}"))
    return not broken
