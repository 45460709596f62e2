"""Writes the Grafana dashboards (``grafana/dashboards/*.json``) from the panel lists below.

    python grafana/build.py           # rewrite the JSON files
    python grafana/build.py --check   # exit 1 when a committed file differs (a test runs this)

The JSON is what Grafana provisions (``grafana/provisioning/dashboards/volna.yaml``); this
script only keeps the three dashboards consistent: one datasource uid, one grid, the same
variables. Queries aggregate with ``max`` over instances for the gauges every process reads
from Redis (queue depth, waves, windows, lag, target slots) and with ``sum`` for counters.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DS = {"type": "prometheus", "uid": "volna-prometheus"}
RI = "$__rate_interval"


def var(name: str, query: str, label: str, *, multi: bool = True) -> dict[str, Any]:
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": f"var-{name}"}, "definition": query,
        "refresh": 2, "includeAll": True, "multi": multi, "allValue": ".*", "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [], "hide": 0,
    }


class Board:
    def __init__(self, uid: str, title: str, description: str, variables: list[dict[str, Any]]) -> None:
        self.uid, self.title, self.description, self.variables = uid, title, description, variables
        self.panels: list[dict[str, Any]] = []
        self._x = self._y = self._row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"id": len(self.panels) + 1, "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y}, "panels": []})
        self._y += 1

    def _newline(self) -> None:
        if self._x:
            self._y += self._row_h
            self._x = self._row_h = 0

    def panel(self, kind: str, title: str, targets: list[tuple[str, str]], *, unit: str = "short",
              w: int = 8, h: int = 8, description: str = "", options: dict[str, Any] | None = None,
              overrides: dict[str, Any] | None = None) -> None:
        if self._x + w > 24:
            self._newline()
        defaults: dict[str, Any] = {"unit": unit, **(overrides or {})}
        if kind == "timeseries":
            defaults.setdefault("custom", {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                           "showPoints": "never", "spanNulls": True})
        self.panels.append({
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
            "datasource": DS, "gridPos": {"h": h, "w": w, "x": self._x, "y": self._y},
            "targets": [{"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend,
                         "range": True, "instant": kind in ("stat", "bargauge", "table")}
                        for i, (expr, legend) in enumerate(targets)],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or _OPTIONS.get(kind, {}),
        })
        self._x += w
        self._row_h = max(self._row_h, h)

    def stat(self, title: str, expr: str, *, unit: str = "short", description: str = "") -> None:
        self.panel("stat", title, [(expr, "")], unit=unit, w=4, h=4, description=description)

    def json(self) -> dict[str, Any]:
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["volna"], "timezone": "browser", "editable": True, "graphTooltip": 1,
            "schemaVersion": 39, "version": 1, "refresh": "10s",
            "time": {"from": "now-3h", "to": "now"},
            "annotations": {"list": []},
            "links": [{"type": "dashboards", "tags": ["volna"], "asDropdown": True, "title": "Volna"}],
            "templating": {"list": self.variables},
            "panels": self.panels,
        }


_OPTIONS: dict[str, dict[str, Any]] = {
    "timeseries": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                   "tooltip": {"mode": "multi", "sort": "desc"}},
    "stat": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
             "colorMode": "value", "graphMode": "area", "textMode": "auto"},
    "bargauge": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True},
    "table": {"showHeader": True},
}

CHANNEL = 'channel=~"$channel"'
WAVE = 'wave=~"$wave"'


def q(p: float, metric: str, sel: str, by: str = "channel") -> str:
    return f"histogram_quantile({p}, sum by (le, {by}) (rate({metric}_bucket{{{sel}}}[{RI}])))"


def overview() -> Board:
    b = Board("volna-overview", "Volna — overview",
              "Throughput, outcomes, queues, ETA against the window's end, errors.",
              [var("channel", "label_values(volna_tasks_claimed_total, channel)", "Channel"),
               var("wave", "label_values(volna_wave_tasks, wave)", "Wave")])
    b.stat("Dispatcher processes", "count(count by (instance) (volna_dispatcher_loops))",
           description="Processes running at least one channel loop")
    b.stat("Sent / s", f"sum(rate(volna_tasks_sent_total{{{CHANNEL}}}[{RI}]))", unit="reqps")
    b.stat("Queued", f"sum(max by (wave, channel) (volna_queue_depth{{{CHANNEL}, {WAVE}}}))")
    b.stat("Eligible now", f"sum(max by (wave, channel) (volna_queue_eligible{{{CHANNEL}, {WAVE}}}))")
    b.stat("Error ratio (final outcomes)",
           f'(sum(rate(volna_tasks_finished_total{{final="true", outcome=~"error|unknown|failed", {CHANNEL}}}[{RI}]))'
           f' or vector(0)) / clamp_min(sum(rate(volna_tasks_finished_total{{final="true", {CHANNEL}}}[{RI}])), 1e-9)',
           unit="percentunit")
    b.stat("Zones with the window open", "sum(max by (zone) (volna_window_open))")
    b.row("Throughput and outcomes")
    b.panel("timeseries", "Sent per second by channel",
            [(f"sum by (channel) (rate(volna_tasks_sent_total{{{CHANNEL}}}[{RI}]))", "{{channel}}"),
             (f"sum by (channel) (rate(volna_tasks_claimed_total{{{CHANNEL}}}[{RI}]))", "claimed {{channel}}")],
            unit="reqps")
    b.panel("timeseries", "Final outcomes per second",
            [(f'sum by (outcome) (rate(volna_tasks_finished_total{{final="true", {CHANNEL}}}[{RI}]))',
              "{{outcome}}")], unit="reqps")
    b.panel("timeseries", "Retries and cascades per second",
            [(f'sum by (channel, outcome) (rate(volna_tasks_finished_total{{final="false", {CHANNEL}}}[{RI}]))',
              "{{channel}} {{outcome}}")], unit="reqps")
    b.row("Queues and the day's window")
    b.panel("timeseries", "Queue depth by wave and channel",
            [(f"max by (wave, channel) (volna_queue_depth{{{CHANNEL}, {WAVE}}})", "{{wave}} {{channel}}"),
             (f"max by (wave, channel) (volna_queue_eligible{{{CHANNEL}, {WAVE}}})",
              "eligible {{wave}} {{channel}}")], w=12)
    b.panel("timeseries", "ETA against the window's end",
            [(f"max by (wave) (volna_wave_eta_seconds{{{WAVE}}})", "ETA {{wave}}"),
             (f"max by (wave) (volna_wave_window_left_seconds{{{WAVE}}})", "window left {{wave}}")],
            unit="s", w=12,
            description="Time to empty each running wave at the last minute's rate, beside the time left "
                        "until the last of its zones' windows closes: ETA above the window line means "
                        "tasks will end window_missed.")
    b.panel("timeseries", "In flight by target",
            [(f"sum by (channel, target, phase) (volna_inflight{{{CHANNEL}}})", "{{target}} {{phase}}")])
    b.panel("timeseries", "Pacing: seconds waited per second",
            [(f"sum by (target, limit) (rate(volna_pacing_wait_seconds_total[{RI}]))", "{{target}} {{limit}}")],
            description="About the number of sends waiting for a target's rate or concurrency at any moment")
    b.panel("timeseries", "Caps hit per second",
            [(f"sum by (cap_class) (rate(volna_caps_hit_total{{{CHANNEL}}}[{RI}]))", "{{cap_class}}")],
            unit="reqps")
    b.panel("timeseries", "Windows open by zone",
            [("max by (zone) (volna_window_open)", "{{zone}}")], w=12)
    b.panel("timeseries", "Results consumer lag",
            [(f"max by (wave, group) (volna_results_consumer_lag{{{WAVE}}})", "{{wave}} {{group}}")], w=12)
    b.row("Latency and errors")
    b.panel("timeseries", "Claim → send (p50, p95)",
            [(q(0.5, "volna_claim_to_send_seconds", CHANNEL), "p50 {{channel}}"),
             (q(0.95, "volna_claim_to_send_seconds", CHANNEL), "p95 {{channel}}")], unit="s")
    b.panel("timeseries", "Send → accepted (p50, p95)",
            [(q(0.5, "volna_send_to_accepted_seconds", CHANNEL), "p50 {{channel}}"),
             (q(0.95, "volna_send_to_accepted_seconds", CHANNEL), "p95 {{channel}}")], unit="s")
    b.panel("timeseries", "Accepted → final (p50, p95)",
            [(q(0.5, "volna_accepted_to_final_seconds", CHANNEL), "p50 {{channel}}"),
             (q(0.95, "volna_accepted_to_final_seconds", CHANNEL), "p95 {{channel}}")], unit="s")
    b.panel("timeseries", "Errors per second by kind",
            [(f"sum by (kind) (rate(volna_errors_total[{RI}]))", "{{kind}}")], unit="reqps", w=12)
    b.panel("timeseries", "Connector answers per second",
            [(f"sum by (channel, result) (rate(volna_send_results_total{{{CHANNEL}}}[{RI}]))",
              "{{channel}} {{result}}")], unit="reqps", w=12)
    b.row("Redis: replication and failover")
    b.panel("timeseries", "Replicas online / lag (s)",
            [("max(volna_redis_replicas_online)", "replicas online"),
             ("max(volna_redis_replica_lag_seconds)", "slowest replica's lag (s)")], w=8)
    b.panel("timeseries", "Master changes (failovers)",
            [(f"max(increase(volna_redis_master_changes_total[{RI}]))", "new master")], w=8)
    b.panel("timeseries", "Batches not durable in time, per second",
            [(f'sum(rate(volna_errors_total{{kind="durable_wait"}}[{RI}]))', "back to the queue unsent")],
            unit="reqps", w=8)
    return b


def connectors() -> Board:
    b = Board("volna-connectors", "Volna — connectors",
              "SMPP binds, TPS, throttling and receipts; AMI sessions, CPS, active calls and hang-up "
              "causes; HTTP gateways' 429/5xx and webhooks.",
              [var("target", "label_values(volna_tasks_sent_total, target)", "Target")])
    tgt = 'target=~"$target"'
    b.row("SMS (SMPP)")
    b.panel("timeseries", "SMPP binds up / configured",
            [(f'max by (target) (volna_connections_up{{kind="smpp", {tgt}}})', "up {{target}}"),
             (f'max by (target) (volna_connections_configured{{kind="smpp", {tgt}}})', "configured {{target}}")],
            w=6)
    b.panel("timeseries", "SMS submits per second by account",
            [(f'sum by (target) (rate(volna_tasks_sent_total{{channel="sms", {tgt}}}[{RI}]))', "{{target}}"),
             (f'max by (target) (volna_target_rate_limit_per_second{{channel="sms", {tgt}}})',
              "limit {{target}}")], unit="reqps", w=6)
    b.panel("timeseries", "Throttling per second",
            [(f'sum by (target) (rate(volna_throttled_total{{kind="smpp", {tgt}}}[{RI}]))', "throttled {{target}}"),
             (f'sum by (target) (rate(volna_send_results_total{{channel="sms", result="retry", {tgt}}}[{RI}]))',
              "requeued {{target}}")], unit="reqps", w=6)
    b.panel("timeseries", "Receipt latency (accepted → final, p50, p95)",
            [(q(0.5, "volna_accepted_to_final_seconds", 'channel="sms"'), "p50"),
             (q(0.95, "volna_accepted_to_final_seconds", 'channel="sms"'), "p95")], unit="s", w=6)
    b.row("IVR (Asterisk AMI)")
    b.panel("timeseries", "AMI sessions up / configured",
            [(f'max by (target) (volna_connections_up{{kind="ami", {tgt}}})', "up {{target}}"),
             (f'max by (target) (volna_connections_configured{{kind="ami", {tgt}}})', "configured {{target}}")],
            w=6)
    b.panel("timeseries", "Calls per second by trunk",
            [(f'sum by (target) (rate(volna_tasks_sent_total{{channel="ivr", {tgt}}}[{RI}]))', "{{target}}"),
             (f'max by (target) (volna_target_rate_limit_per_second{{channel="ivr", {tgt}}})', "limit {{target}}")],
            unit="reqps", w=6)
    b.panel("timeseries", "Active calls by trunk",
            [(f"max by (target) (volna_active_calls{{{tgt}}})", "{{target}}"),
             (f'max by (target) (volna_target_max_concurrent{{channel="ivr", {tgt}}})', "limit {{target}}")], w=6)
    b.panel("timeseries", "Hang-up causes per second",
            [(f"sum by (cause) (rate(volna_call_hangup_causes_total[{RI}]))", "cause {{cause}}")],
            unit="reqps", w=6)
    b.panel("timeseries", "Call outcomes per second",
            [(f'sum by (outcome) (rate(volna_tasks_finished_total{{channel="ivr"}}[{RI}]))', "{{outcome}}")],
            unit="reqps", w=12)
    b.panel("timeseries", "Originate answer time and call length (p95)",
            [(q(0.95, "volna_send_to_accepted_seconds", 'channel="ivr"'), "originate → accepted"),
             (q(0.95, "volna_accepted_to_final_seconds", 'channel="ivr"'), "accepted → hang-up")], unit="s", w=12)
    b.row("Messengers (HTTP gateways) and webhooks")
    b.panel("timeseries", "Gateway answers per second (429, 5xx, …)",
            [(f"sum by (target, status) (rate(volna_gateway_responses_total{{{tgt}}}[{RI}]))",
              "{{target}} {{status}}")], unit="reqps")
    b.panel("timeseries", "Messages per second by account",
            [(f'sum by (channel, target) (rate(volna_tasks_sent_total{{channel=~"viber|whatsapp", {tgt}}}[{RI}]))',
              "{{channel}} {{target}}")], unit="reqps")
    b.panel("timeseries", "Gateway clients up",
            [(f'max by (target) (volna_connections_up{{kind="http", {tgt}}})', "{{target}}"),
             (f'min by (channel, target) (volna_target_healthy{{channel=~"viber|whatsapp", {tgt}}})',
              "healthy {{target}}")])
    b.panel("timeseries", "Webhooks per second by provider and verdict",
            [(f"sum by (provider, verdict) (rate(volna_webhook_requests_total[{RI}]))", "{{provider}} {{verdict}}")],
            unit="reqps")
    b.panel("timeseries", "Webhook signature failures per second",
            [(f'sum by (provider) (rate(volna_webhook_requests_total{{verdict=~"unsigned|bad_signature"}}[{RI}]))',
              "{{provider}}")], unit="reqps")
    b.panel("timeseries", "Late events per second",
            [(f"sum by (channel, result) (rate(volna_late_events_total[{RI}]))", "{{channel}} {{result}}")],
            unit="reqps")
    b.panel("timeseries", "Concurrency slots in use by target",
            [(f"max by (channel, target) (volna_target_slots_in_use{{{tgt}}})", "{{channel}} {{target}}")], w=12)
    b.panel("timeseries", "Connector answer time (p95)",
            [(q(0.95, "volna_send_to_accepted_seconds", ""), "{{channel}}")], unit="s", w=12)
    return b


def waves() -> Board:
    b = Board("volna-waves", "Volna — waves", "Progress of each wave: tasks by state, outcomes, queues, "
              "ETA against the window, results consumers.",
              [var("wave", "label_values(volna_wave_tasks, wave)", "Wave")])
    b.panel("bargauge", "Progress (final / total)",
            [(f'max by (wave) (volna_wave_tasks{{state="final", {WAVE}}})'
              f' / clamp_min(max by (wave) (volna_wave_tasks{{state="total", {WAVE}}}), 1)', "{{wave}}")],
            unit="percentunit", w=12, overrides={"min": 0, "max": 1})
    b.panel("table", "Wave state",
            [(f"max by (wave, state) (volna_wave_state{{{WAVE}}}) == 1", "")], w=12,
            options={"showHeader": True})
    b.panel("timeseries", "Tasks by state",
            [(f"max by (wave, state) (volna_wave_tasks{{{WAVE}}})", "{{wave}} {{state}}")], w=12)
    b.panel("timeseries", "Completed per minute",
            [(f'max by (wave) (deriv(volna_wave_tasks{{state="final", {WAVE}}}[5m])) * 60', "{{wave}}")], w=12)
    b.panel("timeseries", "ETA against the window's end",
            [(f"max by (wave) (volna_wave_eta_seconds{{{WAVE}}})", "ETA {{wave}}"),
             (f"max by (wave) (volna_wave_window_left_seconds{{{WAVE}}})", "window left {{wave}}")], unit="s", w=12)
    b.panel("timeseries", "Queue by channel",
            [(f"max by (wave, channel) (volna_queue_depth{{{WAVE}}})", "{{wave}} {{channel}}"),
             (f"max by (wave, channel) (volna_queue_eligible{{{WAVE}}})", "eligible {{wave}} {{channel}}")], w=12)
    b.panel("timeseries", "Final outcomes by wave",
            [(f"max by (wave, outcome) (volna_wave_outcomes{{{WAVE}}})", "{{wave}} {{outcome}}")], w=12)
    b.panel("timeseries", "Results consumers: lag and pending",
            [(f"max by (wave, group) (volna_results_consumer_lag{{{WAVE}}})", "lag {{wave}} {{group}}"),
             (f"max by (wave, group) (volna_results_consumer_pending{{{WAVE}}})", "pending {{wave}} {{group}}")],
            w=12)
    b.panel("table", "Zones: window open, closes in, opens in",
            [("max by (zone) (volna_window_open)", ""),
             ("min by (zone) (volna_window_closes_in_seconds)", ""),
             ("min by (zone) (volna_window_opens_in_seconds)", "")], w=12)
    return b


BOARDS = {"volna-overview.json": overview, "volna-connectors.json": connectors, "volna-waves.json": waves}


def render() -> dict[str, str]:
    return {name: json.dumps(make().json(), ensure_ascii=False, indent=2) + "\n" for name, make in BOARDS.items()}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        path = OUT / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale dashboards (run python grafana/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
