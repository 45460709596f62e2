"""Prometheus metrics of one engine process: what it did, and what Redis says is left to do.

One :class:`Metrics` per process (``Context.metrics``), on its own ``CollectorRegistry``:
no module-level state, so tests and several contexts in one process never mix counts.
The catalogue (every metric, its type, labels and meaning) is in docs/metrics.md ("Metrics, dashboards,
alerts and logs").

Two kinds of numbers:

* **this process's work** — counters and histograms the dispatcher, the finisher, the
  correlation and the webhooks update as they go; summed across processes in PromQL;
* **the shared state in Redis** — queue depth, waves, windows, consumer lag, target slots —
  read by a :class:`~engine.metrics.refresh.Refresher` every ``refresh_s`` in the background (a scrape never waits
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

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from engine.domain.attempt import AttemptPhase
from engine.domain.outcomes import Outcome
from engine.metrics.fast import FastCounter, FastHistogram
from engine.metrics.http import metrics_handler
from engine.store.keys import CHANNEL_ORDER

log = logging.getLogger("engine.metrics.registry")

#: Error kinds counted in ``volna_errors_total`` (initialised at 0 so rates exist from the start).
ERROR_KINDS = ("batch", "send", "late_event", "unknown_correlation", "lease_renewal", "recovery",
               "metrics_refresh", "webhook_sink", "durable_wait")
#: Attempts remembered between acceptance and their final event, for accepted→final latency.
ACCEPTED_MEMORY = 50_000
#: Phases of an attempt held by a dispatcher loop (``engine.dispatch.job.Job.phase``).
_PHASES = tuple(p.value for p in (AttemptPhase.CLAIMED, AttemptPhase.RESERVED, AttemptPhase.PACED,
                                  AttemptPhase.SENDING, AttemptPhase.ACCEPTED))
_CAUSE = re.compile(r"cause=(\d{1,3})\b")


class HeldView(Protocol):
    """What the metrics read of the attempts a loop holds (``engine.dispatch.inflight.InFlight``)."""

    @property
    def jobs(self) -> Mapping[str, Any]: ...


class LoopView(Protocol):
    """What the metrics read of a dispatcher loop (``engine.dispatch.loop.ChannelLoop``)."""

    @property
    def channel(self) -> str: ...
    @property
    def targets(self) -> Mapping[str, Any]: ...
    @property
    def inflight(self) -> HeldView: ...
    @property
    def connector(self) -> Any: ...


class Metrics:
    def __init__(self, *, refresh_s: float = 5.0, process: bool = True) -> None:
        self.refresh_s = refresh_s
        #: The connectors' sessions and throttling as plain values, for the console's health report
        #: (engine.metrics.health): (kind, target) → (up, configured), and → throttled so far.
        self.sessions: dict[tuple[str, str], tuple[int, int | None]] = {}
        self.throttles: dict[tuple[str, str], int] = {}
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
        self.connector_events = FastCounter(
            "volna_connector_events", "What connectors count, by kind (smpp, ami, gateway), target and event: "
            "submits, receipts, malformed PDUs, unconfirmed sends, retries, refusals…", ["kind", "target", "event"])
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
            self.pacing_waits, self.pacing_wait_seconds, self.late_events, self.hangup_causes, self.connector_events,
            self.claim_to_send, self.send_to_accepted, self.accepted_to_final]
        # Per request or per state change: prometheus_client's own.
        self.webhook_requests = Counter("volna_webhook_requests", "Webhook requests by provider and verdict",
                                        ["provider", "verdict"], registry=r)
        self.webhook_items_total = Counter("volna_webhook_items", "Items of accepted webhook payloads: event "
                                           "(handed to the core), ignored (not an outcome of ours), skipped "
                                           "(malformed inside a good payload)", ["provider", "result"], registry=r)
        self.errors = Counter("volna_errors", "Errors by kind (each also logged)", ["kind"], registry=r)
        # volna archive.
        self.archive_rows = Counter("volna_archive_rows", "Rows the archiver wrote to PostgreSQL, by table "
                                    "(results, contacts, tasks, …; a redelivered batch counts again)",
                                    ["kind"], registry=r)
        self.archive_purged = Counter("volna_archive_purged_waves", "Finished, fully archived waves whose keys "
                                      "the archiver removed from Redis", registry=r)
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
        # IVR content and operators (per call, from the AMI connector).
        self.prompt_failures = Counter("volna_prompt_failures", "IVR prompts (sound files) that failed to play on "
                                       "a call (PLAYBACKSTATUS)", ["prompt"], registry=r)
        self.operator_transfers = Counter("volna_operator_transfers", "Calls that chose the operator, by queue "
                                          "and how it went: connected, abandoned (hung up waiting), or the "
                                          "queue's refusal (joinempty, timeout, full, …)", ["queue", "result"],
                                          registry=r)
        self.operator_wait = Histogram("volna_operator_wait_seconds", "How long a debtor waited in the operator "
                                       "queue before an agent answered or the debtor hung up", ["queue"],
                                       buckets=(1, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300), registry=r)
        self.operator_agents_gauge = Gauge("volna_operator_agents", "An operator queue as last read (QueueSummary): "
                                           "agents logged_in, available, and callers waiting", ["queue", "state"],
                                           registry=r)
        self.operator_offers = Counter("volna_operator_offers", "Calls placed with 'press 1 for an operator' "
                                       "allowed (offered) or not, and why not (cap_full, no_free_agent, "
                                       "enough_offers)", ["queue", "decision"], registry=r)
        # Callbacks, replies and phones (engine.dispatch.inbound, engine.gates.deactivation).
        self.inbound_total = Counter("volna_inbound", "Inbound calls and messages recorded, by channel, kind "
                                     "(call, message) and result (debtor, unknown: a number the directory "
                                     "does not know)", ["channel", "kind", "result"], registry=r)
        self.inbound_keywords = Counter("volna_inbound_keywords", "Replies that put the debtor on the stop-list, "
                                        "by channel and decision (the stop-list reason: refused, representative)",
                                        ["channel", "decision"],
                                        registry=r)
        self.phones_deactivated = Counter("volna_phones_deactivated", "Phones deactivated after "
                                          "phones.invalid_strikes invalid_number strikes, by cause family "
                                          "(kind: q850, smpp, gateway:<channel>)", ["kind"], registry=r)
        for inbound_ch in map(str, CHANNEL_ORDER):
            for inbound_kind in ("call", "message"):
                for found in ("debtor", "unknown"):
                    self.inbound_total.labels(inbound_ch, inbound_kind, found)
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

    def inbound(self, channel: str, kind: str, match: str) -> None:
        self._child(self.inbound_total, str(channel), kind, match).inc()

    def inbound_keyword(self, reason: str, channel: str) -> None:
        self._child(self.inbound_keywords, str(channel), reason).inc()

    def phone_deactivated(self, family: str) -> None:
        self._child(self.phones_deactivated, family).inc()

    def error(self, kind: str) -> None:
        self._child(self.errors, kind).inc()

    # ---- connectors ---------------------------------------------------------------------------

    def set_connections(self, kind: str, target: str, up: int, configured: int | None = None) -> None:
        self.connections_up.labels(kind, target).set(up)
        known = self.sessions.get((kind, target))
        self.sessions[(kind, target)] = (up, configured if configured is not None else known[1] if known else None)
        if configured is not None:
            self.connections_configured.labels(kind, target).set(configured)

    def throttled(self, kind: str, target: str, n: int = 1) -> None:
        self.throttled_total.labels(kind, target).inc(n)
        self.throttles[(kind, target)] = self.throttles.get((kind, target), 0) + n

    def event(self, kind: str, target: str, event: str, n: int = 1) -> None:
        self.connector_events.inc((kind, target, event), n)

    def prompt_failure(self, prompt: str) -> None:
        self._child(self.prompt_failures, prompt).inc()

    def operator(self, queue: str, result: str, wait_s: float | None = None) -> None:
        self._child(self.operator_transfers, queue, result).inc()
        if wait_s is not None:
            self._child(self.operator_wait, queue).observe(wait_s)

    def operator_agents(self, queue: str, logged_in: int, available: int, callers: int) -> None:
        for state, n in (("logged_in", logged_in), ("available", available), ("callers", callers)):
            self._child(self.operator_agents_gauge, queue, state).set(n)

    def operator_offer(self, queue: str, decision: str) -> None:
        self._child(self.operator_offers, queue, decision).inc()

    def events(self, kind: str, target: str | None = None) -> dict[str, int]:
        """A connector's events so far (one target's, or summed over its targets)."""
        out: dict[str, int] = {}
        for (k, t, event), n in self.connector_events.values.items():
            if k == kind and (target is None or t == target):
                out[event] = out.get(event, 0) + int(n)
        return out

    def gateway_response(self, target: str, status: int | str) -> None:
        """An HTTP status (counted as 2xx/3xx/4xx/429/5xx) or ``timeout`` / ``connect_error``."""
        if isinstance(status, int):
            status = "429" if status == 429 else f"{min(max(status // 100, 2), 5)}xx"
        self.gateway_responses.labels(target, status).inc()

    # ---- webhooks (counted by connectors.messengers.endpoint: its WebhookMetrics) -------------

    def webhook_series(self, provider: str, verdicts: Iterable[str], items: Iterable[str]) -> None:
        """A provider's webhook route is served: its series start at 0."""
        for verdict in verdicts:
            self.webhook_requests.labels(provider, verdict)
        for result in items:
            self.webhook_items_total.labels(provider, result)

    def webhook(self, provider: str, verdict: str) -> None:
        self._child(self.webhook_requests, provider, verdict).inc()

    def webhook_items(self, provider: str, result: str, n: int) -> None:
        self._child(self.webhook_items_total, provider, result).inc(n)

    # ---- serving and refreshing ---------------------------------------------------------------

    def handler(self) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The aiohttp handler of ``GET /metrics`` (``make_app(ctx, metrics=ctx.metrics.handler())``)."""
        return metrics_handler(self.registry)

    @property
    def loops(self) -> list[LoopView]:
        """The dispatcher loops this process watches (empty outside ``volna run``)."""
        return self._loops

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


class _Live(Collector):
    """Collected at scrape time from memory: loops' in-flight attempts and the last Redis snapshot."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterable[Metric]:
        inflight = GaugeMetricFamily("volna_inflight", "Attempts this process holds between claim and the "
                                     "connector's answer, by phase (claimed, reserved, paced, sending, accepted)",
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
            for job in list(loop.inflight.jobs.values()):
                key = (job.target or "-", str(job.phase))
                counts[key] = counts.get(key, 0) + 1
            for (target, phase), n in sorted(counts.items()):
                inflight.add_metric([channel, target, phase], n)
            for name in loop.targets:
                healthy.add_metric([channel, name], 1 if loop.connector.healthy(name) else 0)
        yield from (inflight, loops, healthy)
        for fast in self.m._fast:
            yield fast.family()
        yield from self.m._snapshot


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("volna")
    except PackageNotFoundError:
        return "dev"
