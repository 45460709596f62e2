"""The nightly planner's door: task files (JSON Lines or CSV) into a wave's queues.

Lines are streamed (a million lines never sit in memory at once), validated one
by one, and written in pipelined batches. A bad line is rejected with its line
number and reason; the good lines load. Loading the same file twice adds
nothing: a task id already in the wave is counted as already loaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ValidationError
from redis.exceptions import OutOfMemoryError

from engine.calendar.eligibility import first_eligible_ms
from engine.calendar.zones import task_zones
from engine.context import Context
from engine.domain.models import Task
from engine.domain.outcomes import Channel
from engine.domain.wave import WaveState
from engine.errors import IntakeError, StoreFull, WaveError
from engine.intake.checks import check_task
from engine.intake.lines import FileFormat, TaskLines
from engine.store.wavestore import TaskRow, eligible_score

BATCH = 500


@dataclass
class Rejection:
    line_no: int
    reason: str


@dataclass
class IntakeReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    #: Keep at most this many rejections in memory (the rest go to ``on_reject`` only).
    keep_rejections: int = 10_000

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted, "already_loaded": self.duplicates, "rejected": self.rejected,
            "rejections": [{"line": r.line_no, "reason": r.reason} for r in self.rejections],
        }


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "line"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def zone_label(zones: tuple[str, ...]) -> str:
    """How a task is counted in the wave's zone table: one zone, or ``multi:N`` when constrained."""
    return zones[0] if len(zones) == 1 else f"multi:{len(zones)}"


class Intake:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def load(
        self,
        wave_id: str,
        lines: AsyncIterator[bytes],
        fmt: FileFormat | str = "jsonl",
        on_reject: Callable[[Rejection], None] | None = None,
    ) -> IntakeReport:
        """``fmt``: a :class:`FileFormat`, or just its kind (``jsonl``, ``csv``: the encoding and
        the separator guessed)."""
        file_format = fmt if isinstance(fmt, FileFormat) else FileFormat(kind=fmt)  # type: ignore[arg-type]
        info = await self.ctx.waves.get(wave_id)
        if info.state in (WaveState.STOPPED, WaveState.COMPLETED):
            raise WaveError(f"wave {wave_id!r} is {info.state}: it takes no more tasks")
        report = IntakeReport()
        reader = TaskLines(file_format)
        batch: list[TaskRow] = []
        seen: set[str] = set()
        line_no = batch_line = 0
        # One batch is written while the next is parsed: the two take about as long, and one
        # after the other halved the rate (load/bench_core.py). Batches land in file order, and a
        # batch refused stops the load before the next is written.
        writing: asyncio.Task[None] | None = None
        try:
            async for raw in lines:
                line_no += 1
                if writing is not None and line_no % 64 == 0 and not writing.done():
                    # Parsing never waits: let the write go on (its script, then the directory).
                    await asyncio.sleep(0)
                try:
                    obj = reader.parse(raw)
                    if obj is None:
                        continue
                    row = self._row(obj, wave_id, info.campaign_id, info.day)
                except IntakeError as exc:
                    self._reject(report, Rejection(line_no, exc.reason), on_reject)
                    continue
                except ValidationError as exc:
                    self._reject(report, Rejection(line_no, _reason(exc)), on_reject)
                    continue
                if row[0] in seen:
                    report.duplicates += 1
                    continue
                seen.add(row[0])
                if not batch:
                    batch_line = line_no
                batch.append(row)
                if len(batch) >= BATCH:
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(
                        self._flush(wave_id, batch, report, batch_line, info.campaign_id))
                    batch = []
                    seen.clear()
            if writing is not None:
                await writing
                writing = None
            if batch:
                await self._flush(wave_id, batch, report, batch_line, info.campaign_id)
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
        return report

    @staticmethod
    def _reject(report: IntakeReport, rejection: Rejection, on_reject: Callable[[Rejection], None] | None) -> None:
        report.rejected += 1
        if len(report.rejections) < report.keep_rejections:
            report.rejections.append(rejection)
        if on_reject is not None:
            on_reject(rejection)

    def _row(self, obj: dict[str, Any], wave_id: str, campaign_id: str, day: date
             ) -> TaskRow:
        if obj.get("wave_id") not in (None, wave_id):
            raise IntakeError(f"wave_id {obj['wave_id']!r} is not the wave being loaded ({wave_id!r})")
        obj["wave_id"] = wave_id
        obj.setdefault("campaign_id", campaign_id)
        if "debtor_id" not in obj or obj["debtor_id"] in (None, ""):
            raise IntakeError("debtor_id: missing")
        task = Task.model_validate(obj)
        check_task(task, self.ctx.scenarios)
        return task_row(self.ctx, task, day)

    async def _flush(self, wave_id: str, batch: list[TaskRow], report: IntakeReport, first_line: int,
                     campaign: str) -> None:
        try:
            flags = await self.ctx.waves.store(wave_id).add_tasks(self.ctx.clock.now_ms(), batch)
        except OutOfMemoryError:
            # The script is refused at its first write, so the batch is all or nothing.
            raise StoreFull(f"Redis is out of memory (maxmemory): {report.accepted} tasks loaded, stopped at "
                            f"line {first_line}, nothing from there on was written; load the file again "
                            "once Redis has room (what was loaded is not doubled)") from None
        added = sum(flags)
        # The directory outlives the wave: a callback weeks later still finds the debtor.
        await self.ctx.directory.add_loaded(
            [(row[6], row[7], wave_id, campaign) for row, flag in zip(batch, flags, strict=True) if flag],
            self.ctx.clock.now_ms())
        report.accepted += added
        report.duplicates += len(flags) - added


def task_row(ctx: Context, task: Task, day: date, not_before_ms: int | None = None
             ) -> TaskRow:
    """The intake script's row for a valid task: it is first eligible when its window opens."""
    try:
        zones = task_zones(task.tz, task.region, task.phone)
        eligible = first_eligible_ms(task, day, ctx.windows, not_before_ms)
    except ValueError as exc:
        raise IntakeError(str(exc)) from None
    return (task.task_id, task.channel.value, eligible_score(eligible, task.priority),
            task.model_dump_json(exclude_none=True), task.priority, zone_label(zones), task.phone,
            task.debtor_id)


async def add_followup_task(ctx: Context, task: Task, channel: Channel, *, suffix: str, day: date) -> bool:
    """A task the scenario asked for (payment details by SMS after a key press); once per task."""
    follow = task.model_copy(update={
        "task_id": f"{task.task_id}-{suffix}"[:128], "channel": channel, "cascade": [],
        "vars": {**task.vars, "_template": suffix},
    })
    row = task_row(ctx, follow, day, not_before_ms=ctx.clock.now_ms())
    flags = await ctx.waves.store(task.wave_id).add_tasks(ctx.clock.now_ms(), [row])
    return bool(flags and flags[0])


async def file_lines(path: str) -> AsyncIterator[bytes]:
    """Stream a file's lines without blocking the loop (reads happen in a worker thread)."""
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        while True:
            chunk = await asyncio.to_thread(handle.readlines, 1 << 20)
            if not chunk:
                return
            for line in chunk:
                yield line
    finally:
        await asyncio.to_thread(handle.close)
