"""The shared state in Redis as gauges: queue depth, waves, windows, consumer lag, target slots.

A :class:`Refresher` reads it every ``Metrics.refresh_s`` in one pipelined round trip in the
background (a scrape never waits on Redis); every process reports the same values, so the
dashboards take ``max`` over instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from engine.calendar.clock import Clock
from engine.calendar.windows import WindowCalendar
from engine.domain.wave import WaveState
from engine.metrics.registry import Metrics
from engine.store import keys
from engine.store.keys import CHANNEL_ORDER, WaveKeys
from engine.store.schema import Counter, Meta, WaveCounts

log = logging.getLogger("engine.metrics.registry")

#: Waves whose day is at least this many days before today (engine clock, UTC) and that are
#: no longer running or paused are not reported: the ``wave`` label stays bounded.
WAVE_RETENTION_DAYS = 1


class Refresher:
    """Reads the shared state from Redis every ``metrics.refresh_s`` in one pipelined round trip
    (an async context manager: it runs while the process serves)."""

    def __init__(self, metrics: Metrics, redis: Redis, clock: Clock, windows: WindowCalendar, *,
                 archive_group: str = "archive") -> None:
        self.m = metrics
        #: The archive's consumer group: its lag on every wave still in Redis is
        #: ``volna_archive_lag_records`` (old waves too: an unarchived wave is never purged).
        self.archive_group = archive_group
        self.redis = redis
        self.clock = clock
        self.windows = windows
        self._task: asyncio.Task[None] | None = None
        self._all_waves: list[str] = []
        self.refreshes = 0
        self._replid: str | None = None
        self.master_changes = 0

    async def __aenter__(self) -> Refresher:
        self._task = asyncio.create_task(self._run(), name="metrics-refresher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Stopped loops and an old snapshot must not be reported as if still true.
        self.m._loops = []
        self.m._snapshot = []

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self.refresh()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.m.error("metrics_refresh")
                if failures == 1 or failures % 100 == 0:
                    log.warning("metrics refresh failed (%d in a row): %s", failures, exc)
            await asyncio.sleep(self.m.refresh_s)

    async def refresh(self) -> None:
        started = time.monotonic()
        redis = self.redis
        now = self.clock.now_ms()
        waves = await self._waves(now)
        pipe = redis.pipeline(transaction=False)
        for wave_id, _ in waves:
            wk = WaveKeys(wave_id)
            pipe.hgetall(wk.counts)
            for ch in CHANNEL_ORDER:
                pipe.zcard(wk.queue(ch))
                pipe.zcount(wk.queue(ch), "-inf", now * 10 + 9)
            pipe.xlen(wk.results)
            pipe.xinfo_groups(wk.results)
        targets = [(str(loop.channel), name, spec) for loop in self.m._loops for name, spec in loop.targets.items()]
        real_ms = time.time_ns() // 1_000_000
        for _, name, _ in targets:
            pipe.zcount(keys.pacing_slots(name), real_ms, "+inf")
        reported = {w for w, _ in waves}
        older = [w for w in self._all_waves if w not in reported]
        for wave_id in older:
            wk = WaveKeys(wave_id)
            pipe.xlen(wk.results)
            pipe.xinfo_groups(wk.results)
        replies = await pipe.execute(raise_on_error=False)
        base = len(replies) - 2 * len(older)
        lag_parts = [(w, replies[base + 2 * i], replies[base + 2 * i + 1]) for i, w in enumerate(older)]
        per_wave = 2 + 2 * len(CHANNEL_ORDER) + 1
        for i, (wave_id, _) in enumerate(waves):
            part = replies[i * per_wave: (i + 1) * per_wave]
            lag_parts.append((wave_id, part[-2], part[-1]))
        self.m._snapshot = self._families(now, waves, replies[:base], targets, time.monotonic() - started)
        self.m._snapshot += self._archive_lag(lag_parts)
        if not isinstance(redis, RedisCluster):
            self.m._snapshot += self._replication(await redis.info("replication"))
        self.refreshes += 1

    def _replication(self, info: dict[str, Any]) -> list[Metric]:
        """The master's replicas, and how often the master changed (docs/failover.md)."""
        replid = info.get("master_replid")
        if self._replid is not None and replid is not None and replid != self._replid:
            # A new replication id: a replica was promoted (a failover), or Redis restarted.
            self.master_changes += 1
        self._replid = replid if replid is not None else self._replid
        replicas = [v for k, v in info.items() if k.startswith("slave") and k[5:].isdigit() and isinstance(v, dict)]
        online = [r for r in replicas if r.get("state") == "online"]
        g = _Families()
        g.add("volna_redis_replicas_online", "Replicas of the master with a live replication link (INFO "
              "replication; the durable point of no return waits for redis.durable_replicas of them)", {},
              len(online))
        g.add("volna_redis_replica_lag_seconds", "Seconds since the slowest online replica acknowledged the "
              "master's stream (0 without replicas)", {}, max((_int(r.get("lag")) for r in online), default=0))
        changes = CounterMetricFamily("volna_redis_master_changes", "Times this process found a new master "
                                      "replication id: a failover, or a restart of Redis")
        changes.add_metric([], self.master_changes)
        return [*g.families(), changes]

    async def _waves(self, now_ms: int) -> list[tuple[str, str]]:
        """(wave, state) of the waves worth reporting: not finished, or of today or yesterday."""
        redis = self.redis
        ids = sorted(await redis.smembers(keys.WAVES))
        self._all_waves = ids
        if not ids:
            return []
        pipe = redis.pipeline(transaction=False)
        for wave_id in ids:
            pipe.hmget(WaveKeys(wave_id).meta, [Meta.STATE, Meta.DAY])
        metas = await pipe.execute()
        oldest = (datetime.fromtimestamp(now_ms / 1000, UTC).date() - timedelta(days=WAVE_RETENTION_DAYS)).isoformat()
        return [(w, state) for w, (state, day) in zip(ids, metas, strict=True)
                if state and (not WaveState(state).finished or (day or "") >= oldest)]

    def _families(self, now: int, waves: list[tuple[str, str]], replies: list[Any],
                  targets: list[tuple[str, str, Any]], took_s: float) -> list[Metric]:
        g = _Families()
        zones: dict[str, int] = {}
        per_wave = 2 + 2 * len(CHANNEL_ORDER) + 1
        for i, (wave_id, state) in enumerate(waves):
            part = replies[i * per_wave : (i + 1) * per_wave]
            counts = WaveCounts.parse(part[0] if isinstance(part[0], dict) else {})
            for s in WaveState:
                g.add("volna_wave_state", "1 for the wave's current state", {"wave": wave_id, "state": s.value},
                      1 if s == state else 0)
            for name, counter in (("total", Counter.TOTAL), ("queued", Counter.QUEUED), ("in_flight", Counter.LEASED),
                                  ("final", Counter.FINAL), ("sent", Counter.SENT)):
                g.add("volna_wave_tasks", "A wave's tasks by state (total, queued, in_flight, final, sent)",
                      {"wave": wave_id, "state": name}, counts.get(counter))
            for outcome, n in counts.outcomes().items():
                g.add("volna_wave_outcomes", "A wave's tasks by final outcome",
                      {"wave": wave_id, "outcome": outcome}, n)
            for zone, n in counts.zones().items():
                if not zone.startswith("multi:"):
                    zones[zone] = zones.get(zone, 0) + n
            for j, ch in enumerate(CHANNEL_ORDER):
                depth, eligible = part[1 + 2 * j], part[2 + 2 * j]
                if counts.get(Counter.CHANNEL_TOTAL, channel=ch) or _int(depth):
                    labels = {"wave": wave_id, "channel": str(ch)}
                    g.add("volna_queue_depth", "Tasks waiting in a wave's channel queue", labels, _int(depth))
                    g.add("volna_queue_eligible", "Queued tasks that may go now (window open, not before "
                          "reached)", labels, _int(eligible))
            g.add("volna_results_stream_length", "Records in a wave's results stream", {"wave": wave_id},
                  _int(part[-2]))
            groups = part[-1] if isinstance(part[-1], list) else []
            for group in groups:
                labels = {"wave": wave_id, "group": str(group.get("name"))}
                lag = group.get("lag")
                g.add("volna_results_consumer_lag", "Results not yet delivered to a consumer group (XINFO GROUPS "
                      "lag)", labels, _int(lag) if lag is not None else _int(part[-2]))
                g.add("volna_results_consumer_pending", "Results delivered to a group but not acknowledged",
                      labels, _int(group.get("pending")))
            eta, left = self._eta(now, counts), self._window_left(now, state, counts)
            if eta is not None:
                g.add("volna_wave_eta_seconds", "Seconds until a running wave's queue is empty at the last "
                      "minute's rate (engine time)", {"wave": wave_id}, eta)
            if left is not None:
                g.add("volna_wave_window_left_seconds", "Seconds until the last of a wave's zone windows "
                      "closes today (engine time)", {"wave": wave_id}, left)
        windows = self.windows
        for zs in windows.zone_states(sorted(zones), now) if zones else []:
            g.add("volna_window_open", "1 while the contact window is open in the zone", {"zone": zs.zone},
                  1 if zs.open_now else 0)
            if zs.open_now and zs.closes_at_ms is not None:
                g.add("volna_window_closes_in_seconds", "Seconds until the open window of the zone closes",
                      {"zone": zs.zone}, (zs.closes_at_ms - now) / 1000)
            elif zs.opens_at_ms is not None:
                g.add("volna_window_opens_in_seconds", "Seconds until the zone's window opens",
                      {"zone": zs.zone}, (zs.opens_at_ms - now) / 1000)
        base = len(waves) * per_wave
        for k, (channel, name, spec) in enumerate(targets):
            labels = {"channel": channel, "target": name}
            in_use = _int(replies[base + k])
            g.add("volna_target_slots_in_use", "Concurrency slots taken on a target by all processes",
                  labels, in_use)
            if spec.max_concurrent is not None:  # None: the connector bounds it (an SMPP bind's window)
                g.add("volna_target_max_concurrent", "A target's concurrency limit", labels, spec.max_concurrent)
            g.add("volna_target_rate_limit_per_second", "A target's configured rate", labels, spec.rate_per_s)
            if channel == "ivr":
                g.add("volna_active_calls", "Calls up on an Asterisk trunk (its held slots)", {"target": name},
                      in_use)
        g.add("volna_metrics_refresh_seconds", "How long the last read of Redis took", {}, took_s)
        g.add("volna_metrics_refreshed_timestamp_seconds", "When Redis was last read (Unix time)", {}, time.time())
        return g.families()

    def _archive_lag(self, parts: list[tuple[str, Any, Any]]) -> list[Metric]:
        g = _Families()
        for wave_id, length, groups in parts:
            lag = _int(length)  # no archive group yet: nothing of the stream is archived
            for group in groups if isinstance(groups, list) else []:
                if str(group.get("name")) == self.archive_group:
                    behind = group.get("lag")
                    lag = (_int(behind) if behind is not None else _int(length)) + _int(group.get("pending"))
            g.add("volna_archive_lag_records", "Records of a wave's results stream the archive does not hold yet "
                  "(undelivered to its group or unacknowledged); a wave is purged from Redis only at 0",
                  {"wave": wave_id}, lag)
        return g.families()

    def _eta(self, now: int, counts: WaveCounts) -> float | None:
        remaining = counts.get(Counter.QUEUED) + counts.get(Counter.LEASED)
        per_min = counts.per_minute(now)
        if remaining == 0:
            return 0.0
        return None if per_min <= 0 else remaining / per_min * 60

    def _window_left(self, now: int, state: str, counts: WaveCounts) -> float | None:
        zones = [z for z in counts.zones() if not z.startswith("multi:")]
        if state not in (WaveState.RUNNING, WaveState.PAUSED) or not zones:
            return None
        closes = [s.closes_at_ms for s in self.windows.zone_states(zones, now)
                  if s.open_now and s.closes_at_ms is not None]
        return max(0.0, (max(closes) - now) / 1000) if closes else 0.0


class _Families:
    def __init__(self) -> None:
        self._by_name: dict[str, GaugeMetricFamily] = {}

    def add(self, name: str, doc: str, labels: dict[str, str], value: float) -> None:
        fam = self._by_name.get(name)
        if fam is None:
            fam = self._by_name[name] = GaugeMetricFamily(name, doc, labels=list(labels))
        fam.add_metric(list(labels.values()), value)

    def families(self) -> list[Metric]:
        return list(self._by_name.values())


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | str | bytes) and str(value).lstrip("-").isdigit() else 0


def refreshing(metrics: Metrics, redis: Redis, clock: Clock, windows: WindowCalendar
               ) -> Callable[[web.Application], AsyncIterator[None]]:
    """For ``app.cleanup_ctx.append(...)``: the refresher runs while the app does."""

    async def refresh_while_serving(app: web.Application) -> AsyncIterator[None]:
        async with Refresher(metrics, redis, clock, windows):
            yield

    return refresh_while_serving
