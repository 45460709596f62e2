"""Prometheus metrics of one engine process: what it did, and what Redis says is left to do.

One :class:`Metrics` per process (``Context.metrics``), on its own ``CollectorRegistry``:
no module-level state, so tests and several contexts in one process never mix counts.
The catalogue (every metric, its type, labels and meaning) is in the README ("Metrics, dashboards,
alerts and logs").

Two kinds of numbers:

* **this process's work** — counters and histograms the dispatcher, the finisher, the
  correlation and the webhooks update as they go; summed across processes in PromQL;
* **the shared state in Redis** — queue depth, waves, windows, consumer lag, target slots —
  read by a :class:`Refresher` every ``refresh_s`` in the background (a scrape never waits
  on Redis) and exposed as gauges; every process reports the same values, so dashboards
  take ``max`` over instances.

No label carries a phone number, a name or a debtor id: label values are channels,
outcomes, targets, zones, waves, groups and small fixed vocabularies.

Connectors report their sessions through the same object (the runner sets
``connector.metrics`` before opening it)::

    metrics.set_connections("smpp", "acme-1", up=3, configured=4)   # binds bound / wanted
    metrics.throttled("smpp", "acme-1")                             # an ESME_RTHROTTLED
    metrics.gateway_response("wa-main", 429)                        # an HTTP answer's status
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from engine import keys
from engine.keys import CHANNEL_ORDER, WaveKeys
from engine.outcomes import Outcome

if TYPE_CHECKING:
    from engine.context import Context

log = logging.getLogger("engine.metrics")

#: Error kinds counted in ``volna_errors_total`` (initialised at 0 so rates exist from the start).
ERROR_KINDS = ("batch", "send", "late_event", "unknown_correlation", "lease_renewal", "recovery",
               "metrics_refresh", "webhook_sink")
WEBHOOK_VERDICTS = ("accepted", "unsigned", "bad_signature", "too_large", "malformed", "sink_error",
                    "stalled", "overloaded", "verify_ok", "verify_refused", "other")
_WEBHOOK_POST_VERDICT = {200: "accepted", 400: "malformed", 401: "unsigned", 403: "bad_signature",
                         408: "stalled", 413: "too_large", 429: "overloaded", 503: "sink_error"}
#: Waves whose day is at least this many days before today (engine clock, UTC) and that are
#: no longer running or paused are not reported: the ``wave`` label stays bounded.
WAVE_RETENTION_DAYS = 1
#: Attempts remembered between acceptance and their final event, for accepted→final latency.
ACCEPTED_MEMORY = 50_000
#: Phases of an attempt in a dispatcher loop (``engine.dispatcher.Job.phase``).
_PHASES = ("claimed", "sending", "wire", "recording")
_CAUSE = re.compile(r"cause=(\d{1,3})\b")


class LoopView(Protocol):
    """What the metrics read of a dispatcher loop (``engine.dispatcher.ChannelLoop``)."""

    @property
    def channel(self) -> str: ...
    @property
    def targets(self) -> Mapping[str, Any]: ...
    @property
    def inflight(self) -> Mapping[str, Any]: ...
    @property
    def connector(self) -> Any: ...


class FastCounter:
    """A labelled counter for the hot path: a dict increment, no lock (one event loop updates
    and collects it); exposed like a ``prometheus_client`` counter."""

    __slots__ = ("doc", "labels", "name", "values")

    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name, self.doc, self.labels = name, doc, list(labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], n: float = 1) -> None:
        self.values[key] = self.values.get(key, 0) + n

    def touch(self, key: tuple[str, ...]) -> None:
        """Make the series exist at 0."""
        self.values.setdefault(key, 0)

    def family(self) -> Metric:
        fam = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, value in self.values.items():
            fam.add_metric(list(key), value)
        return fam


class FastHistogram:
    """A labelled histogram for the hot path: one bisect and two list updates per observation."""

    __slots__ = ("bounds", "doc", "labels", "name", "values")

    def __init__(self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.doc, self.labels, self.bounds = name, doc, list(labels), tuple(buckets)
        #: Per series: a count per bucket (not cumulative), the +Inf bucket, then the sum.
        self.values: dict[tuple[str, ...], list[float]] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        row = self.values.get(key)
        if row is None:
            row = self.values[key] = [0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def touch(self, key: tuple[str, ...]) -> None:
        if key not in self.values:
            self.values[key] = [0] * (len(self.bounds) + 2)

    def family(self) -> Metric:
        fam = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        for key, row in self.values.items():
            total, buckets = 0.0, []
            for le, n in zip(les, row[:-1], strict=True):
                total += n
                buckets.append((le, total))
            fam.add_metric(list(key), buckets, sum_value=row[-1])
        return fam


class Metrics:
    def __init__(self, *, refresh_s: float = 5.0, process: bool = True) -> None:
        self.refresh_s = refresh_s
        r = self.registry = CollectorRegistry()
        if process:
            ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, …
        ch, tg = ["channel"], ["channel", "target"]
        # The hot path (per attempt): dict-backed, collected at scrape time.
        self.tasks_claimed = FastCounter("volna_tasks_claimed", "Attempts claimed from wave queues", ch)
        self.tasks_sent = FastCounter("volna_tasks_sent", "Attempts handed to the connector (past begin-send: "
                                      "the point of no return)", tg)
        self.send_results = FastCounter("volna_send_results", "Connector answers to a send: accepted, final, "
                                        "retry (nothing reached the peer), error (may have reached it)",
                                        [*tg, "result"])
        self.tasks_finished = FastCounter("volna_tasks_finished", "Attempts ended with an outcome (counted once, "
                                          "by the process that recorded it); final=false: a retry or cascade "
                                          "follows", ["channel", "outcome", "final"])
        self.caps_hit = FastCounter("volna_caps_hit", "Attempts refused by a per-debtor contact cap",
                                    ["cap_class", "channel"])
        self.pacing_waits = FastCounter("volna_pacing_waits", "Times a send waited for its target's rate or "
                                        "concurrency limit", ["target", "limit"])
        self.pacing_wait_seconds = FastCounter("volna_pacing_wait_seconds", "Seconds sends spent waiting for "
                                               "their target's limits", ["target", "limit"])
        self.late_events = FastCounter("volna_late_events", "Late events (receipts, hang-ups, webhooks) "
                                       "received, with no known attempt (unknown_id), or not recorded (failed)",
                                       ["channel", "result"])
        self.hangup_causes = FastCounter("volna_call_hangup_causes", "Ended IVR attempts by Q.850 hang-up cause",
                                         ["cause"])
        self.claim_to_send = FastHistogram(
            "volna_claim_to_send_seconds", "From claim to the connector call (gates and pacing)", ch,
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.send_to_accepted = FastHistogram(
            "volna_send_to_accepted_seconds", "The connector's answer time: the gateway's acceptance (or a "
            "synchronous outcome)", ch,
            (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.accepted_to_final = FastHistogram(
            "volna_accepted_to_final_seconds", "From acceptance to the final event (receipt, hang-up), seen by "
            "the process that accepted the attempt", ch,
            (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600))
        self._fast: list[FastCounter | FastHistogram] = [
            self.tasks_claimed, self.tasks_sent, self.send_results, self.tasks_finished, self.caps_hit,
            self.pacing_waits, self.pacing_wait_seconds, self.late_events, self.hangup_causes,
            self.claim_to_send, self.send_to_accepted, self.accepted_to_final]
        # Per request or per state change: prometheus_client's own.
        self.webhook_requests = Counter("volna_webhook_requests", "Webhook requests by provider and verdict",
                                        ["provider", "verdict"], registry=r)
        self.errors = Counter("volna_errors", "Errors by kind (each also logged)", ["kind"], registry=r)
        # Reported by connectors.
        self.connections_up = Gauge("volna_connections_up", "Sessions of a connector that are up (SMPP binds "
                                    "bound, AMI sessions logged in, gateway clients open)",
                                    ["kind", "target"], registry=r)
        self.connections_configured = Gauge("volna_connections_configured", "Sessions a connector keeps open "
                                            "when healthy", ["kind", "target"], registry=r)
        self.throttled_total = Counter("volna_throttled", "Requests a peer refused for throttling (SMPP "
                                       "ESME_RTHROTTLED/RMSGQFUL, HTTP 429), retried", ["kind", "target"],
                                       registry=r)
        self.gateway_responses = Counter("volna_gateway_responses", "HTTP gateway answers by status class "
                                         "(2xx, 3xx, 4xx, 429, 5xx, timeout, connect_error)",
                                         ["target", "status"], registry=r)
        self.info = Gauge("volna_build_info", "Always 1; the engine's version", ["version"], registry=r)
        self.info.labels(_version()).set(1)
        # Series start at 0: a counter first seen after it rose would hide that rise from rate().
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        for channel in map(str, CHANNEL_ORDER):
            for outcome in Outcome:
                for final in ("true", "false"):
                    self.tasks_finished.touch((channel, outcome.value, final))
            for result in ("received", "unknown_id", "failed"):
                self.late_events.touch((channel, result))
        self._children: dict[tuple[Any, ...], Any] = {}
        self._accepted: OrderedDict[str, float] = OrderedDict()
        self._loops: list[LoopView] = []
        self._snapshot: list[Metric] = []
        r.register(_Live(self))

    # ---- the dispatcher's hot path ------------------------------------------------------------
    # ``channel`` may be a ``Channel`` (a StrEnum hashes by its name, not its value): str() it.

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def claimed(self, channel: str, n: int) -> None:
        self.tasks_claimed.inc((str(channel),), n)

    def sending(self, channel: str, target: str, claimed_mono: float) -> float:
        """A send begins now; returns the monotonic start for :meth:`answered`."""
        now = time.monotonic()
        channel = str(channel)
        self.tasks_sent.inc((channel, target))
        if claimed_mono:
            self.claim_to_send.observe((channel,), max(now - claimed_mono, 0.0))
        return now

    def answered(self, channel: str, target: str, result: str, started: float) -> None:
        """``result``: accepted, final, retry or error (the connector raised)."""
        channel = str(channel)
        self.send_results.inc((channel, target, result))
        if result != "error":
            self.send_to_accepted.observe((channel,), time.monotonic() - started)

    def accepted(self, attempt_key: str) -> None:
        self._accepted[attempt_key] = time.monotonic()
        if len(self._accepted) > ACCEPTED_MEMORY:
            self._accepted.popitem(last=False)

    def finished(self, channel: str, outcome: str, final: bool, attempt_key: str = "",
                 provider_code: str | None = None) -> None:
        channel = str(channel)
        self.tasks_finished.inc((channel, outcome, "true" if final else "false"))
        if self._accepted:
            at = self._accepted.pop(attempt_key, None)
            if at is not None:
                self.accepted_to_final.observe((channel,), time.monotonic() - at)
        if provider_code and channel == "ivr":
            m = _CAUSE.search(provider_code)
            if m and int(m.group(1)) < 128:
                self.hangup_causes.inc((m.group(1),))

    def cap_hit(self, cap_class: str, channel: str) -> None:
        self.caps_hit.inc((cap_class, str(channel)))

    def pacing_wait(self, target: str, limit: str, seconds: float) -> None:
        """``limit``: rate or concurrency. Waits of zero or less are not waits."""
        if seconds > 0:
            self.pacing_waits.inc((target, limit))
            self.pacing_wait_seconds.inc((target, limit), seconds)

    def late_event(self, channel: str, result: str = "received") -> None:
        self.late_events.inc((str(channel), result))

    def error(self, kind: str) -> None:
        self._child(self.errors, kind).inc()

    # ---- connectors ---------------------------------------------------------------------------

    def set_connections(self, kind: str, target: str, up: int, configured: int | None = None) -> None:
        self.connections_up.labels(kind, target).set(up)
        if configured is not None:
            self.connections_configured.labels(kind, target).set(configured)

    def throttled(self, kind: str, target: str, n: int = 1) -> None:
        self.throttled_total.labels(kind, target).inc(n)

    def gateway_response(self, target: str, status: int | str) -> None:
        """An HTTP status (counted as 2xx/3xx/4xx/429/5xx) or ``timeout`` / ``connect_error``."""
        if isinstance(status, int):
            status = "429" if status == 429 else f"{min(max(status // 100, 2), 5)}xx"
        self.gateway_responses.labels(target, status).inc()

    # ---- webhooks -----------------------------------------------------------------------------

    def webhook(self, provider: str, verdict: str) -> None:
        self._child(self.webhook_requests, provider, verdict).inc()

    def meter_webhooks(self, routes: Iterable[web.RouteDef]) -> list[web.RouteDef]:
        """The webhook routes (``engine.webhooks.webhook_routes``), each answer counted by its
        status (the endpoints' documented contract: 200 accepted, 400 malformed, 401 unsigned,
        403 bad signature, 413 too large, 503 the core could not record it)."""
        out = []
        for route in routes:
            provider = route.path.rstrip("/").rsplit("/", 1)[-1]
            for verdict in WEBHOOK_VERDICTS:
                self.webhook_requests.labels(provider, verdict)
            out.append(web.RouteDef(route.method, route.path, self._metered(provider, route.method, route.handler),
                                    route.kwargs))
        return out

    def _metered(self, provider: str, method: str, handler: Any) -> Callable[[web.Request], Awaitable[Any]]:
        async def counted(request: web.Request) -> web.StreamResponse:
            status = 500
            try:
                response: web.StreamResponse = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                if method == "GET":
                    verdict = "verify_ok" if status == 200 else "verify_refused"
                else:
                    verdict = _WEBHOOK_POST_VERDICT.get(status, "other")
                self.webhook(provider, verdict)
                if verdict == "sink_error":
                    self.error("webhook_sink")

        return counted

    # ---- serving and refreshing ---------------------------------------------------------------

    def handler(self) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The aiohttp handler of ``GET /metrics`` (``make_app(ctx, metrics=ctx.metrics.handler())``)."""
        return metrics_handler(self.registry)

    def watch(self, loops: Sequence[LoopView]) -> None:
        """Report in-flight attempts, loops and targets of these dispatcher loops."""
        self._loops = list(loops)
        for loop in loops:
            channel = str(loop.channel)
            self.tasks_claimed.touch((channel,))
            for cap_class in ("conversation", "message"):
                self.caps_hit.touch((cap_class, channel))
            for hist in (self.claim_to_send, self.send_to_accepted, self.accepted_to_final):
                hist.touch((channel,))
            for target in loop.targets:
                self.tasks_sent.touch((channel, target))
                for result in ("accepted", "final", "retry", "error"):
                    self.send_results.touch((channel, target, result))
                for limit in ("rate", "concurrency"):
                    self.pacing_waits.touch((target, limit))
                    self.pacing_wait_seconds.touch((target, limit))

    def refresher(self, ctx: Context, loops: Sequence[LoopView] = ()) -> Refresher:
        """The background reader of Redis (an async context manager); ``loops`` as :meth:`watch`."""
        self.watch(loops)
        return Refresher(self, ctx)

    def cleanup_ctx(self, ctx: Context) -> Callable[[web.Application], AsyncIterator[None]]:
        """For ``app.cleanup_ctx.append(...)``: the refresher runs while the app does."""

        async def refreshing(app: web.Application) -> AsyncIterator[None]:
            async with self.refresher(ctx):
                yield

        return refreshing


class _Live(Collector):
    """Collected at scrape time from memory: loops' in-flight attempts and the last Redis snapshot."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterable[Metric]:
        inflight = GaugeMetricFamily("volna_inflight", "Attempts this process holds between claim and the "
                                     "connector's answer, by phase (claimed, sending, wire, recording)",
                                     labels=["channel", "target", "phase"])
        loops = GaugeMetricFamily("volna_dispatcher_loops", "Channel loops running in this process",
                                  labels=["channel"])
        healthy = GaugeMetricFamily("volna_target_healthy", "1 while the connector may use the target",
                                    labels=["channel", "target"])
        for loop in self.m._loops:
            channel = str(loop.channel)
            loops.add_metric([channel], 1)
            # Zeros for every target and phase, so a rate or a sum has a series from the start.
            counts: dict[tuple[str, str], int] = {(t, p): 0 for t in loop.targets for p in _PHASES}
            for job in list(loop.inflight.values()):
                key = (job.target or "-", job.phase)
                counts[key] = counts.get(key, 0) + 1
            for (target, phase), n in sorted(counts.items()):
                inflight.add_metric([channel, target, phase], n)
            for name in loop.targets:
                healthy.add_metric([channel, name], 1 if loop.connector.healthy(name) else 0)
        yield from (inflight, loops, healthy)
        for fast in self.m._fast:
            yield fast.family()
        yield from self.m._snapshot


class Refresher:
    """Reads the shared state from Redis every ``metrics.refresh_s`` in one pipelined round trip."""

    def __init__(self, metrics: Metrics, ctx: Context) -> None:
        self.m = metrics
        self.ctx = ctx
        self._task: asyncio.Task[None] | None = None
        self.refreshes = 0

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
        ctx = self.ctx
        redis = ctx.redis
        now = ctx.clock.now_ms()
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
        replies = await pipe.execute(raise_on_error=False)
        self.m._snapshot = self._families(now, waves, replies, targets, time.monotonic() - started)
        self.refreshes += 1

    async def _waves(self, now_ms: int) -> list[tuple[str, str]]:
        """(wave, state) of the waves worth reporting: not finished, or of today or yesterday."""
        redis = self.ctx.redis
        ids = sorted(await redis.smembers(keys.WAVES))
        if not ids:
            return []
        pipe = redis.pipeline(transaction=False)
        for wave_id in ids:
            pipe.hmget(WaveKeys(wave_id).meta, ["state", "day"])
        metas = await pipe.execute()
        oldest = (datetime.fromtimestamp(now_ms / 1000, UTC).date() - timedelta(days=WAVE_RETENTION_DAYS)).isoformat()
        return [(w, state) for w, (state, day) in zip(ids, metas, strict=True)
                if state and (state in ("created", "running", "paused") or (day or "") >= oldest)]

    def _families(self, now: int, waves: list[tuple[str, str]], replies: list[Any],
                  targets: list[tuple[str, str, Any]], took_s: float) -> list[Metric]:
        g = _Families()
        zones: dict[str, int] = {}
        per_wave = 2 + 2 * len(CHANNEL_ORDER) + 1
        for i, (wave_id, state) in enumerate(waves):
            part = replies[i * per_wave : (i + 1) * per_wave]
            counts = {k: int(v) for k, v in part[0].items()} if isinstance(part[0], dict) else {}
            for s in ("created", "running", "paused", "stopped", "completed"):
                g.add("volna_wave_state", "1 for the wave's current state", {"wave": wave_id, "state": s},
                      1 if s == state else 0)
            for name, field in (("total", "total"), ("queued", "queued"), ("in_flight", "leased"),
                                ("final", "final"), ("sent", "sent")):
                g.add("volna_wave_tasks", "A wave's tasks by state (total, queued, in_flight, final, sent)",
                      {"wave": wave_id, "state": name}, counts.get(field, 0))
            for key, n in counts.items():
                if key.startswith("o:"):
                    g.add("volna_wave_outcomes", "A wave's tasks by final outcome",
                          {"wave": wave_id, "outcome": key[2:]}, n)
                elif key.startswith("z:") and not key.startswith("z:multi:"):
                    zones[key[2:]] = zones.get(key[2:], 0) + n
            for j, ch in enumerate(CHANNEL_ORDER):
                depth, eligible = part[1 + 2 * j], part[2 + 2 * j]
                if counts.get(f"c:{ch}:total", 0) or _int(depth):
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
        windows = self.ctx.windows
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
            g.add("volna_target_max_concurrent", "A target's concurrency limit", labels, spec.max_concurrent)
            g.add("volna_target_rate_limit_per_second", "A target's configured rate", labels, spec.rate_per_s)
            if channel == "ivr":
                g.add("volna_active_calls", "Calls up on an Asterisk trunk (its held slots)", {"target": name},
                      in_use)
        g.add("volna_metrics_refresh_seconds", "How long the last read of Redis took", {}, took_s)
        g.add("volna_metrics_refreshed_timestamp_seconds", "When Redis was last read (Unix time)", {}, time.time())
        return g.families()

    def _eta(self, now: int, counts: dict[str, int]) -> float | None:
        remaining = counts.get("queued", 0) + counts.get("leased", 0)
        minute, frac = now // 60000, (now % 60000) / 60000
        per_min = counts.get(f"m:{minute}", 0) + counts.get(f"m:{minute - 1}", 0) * (1 - frac)
        if remaining == 0:
            return 0.0
        return None if per_min <= 0 else remaining / per_min * 60

    def _window_left(self, now: int, state: str, counts: dict[str, int]) -> float | None:
        zones = [k[2:] for k in counts if k.startswith("z:") and not k.startswith("z:multi:")]
        if state not in ("running", "paused") or not zones:
            return None
        closes = [s.closes_at_ms for s in self.ctx.windows.zone_states(zones, now)
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("volna")
    except PackageNotFoundError:
        return "dev"


class MetricsServer:
    """``/metrics`` on its own port (``volna run --metrics-port N``); :meth:`close` stops it."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self.runner = runner
        self.port = port

    async def close(self) -> None:
        await self.runner.cleanup()

    async def __aenter__(self) -> MetricsServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def metrics_handler(registry: CollectorRegistry) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler exposing ``registry`` (text format, or OpenMetrics when asked for)."""

    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(registry), headers={"Content-Type": content_type})

    return metrics


async def serve_metrics(port: int, registry: CollectorRegistry, host: str = "0.0.0.0") -> MetricsServer:
    """Serve ``GET /metrics`` of ``registry`` on ``host:port`` (0: any free port) in this event loop.

    Scrapes run on the engine's own loop (no thread), so the live gauges read the loops'
    state safely; a scrape never touches Redis (the :class:`Refresher` does, in the background).
    """
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(registry))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    log.info("metrics on http://%s:%s/metrics", host, bound)
    return MetricsServer(runner, bound)
