"""Shared helpers of the benchmark scripts: a private Redis, RSS, percentiles, round-trip counting,
what a wave's results stream says."""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import resource
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """``REDIS_URL`` when set, else a private redis-server for the run."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from tests.redis_server import RedisServer

    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.cleanup()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def free_port() -> int:
    from engine.store.localredis import free_port as engine_free_port

    return engine_free_port()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux ``/proc``); NaN once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_peak_rss_mb(pid: int) -> float:
    """Peak RSS of a running child (``VmHWM``); getrusage's children figure counts a forked copy of
    this process and only reaped children."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def top_functions(source: cProfile.Profile | str, count: int = 25) -> str:
    """A profile's (or a saved profile file's) top functions by own time, as text."""
    out = io.StringIO()
    pstats.Stats(source, stream=out).sort_stats("tottime").print_stats(count)
    return out.getvalue()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RoundTrips:
    """Counts client→Redis round trips (a pipeline or a single command is one)."""

    def __init__(self) -> None:
        self.count = 0

    def install(self) -> None:
        from redis.asyncio.connection import AbstractConnection

        original = AbstractConnection.send_packed_command
        counter = self

        async def counted(self, command, check_health=True):  # type: ignore[no-untyped-def]
            counter.count += 1
            return await original(self, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


@dataclass
class Finals:
    """What the results stream says about a wave's attempts."""

    per_task: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    claim_to_result_ms: list[float] = field(default_factory=list)
    last_final_ms: int = 0
    last_delivered_ms: int = 0

    def require_once(self, n: int, outcome: str) -> None:
        """Each of ``n`` tasks has exactly one final result, and it is ``outcome``."""
        most = max(self.per_task.values(), default=0)
        require(len(self.per_task) == n and most == 1,
                f"final results for {len(self.per_task)} tasks, at most {most} each (want {n}, once each)")
        require(self.outcomes == Counter({outcome: n}), f"final outcomes {dict(self.outcomes)} (want {n} {outcome})")


async def read_finals(redis: Any, wave_id: str) -> Finals:
    from engine.waves.results import read_range

    out = Finals()
    async for rec in read_range(redis, wave_id, count=10_000):
        if rec["kind"] != "result":
            continue
        finished = int(rec.get("finished_at") or 0)
        if rec.get("claimed_at") and finished:
            out.claim_to_result_ms.append(finished - rec["claimed_at"])
        if rec["final"]:
            out.per_task[rec["task_id"]] += 1
            out.outcomes[rec["outcome"]] += 1
            out.last_final_ms = max(out.last_final_ms, finished)
            if rec["outcome"] == "delivered":
                out.last_delivered_ms = max(out.last_delivered_ms, finished)
    return out


def require(ok: bool, what: str) -> None:
    """A check of what a run did (not ``assert``: it must hold under ``python -O`` too)."""
    if not ok:
        raise AssertionError(what)


@contextlib.contextmanager
def process(args: list[str], port: int) -> Iterator[None]:
    """``python <args>`` in its own process until the block ends, once it listens on ``port``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{args} did not start")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)
