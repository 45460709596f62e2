"""``POST /api/v1/waves/{id}/tasks``: the planner's upload, streamed from the socket into the intake.

The body is never read whole: chunks are split into lines as they arrive and each line
goes to :meth:`engine.intake.loader.Intake.load`, which writes in batches of 500. aiohttp stops
reading the socket while its small buffer is full, so a slow Redis slows the upload
instead of filling memory: a million lines cost what one batch costs.

Past ``max_upload_bytes`` (counted after any ``Content-Encoding`` is undone) the answer is
413: before reading when ``Content-Length`` says so, else after the last whole line below
the cap; the lines before it stay loaded (loading is idempotent, so the planner sends the
file again, split, and nothing is doubled). The connection is closed rather than drained.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiohttp import StreamReader, web

from engine.api.access import CTX, OPTIONS, UPLOADS, allow, audit_note
from engine.api.auth import Perm
from engine.api.http import ApiError, answers
from engine.api.models import Rejection, UploadFormat, UploadReport
from engine.api.routes_waves import existing_wave
from engine.domain.phones import mask_text
from engine.errors import IntakeError, StoreFull, WaveError
from engine.intake.lines import MAX_LINE_BYTES, FileFormat, TaskLines, delimiter_arg
from engine.intake.loader import Intake
from engine.intake.loader import Rejection as LineRejection

routes = web.RouteTableDef()

JSONL_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/x-jsonlines",
                         "application/jsonlines", "application/json-lines"})
CSV_TYPES = frozenset({"text/csv", "application/csv"})
#: Let other requests run at least this often while a big upload is being validated.
YIELD_EVERY_LINES = 200
#: What a refused upload is told to wait (an upload takes seconds to minutes).
UPLOAD_RETRY_AFTER_S = 5


class BodyLines:
    """The lines of a request body as they arrive (``\\n``-separated, the last may lack it).

    Reading stops, keeping what was whole, when the body passes ``max_bytes`` (``too_large``) or
    sends nothing for ``idle_timeout_s`` (``stalled``); with ``lines_per_s`` the reading is paced
    (the client feels it as TCP back-pressure).
    """

    def __init__(self, content: StreamReader, max_bytes: int, max_line_bytes: int = MAX_LINE_BYTES, *,
                 idle_timeout_s: float = 10.0, lines_per_s: float = 0.0) -> None:
        self.content = content
        self.max_bytes = max_bytes
        self.max_line_bytes = max_line_bytes
        self.idle_timeout_s = idle_timeout_s
        self.lines_per_s = lines_per_s
        self.bytes_read = 0
        self.lines_read = 0
        self.too_large = False
        self.stalled = False

    async def lines(self) -> AsyncIterator[bytes]:
        pending = b""
        skipping = False  # inside a line already reported as too long
        started = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    chunk = await self.content.readany()
            except TimeoutError:
                self.stalled = True
                return
            if not chunk:
                break
            room = self.max_bytes - self.bytes_read
            if len(chunk) > room:  # past the cap: the whole lines below it still load
                self.too_large = True
                chunk = chunk[:room]
            self.bytes_read += len(chunk)
            parts = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
            pending = parts.pop()
            for line in parts:
                if skipping:
                    skipping = False
                    continue
                self.lines_read += 1
                yield line
                if self.lines_read % YIELD_EVERY_LINES == 0:
                    await self._pace(started)
            if len(pending) > self.max_line_bytes:
                if not skipping:
                    # Handed on truncated, one byte over the limit: the intake rejects it by number.
                    self.lines_read += 1
                    yield pending[: self.max_line_bytes + 1]
                skipping = True
                pending = b""
            if self.too_large:
                return
        if pending and not skipping:
            self.lines_read += 1
            yield pending

    async def _pace(self, started: float) -> None:
        ahead_s = self.lines_read / self.lines_per_s - (time.monotonic() - started) if self.lines_per_s else 0.0
        await asyncio.sleep(max(0.0, ahead_s))  # sleep(0) at least: let the dispatchers' I/O in


async def csv_with_header(lines: AsyncIterator[bytes], fmt: FileFormat) -> AsyncIterator[bytes]:
    """The same lines, once the first non-empty one proved a CSV header with a task_id column (else 400).

    A file without that header is refused whole: every line of it would be rejected anyway.
    """
    head: list[bytes] = []
    reader = TaskLines(fmt)
    try:
        async for line in lines:
            head.append(line)
            reader.parse(line)
            if reader.header_seen and line.strip():
                break
    except IntakeError as exc:
        raise ApiError(400, f"a CSV upload starts with a header line naming its columns, task_id among them "
                            f"({exc.reason})") from None
    if not reader.header_seen or not head:
        raise ApiError(400, "a CSV upload starts with a header line naming its columns, task_id among them")

    async def chained() -> AsyncIterator[bytes]:
        for line in head:
            yield line
        async for line in lines:
            yield line

    return chained()


def file_format(request: web.Request, kind: UploadFormat) -> FileFormat:
    """The upload's format with ``?encoding=utf-8|cp1251|auto`` and ``?delimiter=,|;|tab|auto``."""
    try:
        return FileFormat(kind=kind, encoding=request.query.get("encoding", "auto"),  # type: ignore[arg-type]
                          delimiter=delimiter_arg(request.query.get("delimiter", "auto")))
    except IntakeError as exc:
        raise ApiError(400, exc.reason) from None


def upload_format(request: web.Request) -> UploadFormat:
    fmt = request.query.get("format")
    if fmt == "jsonl":
        return "jsonl"
    if fmt == "csv":
        return "csv"
    if fmt is not None:
        raise ApiError(400, "format must be jsonl or csv")
    ctype = request.content_type
    if ctype in JSONL_TYPES:
        return "jsonl"
    if ctype in CSV_TYPES:
        return "csv"
    raise ApiError(415, "send Content-Type application/x-ndjson (JSON Lines) or text/csv, or ?format=jsonl|csv")


@routes.post("/api/v1/waves/{wave_id}/tasks")
@allow(Perm.UPLOAD, "tasks.upload")
@answers(UploadReport)
async def upload_tasks(request: web.Request) -> UploadReport:
    ctx = request.app[CTX]
    opts = request.app[OPTIONS]
    wave_id = request.match_info["wave_id"]
    audit_note(request, "tasks.upload", wave_id)
    length = request.content_length
    if length is not None and length > opts.max_upload_bytes:
        raise ApiError(413, f"upload over {opts.max_upload_bytes} bytes", close=True)
    fmt = upload_format(request)
    file_format(request, fmt)  # refuse a bad encoding or separator before anything is read
    await existing_wave(ctx, wave_id)
    with request.app[UPLOADS].enter() as admitted:
        if not admitted:
            raise ApiError(429, f"{opts.max_concurrent_uploads} uploads are being loaded; send this one again shortly",
                           close=True, headers={"Retry-After": str(UPLOAD_RETRY_AFTER_S)})
        return await _load(request, wave_id, fmt)


async def _load(request: web.Request, wave_id: str, fmt: UploadFormat) -> UploadReport:
    ctx = request.app[CTX]
    opts = request.app[OPTIONS]
    listed: list[Rejection] = []

    def on_reject(r: LineRejection) -> None:
        if len(listed) < opts.rejections_listed:
            listed.append(Rejection(line=r.line_no, reason=mask_text(r.reason)))

    body = BodyLines(request.content, opts.max_upload_bytes, idle_timeout_s=opts.body_read_timeout_s,
                     lines_per_s=opts.upload_lines_per_s)
    started = time.monotonic()
    lines = body.lines()
    parsed_format = file_format(request, fmt)
    if fmt == "csv":
        lines = await csv_with_header(lines, parsed_format)
    try:
        report = await Intake(ctx).load(wave_id, lines, parsed_format, on_reject)
    except WaveError as exc:
        raise ApiError(409, str(exc)) from None
    except StoreFull as exc:  # the file is fine: Redis has no room (507, as WebDAV servers say it)
        raise ApiError(507, exc.reason) from None
    except IntakeError as exc:
        raise ApiError(400, exc.reason) from None
    answer = UploadReport(
        wave_id=wave_id, format=fmt, lines=body.lines_read, bytes=body.bytes_read, accepted=report.accepted,
        already_loaded=report.duplicates, rejected=report.rejected, rejections=listed,
        rejections_truncated=report.rejected > len(listed), seconds=round(time.monotonic() - started, 3),
    )
    audit_note(request, "tasks.upload", wave_id, format=fmt, lines=body.lines_read, accepted=report.accepted,
               already_loaded=report.duplicates, rejected=report.rejected, too_large=body.too_large,
               stalled=body.stalled)
    # Cut short, the answer is a refusal that still says what was loaded (the rest of the body is
    # not read: the connection is closed rather than drained).
    counts = answer.model_dump(mode="json", exclude={"wave_id"})
    if body.too_large:
        raise ApiError(413, f"upload over {opts.max_upload_bytes} bytes: loading stopped after line "
                            f"{body.lines_read}", close=True, **counts)
    if body.stalled:
        raise ApiError(408, f"nothing arrived for {opts.body_read_timeout_s:g} s: loading stopped after line "
                            f"{body.lines_read}; send the file again (nothing is doubled)", close=True, **counts)
    return answer
