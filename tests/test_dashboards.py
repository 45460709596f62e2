"""The Grafana side: dashboards as committed are what ``grafana/build.py`` makes, well formed for
Grafana, on the provisioned datasource, and the provisioning files load them on start."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_metrics import grafana_to_promql, promql

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
BOARDS = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}
DATASOURCES = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "volna.yaml").read_text(encoding="utf-8"))
PROVIDERS = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "volna.yaml").read_text(encoding="utf-8"))
_BUILTIN = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_committed_dashboards_are_what_build_py_makes() -> None:
    done = subprocess.run([sys.executable, str(GRAFANA / "build.py"), "--check"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_three_dashboards() -> None:
    titles = {b["title"]: b for b in BOARDS.values()}
    assert set(titles) == {"Volna — overview", "Volna — connectors", "Volna — waves"}
    assert len({b["uid"] for b in BOARDS.values()}) == 3
    wanted = {
        "Volna — overview": ["Sent per second by channel", "Final outcomes per second", "Queue depth",
                             "ETA against the window's end", "Errors per second by kind"],
        "Volna — connectors": ["SMPP binds", "SMS submits per second", "Throttling", "Receipt latency",
                               "AMI sessions", "Calls per second", "Active calls", "Hang-up causes",
                               "Gateway answers", "Webhooks per second"],
        "Volna — waves": ["Progress", "Tasks by state", "ETA against the window's end"],
    }
    for title, needles in wanted.items():
        names = [p["title"] for p in panels(titles[title])]
        for needle in needles:
            assert any(n.startswith(needle) for n in names), f"{title}: no panel {needle!r}"


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_a_dashboard_is_well_formed(name: str) -> None:
    board = BOARDS[name]
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] >= 1, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
    promql_parser = promql()
    variables = {v["name"] for v in board["templating"]["list"]}
    for v in board["templating"]["list"]:
        assert v["datasource"]["uid"] == DATASOURCES["datasources"][0]["uid"]
        promql_parser.parse(re.sub(r"label_values\((.+), \w+\)", r"\1", v["query"]["query"]))
    for p in panels(board):
        assert p["targets"], f"{p['title']} has no query"
        assert p["datasource"]["uid"] == DATASOURCES["datasources"][0]["uid"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            used = set(re.findall(r"\$\{?(\w+)", t["expr"]))
            assert used <= variables | _BUILTIN, f"{p['title']}: undefined {used - variables - _BUILTIN}"
            promql_parser.parse(grafana_to_promql(t["expr"]))


def test_provisioning_loads_the_datasource_and_the_dashboards() -> None:
    assert DATASOURCES["apiVersion"] == 1 and PROVIDERS["apiVersion"] == 1
    (ds,) = DATASOURCES["datasources"]
    assert ds["type"] == "prometheus" and ds["uid"] == "volna-prometheus" and ds["url"].startswith("http")
    (provider,) = PROVIDERS["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    readme = (GRAFANA / "README.md").read_text(encoding="utf-8")
    # The README mounts the dashboards exactly where the provider reads them.
    assert f"grafana/dashboards:{provider['options']['path']}" in readme
    assert f"{provider['options']['path']}/" in readme


def test_the_catalogue_documents_every_metric_the_dashboards_use() -> None:
    from tests.test_metrics import referenced_metrics

    catalogue = (GRAFANA.parent / "docs" / "metrics.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(volna_\w+)`", catalogue, flags=re.M))
    for name in referenced_metrics():
        if name.startswith("volna_"):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in documented or base in documented, name
