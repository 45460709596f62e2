"""``volna demo``: three compressed days of an agency against the bundled simulators, with the
night's plan between them.

Starts a private redis-server (AOF on, in a temporary folder) unless ``REDIS_URL`` is set, a
private PostgreSQL unless ``VOLNA_ARCHIVE__DSN`` points at one (the machine's server) and the
three simulators; generates a portfolio of utility debtors. Then, for each day: ``volna plan``
with the shipped strategy (``strategies/utility.yaml``) creates and loads the day's waves from
the portfolio and the archive; ``volna api``, two ``volna run`` and ``volna archive`` run the
day on a compressed clock (08:00 in Kamchatka to 20:00 in Kaliningrad in ``--minutes``); the
demo shows live progress, exports the results, prints a report a collections manager would
recognise, archives the day and prints the channel report from PostgreSQL. Between days the
debts age a day and the debtors who kept a promise pay. At the end: the stage moves of the
nights, the numbers deactivated, the promises honoured, and the caps checked in the archive.
Everything it started is stopped.
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
from engine.config.settings import WindowSettings, load_settings
from engine.demo.config import SIM_AMI_SECRET, SIM_SMPP_PASSWORD, demo_config, write_config
from engine.store.localredis import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
MOSCOW = ZoneInfo("Europe/Moscow")


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="volna demo", description=__doc__)
    p.add_argument("--debtors", type=int, default=5_000)
    p.add_argument("--days", type=int, default=3, help="compressed days, with the night's plan between them")
    p.add_argument("--minutes", type=float, default=1.0,
                   help="real minutes a day takes at most (08:00 Kamchatka to 20:00 Kaliningrad)")
    p.add_argument("--start", type=_day, default=None,
                   help="the first day (YYYY-MM-DD; default: the next working day)")
    p.add_argument("--out", default="demo-out", help="folder for the results export and logs")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-live", action="store_true", help="plain progress lines instead of a live table")
    return p


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a day (YYYY-MM-DD)") from None


def first_day(today: date | None = None) -> date:
    """The next working day."""
    cal = WindowCalendar(WindowSettings())
    day = (today or datetime.now(MOSCOW).date()) + timedelta(days=1)
    while cal.day_type(day) is not DayType.WEEKDAY:
        day += timedelta(days=1)
    return day


#: A compressed day: from 08:00 in Kamchatka (UTC+12) to 20:00 in Kaliningrad (UTC+2), in UTC.
DAY_OPENS_UTC = timedelta(hours=-4)
DAY_CLOSES_UTC = timedelta(hours=18)


def day_clock(day: date, minutes: float) -> ScaledClock:
    """The engine clock of a compressed day: every zone's window in ``minutes`` of real time."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) + DAY_OPENS_UTC
    speed = (DAY_CLOSES_UTC - DAY_OPENS_UTC).total_seconds() / (minutes * 60)
    return ScaledClock(int(start.timestamp() * 1000), speed)


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
    from engine.demo import nights
    from engine.demo.run import DemoRun

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="volna-demo-"))
    first = args.start or first_day()
    days = [first + timedelta(days=i) for i in range(args.days)]
    sims = Processes(out)
    py = sys.executable
    try:
        async with private_redis(workdir) as redis_url, private_postgres() as archive_dsn:
            ports = {name: free_port() for name in ("smsc", "smsc_http", "ami", "ami_http", "gateway", "api")}
            key = workdir / "phone-hash.key"
            key.write_bytes(os.urandom(32).hex().encode())
            key.chmod(0o600)
            book = nights.Portfolio.generate(args.debtors, args.seed)
            # A tenth of the answered calls promise to pay (key 3), keying in the day after the first;
            # the portfolio's wrong numbers do not exist on any network.
            promise = (first + timedelta(days=1)).strftime("%d%m")
            wrong = ",".join(sorted({"8" + p[2:] for r in book.rows for p in r["phones"] if p.startswith("+7999")}))
            sims.start("sim-smsc", [py, "-m", "simulators.smsc", "--port", str(ports["smsc"]),
                                    "--http-port", str(ports["smsc_http"]), "--receipt-delay-max-s", "2",
                                    "--account", f"volna:{SIM_SMPP_PASSWORD}", "--invalid-prefix", "7999",
                                    "--undelivered-share", "0.05", "--log-level", "WARNING"])
            sims.start("sim-ami", [py, "-m", "simulators.ami", "--port", str(ports["ami"]),
                                   "--http-port", str(ports["ami_http"]), "--busy-share", "0.12",
                                   "--no-answer-share", "0.18", "--machine-share", "0.05",
                                   "--invalid-share", "0.03", "--talk-min-s", "1", "--talk-max-s", "4",
                                   "--ring-min-s", "0.5", "--ring-max-s", "3", "--no-answer-s", "5",
                                   "--key-mix", "1:0.1,2:0.15,3:0.1,9:0.03", "--promise-digits", promise,
                                   "--unallocated-numbers", wrong,
                                   "--agents", "debt-operators=20,debt-operators-court=10",
                                   "--secret", SIM_AMI_SECRET, "--log-level", "WARNING"])
            sims.start("sim-gateway", [py, "-m", "simulators.gateway", "--port", str(ports["gateway"]),
                                       "--no-account-share", "0.3",
                                       "--viber-webhook-url", f"http://127.0.0.1:{ports['api']}/webhooks/viber",
                                       "--whatsapp-webhook-url",
                                       f"http://127.0.0.1:{ports['api']}/webhooks/whatsapp",
                                       "--log-level", "WARNING"])
            for name in ("smsc", "ami", "gateway"):
                await wait_port(ports[name])
            plans, finals = [], []
            settings = None
            for i, day in enumerate(days):
                # The night: the creditor's payments, then the plan, on a clock at real speed.
                if settings is not None:
                    book.payments(await nights.promises_made(settings), day)
                path = book.write(out / f"portfolio-{day.isoformat()}.jsonl", day, first)
                night = write_config(demo_config(redis_url, ports, nights.night_clock(day), ROOT / "scenarios",
                                                 archive_dsn, key), workdir / "volna-night.toml")
                report = await asyncio.to_thread(nights.run_plan, night, path, day, out)
                nights.print_plan(report)
                plans.append(report)
                # The day, compressed.
                clock = day_clock(day, args.minutes)
                config_path = write_config(demo_config(redis_url, ports, clock.spec(), ROOT / "scenarios",
                                                       archive_dsn, key), workdir / "volna.toml")
                settings = load_settings(config_path)
                engine = Processes(out)
                try:
                    env = {"VOLNA_LOG__JSON": "true"}
                    engine.start("api", [py, "-m", "engine.cli.main", "api", "--config", str(config_path)], env)
                    await wait_port(ports["api"])
                    for n in (1, 2):
                        engine.start(f"run-{n}", [py, "-m", "engine.cli.main", "--config", str(config_path), "run",
                                                  "--channels", "ivr,sms,viber"], env)
                    engine.start("archive", [py, "-m", "engine.cli.main", "--config", str(config_path), "archive"],
                                 env)
                    run = DemoRun(config_path, clock, day, args, ports, out, _Both(sims, engine),
                                  sorted(report["tasks_per_wave"]), f"(day {i + 1} of {len(days)}, {day})")
                    code = await run.execute()
                    finals.append(run.finals)
                    if code:
                        return code
                finally:
                    engine.stop()
            assert settings is not None
            promised = await nights.promises_made(settings)
            honoured = len(book.paid)
            caps = await nights.caps_check(settings)
            ok = nights.print_summary(days, plans, finals, honoured, len(promised), caps)
            return 0 if ok else 1
    finally:
        sims.stop()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


class _Both:
    """The simulators and the day's engine processes, as the day's watch sees them."""

    def __init__(self, *groups: Processes) -> None:
        self.groups = groups

    def dead(self) -> list[str]:
        return [name for g in self.groups for name in g.dead()]


def main_demo(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(run_demo(args))
    except KeyboardInterrupt:
        return 130
