"""The results stream over HTTP: pages (``/api/v1/results``) and Server-Sent Events (``/results/stream``).

Both read one wave's Redis Stream; a record is the JSON the engine wrote (see docs/cli.md's
``volna results``), and its stream id is the cursor: ``since`` (exclusive) for pages,
``id:`` of each event for SSE, so a client that reconnects with ``Last-Event-ID``
continues right after the last event it received and sees each record once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from aiohttp import web
from redis.asyncio import Redis

from engine.api.access import CTX, HUB, OPTIONS, allow
from engine.api.auth import Perm
from engine.api.http import ApiError, answers, check_stream_id, int_query
from engine.api.models import ResultsPage
from engine.api.routes_waves import existing_wave
from engine.api.sse import Entry, Subscriber, id_key
from engine.store.keys import WaveKeys
from engine.store.schema import RecordKind
from engine.waves.results import decode

log = logging.getLogger("engine.api.results")

routes = web.RouteTableDef()

KINDS = frozenset(k.value for k in RecordKind)
CATCH_UP_PAGE = 500
#: How long an EventSource waits before reconnecting (the SSE ``retry:`` field).
RETRY_MS = 2000


def kinds_query(request: web.Request) -> frozenset[str] | None:
    raw = request.query.get("kind")
    if raw is None:
        return None
    kinds = frozenset(k.strip() for k in raw.split(",") if k.strip())
    unknown = kinds - KINDS
    if unknown or not kinds:
        raise ApiError(400, f"kind must be among {', '.join(sorted(KINDS))} (comma-separated)")
    return kinds


async def wave_query(request: web.Request) -> str:
    wave_id = request.query.get("wave")
    if not wave_id:
        raise ApiError(400, "wave is required")
    return await existing_wave(request.app[CTX], wave_id)


@routes.get("/api/v1/results")
@allow(Perm.READ)
@answers(ResultsPage)
async def results_page(request: web.Request) -> ResultsPage:
    """A page of records after ``since``; ``next`` is the cursor for the following page."""
    ctx = request.app[CTX]
    wave_id = await wave_query(request)
    since = request.query.get("since")
    if since is not None:
        check_stream_id(since, "since")
    limit = int_query(request, "limit", 1000, 1, 10_000)
    kinds = kinds_query(request)
    page = await ctx.redis.xrange(WaveKeys(wave_id).results, min=f"({since}" if since else "-", max="+",
                                  count=limit)
    records = [decode(stream_id, fields) for stream_id, fields in page]
    if kinds is not None:
        records = [r for r in records if r.get("kind") in kinds]
    cursor = page[-1][0] if page else since
    # One validation of the whole page (in pydantic's core) rather than one call per record.
    return ResultsPage.model_validate({"wave_id": wave_id, "records": records, "next": cursor,
                                       "more": len(page) == limit})


def _event_bytes(entries: list[Entry], kinds: frozenset[str] | None) -> bytes:
    out = []
    for e in entries:
        if kinds is None or e.kind in kinds:
            data = e.data if "\n" not in e.data else e.data.replace("\n", "\ndata: ")
            out.append(f"id: {e.stream_id}\ndata: {data}\n\n")
    return "".join(out).encode()


@routes.get("/api/v1/results/stream")
@allow(Perm.READ)
async def results_stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``id:`` the stream id, ``data:`` the record; heartbeats as comments.

    Where it starts: after ``Last-Event-ID`` when the header is sent (a reconnect), else
    after ``since`` (a stream id, or ``now`` for new records only), else from the start.
    """
    opts = request.app[OPTIONS]
    wave_id = await wave_query(request)
    kinds = kinds_query(request)
    resume = request.headers.get("Last-Event-ID", "").strip()  # empty: no last event (the SSE spec)
    since = request.query.get("since")
    start = resume or (since if since is not None else "0")
    if start != "now":
        check_stream_id(start, "Last-Event-ID" if resume else "since")
    stream = WaveKeys(wave_id).results
    async with request.app[HUB].subscribe(wave_id) as (sub, upto):
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        try:
            await response.write(f"retry: {RETRY_MS}\n: following {wave_id}\n\n".encode())
            await pump(request.app[CTX].redis, response, stream, sub, upto if start == "now" else start, upto,
                       kinds, opts.heartbeat_s)
        except ConnectionError:
            pass  # the client left; it resumes with Last-Event-ID
        except asyncio.CancelledError:
            raise
        except Exception:  # headers are sent: all we can do is end the stream (the client resumes)
            log.exception("results stream of %s ended by an error", wave_id)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response


class EventSink(Protocol):
    async def write(self, data: bytes) -> None: ...


async def pump(redis: Redis, out: EventSink, stream: str, sub: Subscriber, cursor: str, upto: str,
               kinds: frozenset[str] | None, heartbeat_s: float) -> None:
    """Send everything after ``cursor``, once, until the subscriber is closed.

    ``upto`` is where the subscriber's queue begins: Redis serves ``(cursor, upto]``, the
    queue what follows; after an overflow the queue is drained, and Redis serves the gap.
    """
    while not sub.closed:
        cursor = await _catch_up(redis, out, stream, cursor, upto, kinds, sub)
        cursor = await _live(out, sub, cursor, kinds, heartbeat_s)
        if sub.closed:
            return
        upto = sub.resync()


async def _catch_up(redis: Redis, out: EventSink, stream: str, cursor: str, upto: str,
                    kinds: frozenset[str] | None, sub: Subscriber) -> str:
    """Send what lies after ``cursor`` up to ``upto`` (inclusive), straight from Redis."""
    while id_key(cursor) < id_key(upto) and not sub.closed:
        page = await redis.xrange(stream, min=f"({cursor}", max=upto, count=CATCH_UP_PAGE)
        if not page:
            break
        entries = [Entry.of(stream_id, fields) for stream_id, fields in page]
        payload = _event_bytes(entries, kinds)
        if payload:
            await out.write(payload)
        cursor = entries[-1].stream_id
    return cursor if id_key(cursor) >= id_key(upto) or sub.closed else upto


async def _live(out: EventSink, sub: Subscriber, cursor: str, kinds: frozenset[str] | None,
                heartbeat_s: float) -> str:
    """Send the feed's batches until the subscriber closes or overflowed (and its queue is drained)."""
    last = id_key(cursor)
    while True:
        if sub.overflowed and sub.queue.empty():
            return cursor
        try:
            batch = await asyncio.wait_for(sub.queue.get(), heartbeat_s)
        except TimeoutError:
            await out.write(b": keep-alive\n\n")
            continue
        if batch is None or sub.closed:
            return cursor
        fresh = [e for e in batch if e.key > last]
        if fresh:
            payload = _event_bytes(fresh, kinds)
            if payload:
                await out.write(payload)
            cursor, last = fresh[-1].stream_id, fresh[-1].key
