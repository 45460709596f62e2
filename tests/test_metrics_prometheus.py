"""Prometheus itself: promtool accepts the config and the rules, and a real Prometheus scraping an
engine during a short wave answers every dashboard panel's query with data.

Needs Debian's ``prometheus`` package (``promtool`` and ``prometheus``): installed here when
missing and the tests run as root with apt-get (``make test`` installs it through
``ops/system-deps.sh``); the tests skip, saying why, only when it cannot be installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.redis_server import free_port
from tests.test_metrics import RULES, dashboard_queries
from tests.test_metrics_support import observed_engine

ROOT = Path(__file__).resolve().parent.parent
PROM_DIR = ROOT / "ops" / "prometheus"
_INSTALL_TIMEOUT_S = 600


def _install_prometheus() -> str:
    """Why it could not be installed ('' when it was)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root with apt-get: install Debian's 'prometheus' package (apt-get install prometheus)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(cmd)} failed: {exc}"
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-300:]}"
    return ""


@pytest.fixture(scope="session")
def prometheus_bins() -> dict[str, str]:
    if not (shutil.which("promtool") and shutil.which("prometheus")):
        why = _install_prometheus()
        if why or not (shutil.which("promtool") and shutil.which("prometheus")):
            pytest.skip(f"promtool/prometheus unavailable and could not be installed: {why or 'not on PATH'}")
    return {"promtool": shutil.which("promtool") or "", "prometheus": shutil.which("prometheus") or ""}


def promtool(bins: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([bins["promtool"], *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


# ---- acceptance 2: promtool ------------------------------------------------------------------

def test_promtool_checks_the_config(prometheus_bins: dict[str, str]) -> None:
    done = promtool(prometheus_bins, "check", "config", str(PROM_DIR / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout + done.stderr


def test_promtool_checks_the_rules(prometheus_bins: dict[str, str]) -> None:
    done = promtool(prometheus_bins, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rules_pass_their_unit_tests(prometheus_bins: dict[str, str]) -> None:
    done = promtool(prometheus_bins, "test", "rules", str(PROM_DIR / "alerts_test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alerts_the_sre_asked_for_exist() -> None:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    alerts = {r["alert"]: r for g in doc["groups"] for r in g["rules"]}
    for name in ("VolnaDispatcherDown", "VolnaNoDispatcher", "VolnaSmppBindDown", "VolnaAmiSessionDown",
                 "VolnaQueueNotDraining", "VolnaErrorRatioHigh", "VolnaResultsConsumerLagging",
                 "VolnaWebhookSignatureFailures"):
        rule = alerts[name]
        assert rule["labels"]["severity"] in ("critical", "warning") and rule["annotations"]["summary"]
        assert rule.get("for"), f"{name} fires on a single evaluation"


# ---- acceptance 3: a real Prometheus scrapes an engine ------------------------------------------

async def test_every_dashboard_panel_query_returns_data(redis_url: str, prometheus_bins: dict[str, str],
                                                        tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with observed_engine(redis_url, start=False, sms_rate_per_s=10.0) as obs:
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": "volna-dispatcher", "static_configs": [{"targets": [f"127.0.0.1:{obs.dispatcher.port}"]}]},
                {"job_name": "volna-api", "static_configs": [{"targets": [f"127.0.0.1:{obs.api_port}"]}]},
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        with open(tmp_path / "prometheus.log", "wb") as log:
            proc = subprocess.Popen(
                [prometheus_bins["prometheus"], f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                 "--log.level=warn"],
                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            await _until_ready(obs.session, base, proc, tmp_path / "prometheus.log")
            await _until_scraped(obs.session, base)  # before the wave starts: rates see all of it
            await obs.start()
            await obs.settled()
            queries = dashboard_queries()
            empty = await _until_data(obs.session, base, queries)
            assert not empty, "panels without data:\n" + "\n".join(f"  {b} / {t}: {q}" for b, t, q in empty)
            # And the data is the wave's: every channel sent, the queue holds the parked calls.
            sent = await _api(obs.session, base, "query", query=next(q for _, t, q in queries
                                                                     if t == "Sent per second by channel"))
            assert {r["metric"]["channel"] for r in sent["result"] if float(r["value"][1]) > 0} == {
                "ivr", "sms", "viber", "whatsapp"}
            depth = await _api(obs.session, base, "query", query='max by (channel) (volna_queue_depth{wave="w1"})')
            assert {r["metric"]["channel"]: r["value"][1] for r in depth["result"]}["ivr"] == "2"
            targets = (await _api(obs.session, base, "targets"))["activeTargets"]
            assert sorted((t["labels"]["job"], t["health"]) for t in targets) == [
                ("volna-api", "up"), ("volna-dispatcher", "up")]
            rules = [r for g in (await _api(obs.session, base, "rules"))["groups"] for r in g["rules"]]
            assert len(rules) >= 10 and all(r["health"] == "ok" for r in rules), \
                [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _api(session: aiohttp.ClientSession, base: str, path: str, **params: str) -> Any:
    async with session.get(f"{base}/api/v1/{path}", params=params) as resp:
        body = await resp.json()
        assert body["status"] == "success", body
        return body["data"]


async def _until_ready(session: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            async with session.get(f"{base}/-/ready") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("prometheus did not become ready in 30 s")


async def _until_scraped(session: aiohttp.ClientSession, base: str, samples: int = 2) -> None:
    """Until both jobs were scraped ``samples`` times (Prometheus hands new targets to its scrape
    loops about 5 s after start)."""
    query = f"count_over_time(volna_build_info[1m]) >= {samples}"
    for _ in range(300):
        if len((await _api(session, base, "query", query=query))["result"]) == 2:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("prometheus did not scrape both jobs in 30 s")


async def _until_data(session: aiohttp.ClientSession, base: str, queries: list[tuple[str, str, str]],
                      timeout_s: float = 45.0) -> list[tuple[str, str, str]]:
    """Queries that still return nothing after ``timeout_s`` (scrapes every second meanwhile)."""
    pending = list(queries)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while pending and asyncio.get_running_loop().time() < deadline:
        still = []
        for item in pending:
            data = await _api(session, base, "query", query=item[2])
            if not data["result"]:
                still.append(item)
        pending = still
        if pending:
            await asyncio.sleep(1.0)
    return pending
