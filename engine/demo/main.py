"""``volna demo``: a real day in miniature against the bundled simulators.

Starts a private redis-server (AOF on, in a temporary folder) unless ``REDIS_URL`` is set, a
private PostgreSQL unless ``VOLNA_ARCHIVE__DSN`` points at one (the machine's server), the three
simulators, ``volna api``, two ``volna run`` processes and ``volna archive``; generates a portfolio;
loads an IVR wave, an SMS wave and a Viber → SMS cascade wave with the shipped scenarios;
starts them; shows live progress; at the end exports the results, prints a report a
collections manager would recognise, archives the day and prints the channel report from
PostgreSQL, and stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from engine.argparsing import Parser
from engine.calendar.clock import ScaledClock
from engine.calendar.windows import DayType, WindowCalendar
from engine.config.settings import WindowSettings
from engine.demo.config import SIM_AMI_SECRET, SIM_SMPP_PASSWORD, demo_config, write_config
from engine.store.localredis import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
MOSCOW = ZoneInfo("Europe/Moscow")


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="volna demo", description=__doc__)
    p.add_argument("--debtors", type=int, default=20_000)
    p.add_argument("--minutes", type=float, default=2.0, help="how long the waves run at most")
    p.add_argument("--clock", default="10:00",
                   help="run 'as if' at this Moscow time (HH:MM) on the next working day; 'now' = real time")
    p.add_argument("--speed", type=float, default=1.0, help="engine seconds per real second")
    p.add_argument("--out", default="demo-out", help="folder for the results export and logs")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-live", action="store_true", help="plain progress lines instead of a live table")
    return p


def demo_clock(spec: str, speed: float, today: date | None = None) -> tuple[ScaledClock, date]:
    """The engine clock and the wave day: HH:MM Moscow time on the next working day."""
    cal = WindowCalendar(WindowSettings())
    if spec == "now":
        now = datetime.now(UTC)
        return ScaledClock(int(now.timestamp() * 1000), speed), now.astimezone(MOSCOW).date()
    hour, minute = (int(x) for x in spec.split(":"))
    day = (today or datetime.now(MOSCOW).date()) + timedelta(days=1)
    while cal.day_type(day) is not DayType.WEEKDAY:
        day += timedelta(days=1)
    start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=MOSCOW)
    return ScaledClock(int(start.timestamp() * 1000), speed), day


class Processes:
    """Child processes started by the demo, stopped in reverse order."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
        log.close()
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in reversed(self.procs):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in time: killed", file=sys.stderr)
                proc.kill()

    def dead(self) -> list[str]:
        return [name for name, proc in self.procs if proc.poll() is not None]


async def wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.asynccontextmanager
async def private_redis(workdir: Path) -> AsyncIterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer(appendonly=True, directory=workdir / "redis").start()
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def private_postgres() -> AsyncIterator[str]:
    if os.environ.get("VOLNA_ARCHIVE__DSN"):
        yield os.environ["VOLNA_ARCHIVE__DSN"]
        return
    from engine.archive.localpg import PostgresServer

    server = await asyncio.to_thread(PostgresServer().start)
    try:
        yield server.dsn
    finally:
        await asyncio.to_thread(server.cleanup)


async def run_demo(args: argparse.Namespace) -> int:
    from engine.demo.run import DemoRun

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="volna-demo-"))
    clock, day = demo_clock(args.clock, args.speed)
    procs = Processes(out)
    py = sys.executable
    try:
        async with private_redis(workdir) as redis_url, private_postgres() as archive_dsn:
            ports = {name: free_port() for name in ("smsc", "smsc_http", "ami", "ami_http", "gateway", "api")}
            key = workdir / "phone-hash.key"
            key.write_bytes(os.urandom(32).hex().encode())
            key.chmod(0o600)
            config = demo_config(redis_url, ports, clock.spec(), ROOT / "scenarios", archive_dsn, key)
            config_path = write_config(config, workdir / "volna.toml")
            procs.start("sim-smsc", [py, "-m", "simulators.smsc", "--port", str(ports["smsc"]),
                                     "--http-port", str(ports["smsc_http"]), "--receipt-delay-max-s", "2",
                                     "--account", f"volna:{SIM_SMPP_PASSWORD}", "--invalid-prefix", "7999",
                                     "--undelivered-share", "0.05", "--log-level", "WARNING"])
            procs.start("sim-ami", [py, "-m", "simulators.ami", "--port", str(ports["ami"]),
                                    "--http-port", str(ports["ami_http"]), "--busy-share", "0.12",
                                    "--no-answer-share", "0.18", "--machine-share", "0.05",
                                    "--invalid-share", "0.03", "--talk-min-s", "1", "--talk-max-s", "4",
                                    "--ring-min-s", "0.5", "--ring-max-s", "3", "--no-answer-s", "5",
                                    "--agents", "debt-operators=20,debt-operators-court=10",
                                    "--secret", SIM_AMI_SECRET, "--log-level", "WARNING"])
            procs.start("sim-gateway", [py, "-m", "simulators.gateway", "--port", str(ports["gateway"]),
                                        "--no-account-share", "0.3",
                                        "--viber-webhook-url", f"http://127.0.0.1:{ports['api']}/webhooks/viber",
                                        "--whatsapp-webhook-url",
                                        f"http://127.0.0.1:{ports['api']}/webhooks/whatsapp",
                                        "--log-level", "WARNING"])
            for name in ("smsc", "ami", "gateway"):
                await wait_port(ports[name])
            env = {"VOLNA_LOG__JSON": "true"}
            procs.start("api", [py, "-m", "engine.cli.main", "api", "--config", str(config_path)], env)
            await wait_port(ports["api"])
            for i in (1, 2):
                procs.start(f"run-{i}", [py, "-m", "engine.cli.main", "--config", str(config_path), "run",
                                         "--channels", "ivr,sms,viber"], env)
            procs.start("archive", [py, "-m", "engine.cli.main", "--config", str(config_path), "archive"], env)
            run = DemoRun(config_path, clock, day, args, ports, out, procs)
            return await run.execute()
    finally:
        procs.stop()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


def main_demo(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(run_demo(args))
    except KeyboardInterrupt:
        return 130
