"""The night, end to end: read the inputs, plan (pure), then write — task files, waves, stages.

Inputs: the portfolio file, the strategy file, the archive (PostgreSQL), the stop-list and the caps
(Redis), the day to plan. Outputs: one wave per stage for the day (``<strategy>-<day>-<stage>``),
created and loaded through the intake (or, with ``out``, task files written there instead), the
stages for the next night in the archive, and the plan report.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from engine.archive.db import connection, migrate
from engine.context import Context
from engine.domain.outcomes import Channel
from engine.errors import VolnaError, WaveError
from engine.intake.lines import FileFormat
from engine.intake.loader import Intake, IntakeReport
from engine.planner.plan import Plan, Planner, task_line
from engine.planner.portfolio import Debtor, PortfolioRejection, read_portfolio
from engine.planner.sources import read_histories, write_states
from engine.planner.strategy import Strategy, load_strategy


@dataclass
class NightResult:
    plan: Plan
    rejected: list[PortfolioRejection]
    #: wave id → the intake's report (waves loaded), or → the file written (``out``).
    loaded: dict[str, IntakeReport]
    files: dict[str, Path]
    #: Seconds each phase took (read, history, plan, write, stages).
    phases_s: dict[str, float] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        out = self.plan.report.as_dict()
        out["portfolio_rejections"] = [{"line": r.line_no, "reason": r.reason} for r in self.rejected[:100]]
        out["waves_loaded"] = {w: r.as_dict() | {"rejections": r.as_dict()["rejections"][:20]}
                               for w, r in self.loaded.items()}
        out["files"] = {w: str(p) for w, p in self.files.items()}
        return out


def portfolio_format(path: Path, kind: str | None, encoding: str = "auto", delimiter: str = "auto") -> FileFormat:
    chosen = kind or ("csv" if path.suffix.lower() in (".csv", ".txt") else "jsonl")
    return FileFormat(kind="csv" if chosen == "csv" else "jsonl", encoding=encoding,  # type: ignore[arg-type]
                      delimiter=delimiter)


def load_portfolio(path: Path, fmt: FileFormat) -> tuple[list[Debtor], list[PortfolioRejection]]:
    """The debtors of a portfolio file and its refused lines; a file of which no line is a debtor
    is refused whole (its first fault named): a wrong file, not a portfolio with bad lines."""
    rejected: list[PortfolioRejection] = []
    try:
        with path.open("rb") as fh:
            debtors = list(read_portfolio(fh, fmt, rejected))
    except OSError as exc:
        raise VolnaError(f"{path}: cannot read ({exc.strerror})") from None
    if not debtors and rejected:
        first = rejected[0]
        raise VolnaError(f"{path}: no debtor read (line {first.line_no}: {first.reason})")
    return debtors, rejected


async def plan_night(ctx: Context, *, portfolio: Path, fmt: FileFormat, strategy: Strategy | Path, day: date,
                     rates: dict[Channel, float], out: Path | None = None, write_stages: bool = True
                     ) -> NightResult:
    if isinstance(strategy, Path):
        strategy = load_strategy(strategy, ctx.scenarios, ctx.settings.caps)
    phases: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        phases[name] = round(now - t0, 2)
        t0 = now

    debtors, rejected = load_portfolio(portfolio, fmt)
    lap("read_portfolio")
    planner = Planner(strategy, ctx.scenarios, ctx.settings.caps, ctx.windows, rates)
    own = {f"{strategy.name}-{day.isoformat()}-{s.name}" for s in strategy.stages}
    async with connection(ctx.settings.archive) as conn:
        await migrate(conn)
        await conn.commit()
        histories = await read_histories(
            ctx.redis, conn, strategy.name, day, {d.debtor_id: d.phones for d in debtors}, dict(ctx.scenarios),
            own_waves=own, phone_key=ctx.settings.retention.phone_key())
        lap("read_history")
        plan = planner.plan(day, debtors, histories, rejected_lines=len(rejected))
        del histories
        lap("plan")
        result = NightResult(plan, rejected, {}, {})
        if out is not None:
            result.files = write_files(plan, out)
        else:
            result.loaded = await load_waves(ctx, plan, strategy.campaign)
        lap("write_tasks")
        if write_stages:
            await write_states(conn, strategy.name, plan)
        lap("write_stages")
    result.phases_s = phases
    return result


def write_files(plan: Plan, out: Path) -> dict[str, Path]:
    """One JSON Lines task file per wave, and the plan report beside them."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        for wave_id, tasks in plan.waves().items():
            path = out / f"{wave_id}.jsonl"
            with path.open("w", encoding="utf-8", newline="\n") as fh:
                for t in tasks:
                    fh.write(task_line(t) + "\n")
            files[wave_id] = path
        (out / f"plan-{plan.strategy}-{plan.day.isoformat()}.json").write_text(
            json.dumps(plan.report.as_dict(), ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        raise VolnaError(f"{out}: cannot write the plan ({exc.strerror})") from None
    return files


async def load_waves(ctx: Context, plan: Plan, campaign: str) -> dict[str, IntakeReport]:
    """Each stage's wave for the day, created (or reused while still ``created``) and loaded."""
    reports: dict[str, IntakeReport] = {}
    for wave_id, tasks in plan.waves().items():
        try:
            await ctx.waves.create(wave_id, campaign, plan.day, by="planner")
        except WaveError:
            info = await ctx.waves.get(wave_id)  # raises for a day over everywhere (create refused)
            if info.day != plan.day or info.campaign_id != campaign:
                raise WaveError(f"wave {wave_id!r} exists for another day or campaign") from None

        async def lines(tasks: list[Any] = tasks) -> AsyncIterator[bytes]:
            for t in tasks:
                yield task_line(t).encode()

        reports[wave_id] = await Intake(ctx).load(wave_id, lines())
    return reports
