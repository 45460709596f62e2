"""Load on the control API: planners streaming bulk uploads, managers polling status and pausing/resuming.

    volna token create --role planner --name load-planner   # → VOLNA_PLANNER_TOKEN
    volna token create --role manager --name load-manager   # → VOLNA_MANAGER_TOKEN
    VOLNA_PLANNER_TOKEN=... VOLNA_MANAGER_TOKEN=... \\
        .venv/bin/locust -f load/locustfile.py --host http://127.0.0.1:8080 --headless -u 20 -r 5 -t 2m

Environment:

* ``VOLNA_LOAD_DAY`` — the waves' day (default today, UTC);
* ``VOLNA_UPLOAD_LINES`` — lines per upload (default 5000): each planner creates its own
  wave and keeps loading fresh tasks into it, the body generated as it is sent (chunked);
* ``VOLNA_CONTROL_WAVE`` — the wave the managers pause and resume (default: none; they only
  read). A 409 (the state does not allow it: another manager got there first) is expected
  under concurrency and counted as a success.

Managers poll what the console polls: the list of the day's waves, then each wave's view.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from locust import HttpUser, between, task

DAY = os.environ.get("VOLNA_LOAD_DAY") or datetime.now(UTC).date().isoformat()
UPLOAD_LINES = int(os.environ.get("VOLNA_UPLOAD_LINES", "5000"))
CONTROL_WAVE = os.environ.get("VOLNA_CONTROL_WAVE", "")
_serial = itertools.count()


def _auth(env: str) -> dict[str, str]:
    token = os.environ.get(env)
    if not token:
        raise RuntimeError(f"set {env} (volna token create --role ... --name ...)")
    return {"Authorization": f"Bearer {token}"}


def task_lines(wave_id: str, first: int, n: int) -> Iterator[bytes]:
    """JSON Lines in 500-line chunks, made as they are sent."""
    chunk: list[str] = []
    for i in range(first, first + n):
        chunk.append(json.dumps({
            "task_id": f"t{i}", "debtor_id": f"LD-{i}", "channel": "sms", "phone": f"+7916{i % 10**7:07d}",
            "tz": "Europe/Moscow", "scenario": "soft_reminder",
            "vars": {"creditor": "Мосэнергосбыт", "account": f"ЛС{i:08d}", "amount": 1234.5,
                     "due_date": "10.12.2026", "pay_url": "https://pay.example/x", "address": "ул. Ленина, 1",
                     "phone_back": "88001234567"},
        }, ensure_ascii=False))
        if len(chunk) == 500:
            yield ("\n".join(chunk) + "\n").encode()
            chunk = []
    if chunk:
        yield ("\n".join(chunk) + "\n").encode()


class Planner(HttpUser):
    """The nightly planner: big uploads into its own wave, one after another."""

    weight = 1
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.headers = _auth("VOLNA_PLANNER_TOKEN")
        self.wave_id = f"load-{uuid.uuid4().hex[:10]}"
        self.next_task = 0
        self.client.post("/api/v1/waves", json={"wave_id": self.wave_id, "campaign_id": "load", "day": DAY},
                         headers=self.headers, name="/api/v1/waves [create]")

    @task
    def upload(self) -> None:
        first, self.next_task = self.next_task, self.next_task + UPLOAD_LINES
        with self.client.post(f"/api/v1/waves/{self.wave_id}/tasks", data=task_lines(self.wave_id, first, UPLOAD_LINES),
                              headers={**self.headers, "Content-Type": "application/x-ndjson"},
                              name="/api/v1/waves/[id]/tasks", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")
            elif resp.json()["accepted"] != UPLOAD_LINES:
                resp.failure(f"accepted {resp.json()['accepted']} of {UPLOAD_LINES}")


class Manager(HttpUser):
    """The campaign manager's console: the day's waves, each wave's view, the charts, health and
    look-ups, now and then pause/resume."""

    weight = 4
    wait_time = between(1, 2)

    def on_start(self) -> None:
        self.headers = _auth("VOLNA_MANAGER_TOKEN")
        self.waves: list[str] = []

    @task(3)
    def list_waves(self) -> None:
        resp = self.client.get(f"/api/v1/waves?day={DAY}", headers=self.headers, name="/api/v1/waves?day")
        if resp.status_code == 200:
            self.waves = [w["wave_id"] for w in resp.json()["waves"]]

    @task(10)
    def wave_status(self) -> None:
        if not self.waves:
            return self.list_waves()
        wave_id = random.choice(self.waves)
        self.client.get(f"/api/v1/waves/{wave_id}", headers=self.headers, name="/api/v1/waves/[id]")
        return None

    @task(10)
    def charts(self) -> None:
        """The console's charts poll (every 2 s while the Waves tab is open): the day, or one wave."""
        if self.waves and random.random() < 0.5:
            self.client.get(f"/api/v1/charts?wave={random.choice(self.waves)}", headers=self.headers,
                            name="/api/v1/charts?wave")
        else:
            self.client.get(f"/api/v1/charts?day={DAY}", headers=self.headers, name="/api/v1/charts?day")

    @task(2)
    def health(self) -> None:
        self.client.get("/api/v1/health", headers=self.headers, name="/api/v1/health")

    @task(1)
    def lookup(self) -> None:
        self.client.get(f"/api/v1/lookup?debtor=d{random.randrange(1000)}&day={DAY}", headers=self.headers,
                        name="/api/v1/lookup?debtor")

    @task(1)
    def pause_and_resume(self) -> None:
        if not CONTROL_WAVE:
            return
        for action in ("pause", "resume"):
            with self.client.post(f"/api/v1/waves/{CONTROL_WAVE}/{action}", headers=self.headers,
                                  name=f"/api/v1/waves/[id]/{action}", catch_response=True) as resp:
                if resp.status_code in (200, 409):
                    resp.success()
                else:
                    resp.failure(f"{resp.status_code}: {resp.text[:200]}")
