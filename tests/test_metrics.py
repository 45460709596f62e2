"""Metrics: what an engine run exposes at /metrics, and that dashboards and alerts ask for nothing else.

Acceptance 1 is :func:`test_every_metric_dashboards_and_alerts_use_is_served`: a real wave
through the in-process runner, both ``/metrics`` endpoints scraped over HTTP, every metric
name any dashboard panel or alert rule selects (parsed with ``promql-parser``) found there.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from engine.metrics.http import serve_metrics
from engine.metrics.registry import Metrics
from tests.redis_server import free_port
from tests.test_metrics_support import NAME, MeteredConnector, observed_engine, wave_rows

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
#: Series Prometheus makes itself (never on an exporter's page).
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"}
#: Every label name the engine may use; values of these are bounded vocabularies or config names.
LABELS = {"channel", "target", "outcome", "final", "phase", "wave", "zone", "group", "state", "kind",
          "cap_class", "limit", "result", "cause", "provider", "verdict", "status", "le", "version", "prompt",
          "queue", "decision"}
_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def grafana_to_promql(expr: str) -> str:
    """A panel's query as Prometheus can run it: ``$__rate_interval`` → ``1m``, ``$wave`` → ``.*``."""
    for name, value in _VARS.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?(\w+)(?::\w+)?\}?", ".*", expr)


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) of every panel target."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((board["title"], panel["title"], grafana_to_promql(target["expr"])))
    return out


def rule_queries() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [(rule.get("alert") or rule["record"], rule["expr"]) for g in doc["groups"] for rule in g["rules"]]


def promql() -> Any:
    """``promql_parser``, a dev dependency (pyproject: ``promql-parser>=0.12``): a test that needs it
    says so and skips when it is missing."""
    return pytest.importorskip("promql_parser", reason="promql-parser is not installed (pip install promql-parser)")


def metric_names(expr: str) -> set[str]:
    promql_parser = promql()
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for m in node.matchers.matchers:
                if m.name == "__name__":
                    names.add(m.value)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def referenced_metrics() -> dict[str, set[str]]:
    """Metric name → where it is used."""
    used: dict[str, set[str]] = {}
    for board, title, expr in dashboard_queries():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(f"{board} / {title}")
    for alert, expr in rule_queries():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(f"alert {alert}")
    return used


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def test_queries_parse_and_name_metrics() -> None:
    used = referenced_metrics()
    assert len(dashboard_queries()) >= 40 and len(rule_queries()) >= 10
    assert {"volna_tasks_sent_total", "volna_queue_depth", "volna_connections_up", "up",
            "volna_webhook_requests_total", "volna_results_consumer_lag"} <= set(used)


async def test_every_metric_dashboards_and_alerts_use_is_served(redis_url: str) -> None:
    async with observed_engine(redis_url) as obs:
        await obs.settled()
        await asyncio.sleep(0.5)  # a refresh after the last change
        served_by = {"dispatcher": await obs.scrape(obs.dispatcher_url), "api": await obs.scrape(obs.api_url)}
    names = {name for text in served_by.values() for name, _, _ in samples(text)}
    missing = {m: sorted(w) for m, w in referenced_metrics().items() if m not in names and m not in PROMETHEUS_OWN}
    assert not missing, f"referenced but not served: {json.dumps(missing, indent=1, ensure_ascii=False)}"
    dispatcher = {(n, tuple(sorted(lb.items()))): v for n, lb, v in samples(served_by["dispatcher"])}
    # The wave really went through: claims, sends, outcomes by channel, a cap, a retry, an error.
    assert dispatcher[("volna_tasks_claimed_total", (("channel", "sms"),))] >= 45
    assert dispatcher[("volna_caps_hit_total", (("cap_class", "message"), ("channel", "sms")))] == 1
    assert dispatcher[("volna_errors_total", (("kind", "send"),))] == 1
    assert dispatcher[("volna_send_results_total", (("channel", "sms"), ("result", "retry"),
                                                     ("target", "smpp-acme")))] == 1
    assert dispatcher[("volna_call_hangup_causes_total", (("cause", "17"),))] == 2
    api = {(n, tuple(sorted(lb.items()))): v for n, lb, v in samples(served_by["api"])}
    assert api[("volna_webhook_requests_total", (("provider", "whatsapp"), ("verdict", "bad_signature")))] == 1
    assert api[("volna_webhook_requests_total", (("provider", "whatsapp"), ("verdict", "unsigned")))] == 1
    assert api[("volna_webhook_requests_total", (("provider", "whatsapp"), ("verdict", "accepted")))] == 6


async def test_labels_carry_no_personal_data(redis_url: str) -> None:
    rows = wave_rows()
    async with observed_engine(redis_url) as obs:
        await obs.settled()
        await asyncio.sleep(0.5)
        texts = [await obs.scrape(obs.dispatcher_url), await obs.scrape(obs.api_url)]
    personal = ({r["phone"] for r in rows} | {r["phone"][1:] for r in rows} | {r["debtor_id"] for r in rows}
                | {r["task_id"] for r in rows} | {NAME})
    for text in texts:
        assert NAME not in text
        for name, labels, _ in samples(text):
            if not name.startswith("volna_"):
                continue
            assert set(labels) <= LABELS, (name, labels)
            assert not set(labels.values()) & personal, (name, labels)


def test_each_metrics_object_counts_alone() -> None:
    a, b = Metrics(), Metrics()
    a.claimed("sms", 5)
    a.gateway_response("wa", 429)
    a.gateway_response("wa", 503)
    a.gateway_response("wa", 201)
    a.gateway_response("wa", "timeout")
    assert a.registry.get_sample_value("volna_tasks_claimed_total", {"channel": "sms"}) == 5
    assert b.registry.get_sample_value("volna_tasks_claimed_total", {"channel": "sms"}) is None
    for status in ("429", "5xx", "2xx", "timeout"):
        assert a.registry.get_sample_value("volna_gateway_responses_total", {"target": "wa", "status": status}) == 1


def test_outcomes_latency_and_causes() -> None:
    m = Metrics(process=False)
    m.accepted("w:t1:1")
    m.finished("ivr", "answered", True, "w:t1:1", "reason=4;cause=16")
    m.finished("ivr", "busy", False, "w:t2:1", "reason=5;cause=17")
    m.finished("ivr", "failed", True, "w:t3:1", "cause=999")  # not a Q.850 cause: not a label
    m.finished("sms", "delivered", True, "w:t4:1", "cause=16")
    get = m.registry.get_sample_value
    assert get("volna_accepted_to_final_seconds_count", {"channel": "ivr"}) == 1
    assert get("volna_tasks_finished_total", {"channel": "ivr", "outcome": "busy", "final": "false"}) == 1
    assert get("volna_call_hangup_causes_total", {"cause": "16"}) == 1
    assert get("volna_call_hangup_causes_total", {"cause": "17"}) == 1
    assert get("volna_call_hangup_causes_total", {"cause": "999"}) is None
    assert get("volna_errors_total", {"kind": "batch"}) == 0  # every kind exists from the start


async def test_metrics_server_serves_text_and_openmetrics() -> None:
    m = Metrics()
    m.claimed("ivr", 2)
    server = await serve_metrics(0, m.registry, host="127.0.0.1")
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{server.port}/metrics") as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
                assert 'volna_tasks_claimed_total{channel="ivr"} 2.0' in await r.text()
                assert "process_resident_memory_bytes" in await r.text()
            async with s.get(f"http://127.0.0.1:{server.port}/metrics",
                             headers={"Accept": "application/openmetrics-text; version=1.0.0"}) as r:
                assert r.headers["Content-Type"].startswith("application/openmetrics-text")
                assert (await r.text()).rstrip().endswith("# EOF")
    finally:
        await server.close()


async def test_api_app_serves_metrics_without_a_token(redis: aioredis.Redis, redis_url: str) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from engine.api.app import make_app
    from engine.calendar.clock import ScaledClock
    from tests.harness import context, make_settings

    ctx = context(make_settings(redis_url), ScaledClock(1_796_115_600_000), redis)
    ctx.metrics.claimed("sms", 3)
    app = make_app(ctx, metrics=ctx.metrics.handler())
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/metrics")
        assert r.status == 200
        assert 'volna_tasks_claimed_total{channel="sms"} 3.0' in await r.text()


async def test_volna_run_serves_metrics_on_its_port(redis: aioredis.Redis, redis_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``volna run --metrics-port N``: the dispatcher's own metrics on N while it runs, gone after."""
    import connectors.registry
    from engine.cli.main import build_parser
    from engine.cli.run import cmd_run
    from tests.harness import make_settings

    monkeypatch.setattr(connectors.registry, "build_connector", lambda ch, settings: MeteredConnector(ch))
    port = free_port()
    args = build_parser().parse_args(["run", "--channels", "sms", "--metrics-port", str(port)])
    assert build_parser().parse_args(["run"]).metrics_port is None  # off unless asked for
    run = asyncio.create_task(cmd_run(args, make_settings(redis_url)))
    text = ""
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(100):
                try:
                    async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                        text = await r.text()
                    if "volna_dispatcher_loops" in text and "volna_metrics_refreshed_timestamp_seconds" in text:
                        break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # cmd_run's own handler: stop, drain, close
        assert await asyncio.wait_for(run, 20) == 0
    assert 'volna_dispatcher_loops{channel="sms"} 1.0' in text
    assert 'volna_connections_up{kind="smpp",target="smpp-acme"} 2.0' in text
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics"):
            pass


def test_no_metric_is_named_twice_in_the_catalogue() -> None:
    catalogue = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\| `(volna_\w+)`", catalogue, flags=re.M)
    assert len(documented) == len(set(documented))
    served = {fam.name for fam in Metrics().registry.collect()} | {
        # From Redis (the refresher) and the live collector: listed by hand here.
        "volna_inflight", "volna_dispatcher_loops", "volna_target_healthy", "volna_queue_depth",
        "volna_queue_eligible", "volna_wave_state", "volna_wave_tasks", "volna_wave_outcomes",
        "volna_wave_eta_seconds", "volna_wave_window_left_seconds", "volna_results_stream_length",
        "volna_results_consumer_lag", "volna_results_consumer_pending", "volna_window_open",
        "volna_window_closes_in_seconds", "volna_window_opens_in_seconds", "volna_target_slots_in_use",
        "volna_target_max_concurrent", "volna_target_rate_limit_per_second", "volna_active_calls",
        "volna_metrics_refresh_seconds", "volna_metrics_refreshed_timestamp_seconds", "volna_archive_lag_records",
        "volna_redis_replicas_online", "volna_redis_replica_lag_seconds", "volna_redis_master_changes_total"}
    counters = {f.name for f in Metrics().registry.collect() if f.type == "counter"}
    expected = {f"{n}_total" if n in counters else n for n in served if n.startswith("volna_")}
    assert expected == set(documented), (expected ^ set(documented))
