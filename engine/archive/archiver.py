"""``volna archive``: every wave's results stream, the stop-list's changes and the API audit
into PostgreSQL, exactly once.

Each stream is read through one consumer group (``archive.group``) that every archiver shares.
A batch is written in one transaction and acknowledged in Redis only after its commit, so:

* a crash before the commit leaves the batch pending in the group: another archiver (or this
  one restarted) takes it over once it has been idle ``archive.claim_idle_s`` (``XAUTOCLAIM``);
* a crash after the commit and before the acknowledgement delivers it again: every table's key
  is the stream entry's id (a contact's, its attempt), and the write skips what is there.

The fast path COPYs a batch straight into its tables; when a key is already there (a batch
written once before), the transaction is rolled back and the batch goes through temporary
tables and ``INSERT … ON CONFLICT DO NOTHING``. Contacts always take the second path (one
attempt may have several records that make it a contact).

Between batches the archiver marks finished, fully archived waves, purges those past
``retention.redis_hours`` (:mod:`engine.archive.purge`) and, when ``archive.retention_every_s``
is set, applies the retention rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import psycopg
from psycopg import sql
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.archive import purge, rows
from engine.archive.db import connect, describe, migrate, reason
from engine.archive.rows import Destination, Entry
from engine.calendar.clock import Clock
from engine.config.settings import Settings
from engine.domain.models import Task
from engine.domain.phones import phone_hash
from engine.domain.scenarios import Scenario
from engine.domain.wave import WaveState
from engine.errors import ArchiveUnavailable
from engine.metrics.registry import Metrics
from engine.store import keys
from engine.store.durable import DurableWait
from engine.store.keys import WaveKeys
from engine.store.schema import RECORD_FIELD, Meta

log = logging.getLogger("engine.archive")

TASK_COLUMNS = ("wave_id", "task_id", "campaign_id", "debtor_id", "channel", "scenario", "region", "tz",
                "priority", "cascade", "day")
PERSONAL_COLUMNS = ("wave_id", "task_id", "debtor_id", "phone", "phone_hash", "vars", "day")
STOP_COLUMNS = ("stream_ms", "stream_seq", "op", "kind", "debtor_id", "phone_hash", "masked", "reason", "at", "by")
AUDIT_COLUMNS = ("source", "stream_ms", "stream_seq", "who", "role", "what", "target", "status", "peer", "at",
                 "detail")
#: (table, columns, conflict target or None: always through ON CONFLICT DO NOTHING on the key).
TABLES: dict[str, tuple[tuple[str, ...], bool]] = {
    "tasks": (TASK_COLUMNS, False),
    "task_personal": (PERSONAL_COLUMNS, False),
    "results": (rows.RESULT_COLUMNS, True),
    "inbound": (rows.INBOUND_COLUMNS, True),
    "other_records": (rows.OTHER_COLUMNS, True),
    "contacts": (rows.CONTACT_COLUMNS, False),
    "stoplist_changes": (STOP_COLUMNS, True),
    "audit": (AUDIT_COLUMNS, True),
}


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WaveInfo:
    campaign_id: str
    day: date
    state: str
    meta: dict[str, str]


@dataclass
class Batch:
    """What one round writes, by table, and the stream ids it acknowledges after the commit."""

    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t: [] for t in TABLES})
    acks: dict[str, list[str]] = field(default_factory=dict)
    #: Waves first seen while preparing it: their rows are written in its transaction.
    waves: list[tuple[str, WaveInfo]] = field(default_factory=list)
    #: (wave, task) whose ``tasks`` rows it writes.
    tasks_written: list[tuple[str, str]] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(len(ids) for ids in self.acks.values())


class Archiver:
    """One archiver process (any number may run against one Redis and one PostgreSQL)."""

    def __init__(self, redis: Redis, settings: Settings, clock: Clock, scenarios: dict[str, Scenario], *,
                 consumer: str | None = None, metrics: Metrics | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.clock = clock
        self.scenarios = scenarios
        self.group = settings.archive.group
        self.consumer = consumer or consumer_name()
        self.metrics = metrics
        self.phone_key = settings.retention.require_phone_key()
        self.conn: psycopg.AsyncConnection | None = None
        self._waves: dict[str, WaveInfo] = {}
        #: (wave, task) already written to ``tasks`` by this process (the rest is ON CONFLICT's).
        self._tasks_seen: set[tuple[str, str]] = set()
        self._last_claim = 0.0
        #: The batch being written while the next one is prepared (one in flight: the two cores
        #: of a small machine then serve Python and PostgreSQL at once).
        self._writing: asyncio.Task[int] | None = None
        self._new_waves: list[tuple[str, WaveInfo]] = []
        #: What this process last wrote of each wave's row (state, archived, meta fields).
        self._wave_rows: dict[str, tuple[str, bool, int]] = {}
        self._last_retention = time.monotonic()
        self.cluster = isinstance(redis, RedisCluster)
        self.durable = None if self.cluster else DurableWait.of(settings.redis)

    # ---- life ------------------------------------------------------------------------------

    async def open(self) -> None:
        self.conn = await connect(self.settings.archive)
        try:
            await migrate(self.conn)
            for table, (_, _) in TABLES.items():
                await self.conn.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) "
                                                "ON COMMIT DELETE ROWS").format(sql.Identifier(f"tmp_{table}"),
                                                                                sql.Identifier(table)))
            await self.conn.commit()
        except psycopg.Error as exc:
            raise ArchiveUnavailable(f"PostgreSQL at {describe(self.settings.archive.dsn)} failed: "
                                     f"{reason(exc)}") from None

    async def close(self) -> None:
        if self._writing is not None:
            self._writing.cancel()
            with contextlib.suppress(BaseException):
                await self._writing
            self._writing = None
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    async def __aenter__(self) -> Archiver:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop``; a PostgreSQL outage is waited out (nothing is acknowledged
        meanwhile, so nothing is lost)."""
        failures = 0
        while not stop.is_set():
            try:
                if self.conn is None or self.conn.closed:
                    await self.open()
                n = await self.round(block=True)
                if n == 0:
                    await self.housekeeping()
                failures = 0
                if stop.is_set():
                    await self.flush()
            except (ArchiveUnavailable, psycopg.OperationalError) as exc:
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    log.warning("archive unavailable (%d in a row): %s", failures, exc)
                await self.close()
                await _sleep_or_stop(stop, min(30.0, 0.5 * 2 ** min(failures, 6)))
            except (RedisConnectionError, RedisTimeoutError) as exc:
                # Redis away, or failing over to a replica (Sentinel): nothing was acknowledged
                # that was not written, so the next round on the new master goes on from there.
                failures += 1
                log.warning("Redis unavailable (%d in a row): %s", failures, exc)
                with contextlib.suppress(Exception):
                    await self.flush()
                await _sleep_or_stop(stop, min(5.0, 0.2 * 2 ** min(failures, 5)))

    async def drain(self, *, purge_waves: bool = True) -> int:
        """``--once``: archive what is there (with records a dead archiver left pending), mark and
        purge what may go; returns the records written."""
        total = 0
        await self.claim_abandoned(force=True)
        while True:
            n = await self.round(block=False)
            total += n
            if n == 0:
                break
        await self.flush()
        await self.housekeeping(purge_waves=purge_waves)
        return total

    async def flush(self) -> None:
        """Waits for the batch in flight (its errors are raised here)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def housekeeping(self, *, purge_waves: bool = True) -> None:
        await self.flush()
        await self.mark_archived()
        if purge_waves:
            await self.purge()
        await self.trim_side_streams()
        every = self.settings.archive.retention_every_s
        if every and time.monotonic() - self._last_retention >= every:
            from engine.archive.retention import apply_retention

            assert self.conn is not None
            await apply_retention(self.conn, self.settings.retention, self.clock.now_ms())
            self._last_retention = time.monotonic()

    # ---- one round -------------------------------------------------------------------------

    async def streams(self) -> dict[str, str]:
        """stream key → wave id ('' for the stop-list changes and the audit), groups ensured."""
        ids = sorted(await self.redis.smembers(keys.WAVES))
        for wave_id in ids:
            if wave_id not in self._waves:
                await self._ensure_group(WaveKeys(wave_id).results)
                await self._wave_info(wave_id)
        for wave_id in [w for w in self._waves if w not in ids]:
            self._forget(wave_id)
        out = {WaveKeys(w).results: w for w in ids}
        for side in (keys.STOP_CHANGES, keys.AUDIT, keys.INBOUND):
            await self._ensure_group(side)
            out[side] = ""
        return out

    async def round(self, *, block: bool) -> int:
        """Reads up to ``batch_size`` records per stream, writes them, acknowledges them."""
        streams = await self.streams()
        await self.claim_abandoned()
        batch_size = self.settings.archive.batch_size
        block_ms = int(self.settings.archive.poll_s * 1000) if block else None
        entries: list[tuple[str, str, dict[str, str] | None]] = []
        if self.cluster:
            for name in streams:
                answer = await self.redis.xreadgroup(self.group, self.consumer, {name: ">"}, count=batch_size)
                entries += [(n, i, f) for n, page in answer or [] for i, f in page]
        elif self.durable is not None:
            # Archive only records the replicas / the AOF hold: a failover (or a power cut) cannot
            # then take back a final result the archive already has. XREADGROUP is a write (the
            # group's pending list), so WAIT on the same connection covers every record it read.
            pipe = self.redis.pipeline(transaction=False)
            pipe.xreadgroup(self.group, self.consumer, dict.fromkeys(streams, ">"), count=batch_size, block=block_ms)
            pipe.execute_command(*self.durable.command())
            answer, reply = await pipe.execute()
            entries = [(n, i, f) for n, page in answer or [] for i, f in page]
            if entries and not self.durable.met(reply):
                # Left pending: taken over again after claim_idle_s, if a failover has not erased them.
                log.warning("%d records not yet on the replicas / in the AOF: archived later", len(entries))
                return 0
        else:
            answer = await self.redis.xreadgroup(self.group, self.consumer, dict.fromkeys(streams, ">"),
                                                 count=batch_size, block=block_ms)
            entries = [(n, i, f) for n, page in answer or [] for i, f in page]
        if not entries:
            return 0
        return await self.archive(streams, entries)

    async def claim_abandoned(self, *, force: bool = False) -> int:
        """Takes over records another archiver read and never acknowledged (it died), after
        ``claim_idle_s``; they are archived by the next :meth:`archive` of this process."""
        idle_s = self.settings.archive.claim_idle_s
        if not force and time.monotonic() - self._last_claim < idle_s / 2:
            return 0
        self._last_claim = time.monotonic()
        streams = await self.streams()
        taken: list[tuple[str, str, dict[str, str] | None]] = []
        for name in streams:
            cursor = "0-0"
            while True:
                try:
                    reply, durable = await self._autoclaim(name, idle_s, cursor)
                except ResponseError as exc:
                    if "NOGROUP" in str(exc):
                        break
                    raise
                cursor, claimed = reply[0], reply[1]
                if durable:
                    taken += [(name, i, f) for i, f in claimed]
                elif claimed:
                    log.warning("%d records to take over not yet on the replicas / in the AOF: later", len(claimed))
                if cursor in ("0-0", b"0-0"):
                    break
        if taken:
            log.info("took over %d records an archiver left unacknowledged", len(taken))
            await self.archive(streams, taken)
            await self.flush()
        return len(taken)

    async def _autoclaim(self, name: str, idle_s: float, cursor: str) -> tuple[Any, bool]:
        """One XAUTOCLAIM page, and whether what it took is durable (WAIT on the same connection:
        a master cut off and back for a moment must not hand over records a failover forgets)."""
        count = self.settings.archive.batch_size
        if self.durable is None:
            reply = await self.redis.xautoclaim(name, self.group, self.consumer, int(idle_s * 1000),
                                                start_id=cursor, count=count)
            return reply, True
        pipe = self.redis.pipeline(transaction=False)
        pipe.xautoclaim(name, self.group, self.consumer, int(idle_s * 1000), start_id=cursor, count=count)
        pipe.execute_command(*self.durable.command())
        reply, waited = await pipe.execute()
        return reply, self.durable.met(waited)

    async def archive(self, streams: dict[str, str], entries: Sequence[tuple[str, str, dict[str, str] | None]]
                      ) -> int:
        """Prepares the batch (Redis only), then writes it once the batch before it is committed;
        returns its records. The write and the acknowledgement run while the caller reads on."""
        batch = await self.prepare(streams, entries)
        await self.flush()
        self._writing = asyncio.create_task(self.commit(batch), name="archive-write")
        return batch.records

    async def prepare(self, streams: dict[str, str], entries: Sequence[tuple[str, str, dict[str, str] | None]]
                      ) -> Batch:
        batch = Batch()
        wanted: dict[str, set[str]] = {}
        parsed: list[Entry] = []
        for name, stream_id, fields in entries:
            batch.acks.setdefault(name, []).append(stream_id)
            wave_id = streams.get(name, "")
            if name == keys.STOP_CHANGES:
                batch.tables["stoplist_changes"].append(rows.stop_change_row(stream_id, fields or {}))
            elif name == keys.AUDIT:
                batch.tables["audit"].append(rows.audit_row(stream_id, fields or {}))
            elif name == keys.INBOUND:
                # Callbacks and replies whose wave had left Redis, and those from unknown numbers.
                if fields is not None:
                    self._side_inbound(rows.parse_entry("", stream_id, fields, RECORD_FIELD), batch)
            elif fields is not None:  # None: an entry trimmed away meanwhile (acknowledged, nothing to write)
                entry = rows.parse_entry(wave_id, stream_id, fields, RECORD_FIELD)
                parsed.append(entry)
                task_id = (entry.record or {}).get("task_id")
                if isinstance(task_id, str) and task_id:
                    wanted.setdefault(wave_id, set()).add(task_id)
        tasks = await self._tasks(wanted, batch)
        for entry in parsed:
            info = await self._wave_info(entry.wave_id)
            dest = rows.destination(entry)
            if dest is Destination.RESULTS:
                batch.tables["results"].append(rows.result_row(entry, info.day, info.campaign_id))
                task = tasks.get((entry.wave_id, str((entry.record or {}).get("task_id"))))
                scenario = self.scenarios.get(task.scenario) if task is not None else None
                contact = rows.contact_of(entry, info.day, info.campaign_id, scenario, task)
                if contact is not None:
                    batch.tables["contacts"].append(contact)
            elif dest is Destination.INBOUND:
                batch.tables["inbound"].append(rows.inbound_row(entry, info.day, info.campaign_id))
            else:
                batch.tables["other_records"].append(rows.other_row(entry))
        batch.waves, self._new_waves = self._new_waves, []
        return batch

    @staticmethod
    def _side_inbound(entry: Entry, batch: Batch) -> None:
        r = entry.record or {}
        wave_id = r.get("wave_id")
        entry = Entry(wave_id if isinstance(wave_id, str) else "", entry.stream_id, entry.record, entry.raw)
        if rows.destination(entry) is Destination.INBOUND:
            at = rows.ts(r.get("finished_at"))
            day = at.date() if at is not None else date.today()
            batch.tables["inbound"].append(rows.inbound_row(entry, day, str(r.get("campaign_id") or "")))
        else:
            batch.tables["other_records"].append(rows.other_row(entry))

    async def commit(self, batch: Batch) -> int:
        """One transaction, then the acknowledgement in Redis (only after the commit)."""
        try:
            await self.write(batch)
        except BaseException:
            self._new_waves = batch.waves + self._new_waves  # written with a later batch
            raise
        pipe = self.redis.pipeline(transaction=False)
        for name, ids in batch.acks.items():
            for start in range(0, len(ids), 1000):
                pipe.xack(name, self.group, *ids[start:start + 1000])
        await pipe.execute()
        self._tasks_seen.update(batch.tasks_written)
        if self.metrics is not None:
            for table, table_rows in batch.tables.items():
                if table_rows:
                    self.metrics.archive_rows.labels(table).inc(len(table_rows))
        return batch.records

    async def _tasks(self, wanted: dict[str, set[str]], batch: Batch) -> dict[tuple[str, str], Task]:
        """The tasks the records name (read from the wave's tasks hash: a contact's text needs
        them), added to the batch unless this process wrote them before."""
        out: dict[tuple[str, str], Task] = {}
        for wave_id, wanted_ids in wanted.items():
            order = sorted(wanted_ids)
            info = await self._wave_info(wave_id)
            raws = await self.redis.hmget(WaveKeys(wave_id).tasks, order)
            for task_id, raw in zip(order, raws, strict=True):
                if raw is None:
                    continue
                try:
                    task = Task.model_validate_json(raw)
                except ValueError:
                    log.warning("task %s of wave %s does not parse: archived without it", task_id, wave_id)
                    continue
                out[(wave_id, task_id)] = task
                if (wave_id, task_id) in self._tasks_seen:
                    continue
                batch.tasks_written.append((wave_id, task_id))
                batch.tables["tasks"].append((wave_id, task_id, task.campaign_id, task.debtor_id, task.channel.value,
                                              task.scenario, task.region, task.tz, task.priority,
                                              [c.value for c in task.cascade], info.day))
                batch.tables["task_personal"].append((
                    wave_id, task_id, task.debtor_id, task.phone, phone_hash(self.phone_key, task.phone),
                    orjson.dumps(task.vars).decode(), info.day))
        return out

    async def write(self, batch: Batch) -> None:
        """One transaction: COPY straight in; when a key is already there, again through
        ON CONFLICT DO NOTHING."""
        conn = self.conn
        assert conn is not None
        try:
            async with conn.transaction():
                await self._copy(conn, batch, direct=True)
                for wave_id, info in batch.waves:
                    await self._upsert_wave(wave_id, info)
        except psycopg.errors.UniqueViolation:
            async with conn.transaction():
                await self._copy(conn, batch, direct=False)
                for wave_id, info in batch.waves:
                    await self._upsert_wave(wave_id, info)

    async def _copy(self, conn: psycopg.AsyncConnection, batch: Batch, *, direct: bool) -> None:
        async with conn.cursor() as cur:
            for table, (columns, copy_direct) in TABLES.items():
                table_rows = batch.tables[table]
                if not table_rows:
                    continue
                straight = direct and copy_direct
                target = table if straight else f"tmp_{table}"
                cols = sql.SQL(", ").join(map(sql.Identifier, columns))
                async with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(target), cols)) as copy:
                    for row in table_rows:
                        await copy.write_row(row)
                if not straight:
                    await cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                        sql.Identifier(table), cols, cols, sql.Identifier(target)))
                    await cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(target)))

    # ---- waves -------------------------------------------------------------------------------

    async def _ensure_group(self, stream: str) -> None:
        try:
            await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _wave_info(self, wave_id: str) -> WaveInfo:
        info = self._waves.get(wave_id)
        if info is not None:
            return info
        meta = await self.redis.hgetall(WaveKeys(wave_id).meta)
        day = date.fromisoformat(meta[Meta.DAY]) if meta.get(Meta.DAY) else date(1970, 1, 1)
        info = WaveInfo(str(meta.get(Meta.CAMPAIGN_ID) or ""), day, str(meta.get(Meta.STATE) or ""), meta)
        self._waves[wave_id] = info
        self._new_waves.append((wave_id, info))
        return info

    async def _upsert_wave(self, wave_id: str, info: WaveInfo, *, archived: bool = False) -> None:
        conn = self.conn
        assert conn is not None
        finished = info.meta.get(f"{info.state}_at") if info.state in (WaveState.COMPLETED, WaveState.STOPPED) else None
        async with conn.transaction():
            await conn.execute("INSERT INTO campaigns (campaign_id) VALUES (%s) ON CONFLICT DO NOTHING",
                               (info.campaign_id,))
            await conn.execute(
                "INSERT INTO waves (wave_id, campaign_id, day, state, meta, finished_at, archived_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) "
                "ON CONFLICT (wave_id) DO UPDATE SET state = excluded.state, meta = excluded.meta, "
                "finished_at = excluded.finished_at, "
                "archived_at = coalesce(waves.archived_at, excluded.archived_at)",
                (wave_id, info.campaign_id, info.day, info.state, json.dumps(info.meta),
                 rows.ts(rows.int_or_none(finished)), archived))

    def _forget(self, wave_id: str) -> None:
        self._waves.pop(wave_id, None)
        self._wave_rows.pop(wave_id, None)
        self._tasks_seen = {k for k in self._tasks_seen if k[0] != wave_id}

    async def mark_archived(self) -> list[str]:
        """Refreshes the waves' rows; a finished wave whose stream is all archived gets archived_at."""
        done = []
        for wave_id in list(self._waves):
            meta = await self.redis.hgetall(WaveKeys(wave_id).meta)
            if not meta:
                continue
            info = self._waves[wave_id]
            info.meta, info.state = meta, str(meta.get(Meta.STATE) or "")
            lag = await purge.archive_lag(self.redis, wave_id, self.group)
            archived = info.state in (WaveState.COMPLETED, WaveState.STOPPED) and lag == 0
            written = (info.state, archived, len(meta))
            if self._wave_rows.get(wave_id) != written:  # an idle archiver writes nothing
                await self._upsert_wave(wave_id, info, archived=archived)
                self._wave_rows[wave_id] = written
            if archived:
                done.append(wave_id)
        return done

    async def purge(self) -> list[str]:
        """Removes the finished, fully archived waves past ``retention.redis_hours``."""
        purged = await purge.purge_waves(self.redis, self.group, self.clock.now_ms(),
                                         self.settings.retention.redis_hours)
        if purged and self.conn is not None:
            async with self.conn.transaction():
                await self.conn.execute("UPDATE waves SET purged_at = now() WHERE wave_id = ANY(%s)", (purged,))
        for wave_id in purged:
            self._forget(wave_id)
            log.info("wave %s purged from Redis (archived)", wave_id)
        if purged and self.metrics is not None:
            self.metrics.archive_purged.inc(len(purged))
        return purged

    async def trim_side_streams(self) -> None:
        """The stop-list changes go once archived (phones are hashed there, but nothing needs
        them twice); the audit keeps ``redis_hours`` of what is archived, for the API to show."""
        now_real_ms = int(time.time() * 1000)
        keep_ms = int(self.settings.retention.redis_hours * 3600 * 1000)
        for stream, floor_ms in ((keys.STOP_CHANGES, None), (keys.INBOUND, None), (keys.AUDIT, now_real_ms - keep_ms)):
            boundary = await purge.archived_boundary(self.redis, stream, self.group)
            if boundary is None:
                continue
            if floor_ms is not None:
                ms, _, _ = boundary.partition("-")
                if int(ms) > floor_ms:
                    boundary = f"{floor_ms}-0"
            await self.redis.xtrim(stream, minid=boundary, approximate=False)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass

