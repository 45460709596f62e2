"""``bench_vs_kannel.py``'s Volna run, the way a user runs it: a private redis-server, a
``volna.toml`` with ``[channels.sms]`` pointing at the SMSC, ``volna wave create``, ``volna load`` of a
generated task file, ``volna run --channels sms`` in its own process, ``volna wave start``; at the
end ``volna wave status --json`` and ``volna results export`` say how every task ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from _common import ROOT, require

WAVE = "vs-kannel"
#: The wave's day and the engine clock's start (noon in Moscow): the window is open whenever the
#: benchmark runs (the config's clock spec runs at real speed from there).
DAY = date(2026, 12, 1)
NOON_MSK_MS = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


def volna_command() -> list[str]:
    """The ``volna`` console script of this interpreter's environment (as installed by ``make venv``)."""
    script = Path(sys.executable).parent / "volna"
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli.main"]


def child_env() -> dict[str, str]:
    """The environment without what would override the run's ``volna.toml`` (``REDIS_URL``,
    ``VOLNA_*``): the run uses its own Redis and SMSC."""
    return {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("VOLNA_")}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string is a JSON string


def write_config(folder: Path, redis_url: str, smsc_port: int, binds: int, window: int,
                 system_id: str, password: str, dispatcher: dict[str, Any] | None = None) -> Path:
    """``volna.toml`` (0600), the password in its own 0600 file as production keeps it;
    ``dispatcher``: keys of its ``[dispatcher]`` section (a benchmark's variations)."""
    secret = folder / "smpp-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    account = {"name": "node-smsc", "host": "127.0.0.1", "port": smsc_port, "system_id": system_id,
               "password_file": str(secret), "bind_mode": "transceiver", "binds": binds, "window": window,
               # The TPS bought: far above what one process sends, so the SMSC and the engine are
               # what limit the run (Kannel's SMSC groups have no throughput limit either).
               "rate_per_s": 100000.0, "source_addr": "Volna"}
    lines = [
        f"clock = {toml_value(f'{NOON_MSK_MS}:1:{time.time_ns() // 1_000_000}')}",
        f"scenarios_dir = {toml_value(folder / 'scenarios')}",
        "[redis]", f"url = {toml_value(redis_url)}",
        "[log]", 'level = "WARNING"', "json = false",
        *(["[dispatcher]", *(f"{k} = {toml_value(v)}" for k, v in dispatcher.items())] if dispatcher else []),
        "[channels.sms]", "enabled = true",
        "[[channels.sms.connector.accounts]]",
        *(f"{k} = {toml_value(v)}" for k, v in account.items()),
    ]
    path = folder / "volna.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


#: The creditor every benchmark text starts with.
CREDITOR = "Мосэнергосбыт"


def write_scenarios(folder: Path, text: str) -> None:
    """The shipped soft_reminder with its SMS replaced by the benchmark's text (the same Kannel gets:
    the creditor's name, which the law wants named, comes from the task's ``creditor``)."""
    import yaml

    out = folder / "scenarios"
    out.mkdir(parents=True, exist_ok=True)
    doc = yaml.safe_load((ROOT / "scenarios" / "soft_reminder.yaml").read_text(encoding="utf-8"))
    assert text.startswith(CREDITOR), text
    doc["messages"]["sms"] = "{creditor}" + text[len(CREDITOR):]
    (out / "soft_reminder.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def write_tasks(folder: Path, n: int, phone: Any) -> Path:
    path = folder / "tasks.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"task_id": f"t{i}", "debtor_id": f"d{i}", "channel": "sms", "phone": phone(i),
                                 "tz": "Europe/Moscow", "scenario": "soft_reminder",
                                 "vars": {"creditor": CREDITOR}}) + "\n")
    return path


class VolnaCli:
    """``volna …`` with the run's config, output captured; a failure raises with its stderr."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.base = [*volna_command(), "--config", str(config)]

    def __call__(self, *args: str, timeout_s: float = 300) -> str:
        proc = subprocess.run([*self.base, *args], cwd=self.config.parent, env=child_env(), capture_output=True,
                              text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"volna {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
        return proc.stdout

    def start_dispatcher(self, log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            return subprocess.Popen([*self.base, "run", "--channels", "sms"], cwd=self.config.parent,
                                    env=child_env(), stdout=out, stderr=subprocess.STDOUT)


def check_results(cli: VolnaCli, folder: Path, n: int) -> dict[str, Any]:
    """``volna wave status --json`` and ``volna results export``: every task final ``delivered``, once."""
    deadline = time.monotonic() + 30
    while True:
        status = json.loads(cli("wave", "status", WAVE, "--json"))
        if status["counts"]["final"] >= n or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    require(status["counts"]["total"] == n and status["counts"]["final"] == n,
            f"wave status: {status['counts']} (want {n} tasks, all final)")
    require(status["outcomes"] == {"delivered": n}, f"wave outcomes {status['outcomes']} (want {n} delivered)")
    export = folder / "results.jsonl"
    cli("results", "export", "--wave", WAVE, "--out", str(export))
    finals: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for line in export.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("final"):
            finals[rec["task_id"]] += 1
            outcomes[rec["outcome"]] += 1
    require(len(finals) == n and set(finals.values()) == {1},
            f"results: {len(finals)} tasks with a final record, at most {max(finals.values(), default=0)} each "
            f"(want {n}, once each)")
    require(outcomes == Counter({"delivered": n}), f"final outcomes {dict(outcomes)} (want {n} delivered)")
    return {"state": status["state"], "final": status["counts"]["final"], "outcomes": dict(outcomes)}
