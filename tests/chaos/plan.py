"""One seed → everything random in a chaos run: the tasks, the fault schedule, the simulators' seeds.

Pure (no I/O): the same seed and options give the same :class:`Plan`, so a failing run is
replayed with ``load/chaos.py --seed N`` (same tasks, same faults at the same offsets, the
same simulator decisions in the order requests arrive). What no seed can fix is the
operating system's scheduling: which attempt a SIGKILL lands on differs between replays.

The day is a plain working Tuesday (2026-12-01). Engine time starts shortly before 10:00 UTC,
when the Vladivostok window (UTC+10, 08:00–20:00 local) closes: the clock jump (or, without
it, the clock itself) crosses that boundary mid-wave. Kamchatka's window and the windows of
tasks constrained to many zones are already closed: they end ``window_missed``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

DAY = date(2026, 12, 1)
#: Vladivostok's window closes at 20:00 local = 10:00 UTC on DAY.
BOUNDARY_MS = int(datetime(2026, 12, 1, 10, 0, tzinfo=UTC).timestamp() * 1000)
WAVE = "chaos"
CAMPAIGN = "c-chaos"
SCENARIO = "chaos"
CHANNELS = ("ivr", "sms", "viber", "whatsapp")

#: (tz, region, weight): a debtor's zone; ``None`` tz with a region = several candidate zones
#: (Sakhalin), neither = the phone's candidates (every +7 zone: no common window).
ZONES: tuple[tuple[str | None, str | None, float], ...] = (
    ("Europe/Kaliningrad", None, 1.0),
    ("Europe/Moscow", None, 4.0),
    (None, "77", 1.0),  # Moscow by region
    ("Europe/Samara", None, 1.0),
    ("Asia/Yekaterinburg", None, 1.5),
    ("Asia/Novosibirsk", None, 1.5),
    ("Asia/Vladivostok", None, 2.0),  # closes mid-wave
    ("Asia/Kamchatka", None, 0.5),  # already closed
    (None, "65", 0.3),  # Sakhalin: closed
    (None, None, 0.2),  # a +79 mobile, no zone given: no common window
)
CHANNEL_WEIGHTS = {"ivr": 4.0, "sms": 2.0, "viber": 2.0, "whatsapp": 2.0}


@dataclass(frozen=True)
class Options:
    """What a run does; everything random in it comes from ``seed``."""

    seed: int
    tasks: int = 20_000
    processes: int = 2
    #: ``everysec`` or ``always``; empty: the seed picks one.
    appendfsync: str = ""
    #: How long the wave would take at the configured rates without faults; faults spread over it.
    #: 0: a rate of 120 tasks/s (at least 10 s).
    duration_s: float = 0.0
    kills: bool = True
    redis_restarts: int = 1
    ami_drops: int = 2
    gateway_bursts: int = 4
    #: SMSC faults: sessions dropped with submits unanswered, garbage PDUs.
    smsc_faults: int = 3
    clock_jump: bool = True
    #: Engine minutes the clock jumps forward.
    jump_min: int = 10
    #: Master failover: Redis runs as a master, its replica and three sentinels, the durable point
    #: of no return is on (``redis.durable_replicas = 1``), and each Redis fault is a ``kill -9``
    #: (or SIGTERM) of the master: the sentinels promote the replica, the old master comes back as
    #: its replica after ``down_s``.
    failover: bool = False


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: str  # kill | redis | failover | ami_drop | burst | smsc_drop | smsc_garbage | jump
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"t+{self.at_s:5.1f}s {self.kind} {args}".rstrip()


@dataclass(frozen=True)
class Plan:
    options: Options
    appendfsync: str
    rows: list[dict[str, Any]]
    faults: list[Fault]
    start_ms: int
    rates: dict[str, float]
    ami_seed: int
    gateway_seed: int
    smsc_seed: int

    @property
    def seed(self) -> int:
        return self.options.seed


def auto_duration(tasks: int) -> float:
    return round(max(10.0, tasks / 120), 1)


def make_plan(options: Options) -> Plan:
    if not options.duration_s:
        options = replace(options, duration_s=auto_duration(options.tasks))
    rng = random.Random(options.seed)
    fsync = options.appendfsync or rng.choice(("everysec", "always"))
    rows = _tasks(random.Random(rng.getrandbits(64)), options.tasks)
    faults = _faults(random.Random(rng.getrandbits(64)), options)
    jump = next((f for f in faults if f.kind == "jump"), None)
    # The window boundary falls a little after the jump (or, without one, mid-wave).
    before_s = (jump.at_s if jump else options.duration_s * 0.5) + rng.uniform(5.0, 20.0)
    start_ms = BOUNDARY_MS - int(before_s * 1000)
    counts = {ch: sum(1 for r in rows if r["channel"] == ch) for ch in CHANNELS}
    # Rates that would finish each channel's first attempts in about ``duration_s``.
    rates = {ch: max(5.0, round(n * 1.3 / options.duration_s, 1)) for ch, n in counts.items()}
    return Plan(options, fsync, rows, faults, start_ms, rates, rng.getrandbits(31), rng.getrandbits(31),
                rng.getrandbits(31))


def _tasks(rng: random.Random, n_tasks: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    zones, zone_w = [(tz, region) for tz, region, _ in ZONES], [w for _, _, w in ZONES]
    channels, channel_w = list(CHANNEL_WEIGHTS), list(CHANNEL_WEIGHTS.values())
    debtor = 0
    while len(rows) < n_tasks:
        debtor += 1
        tz, region = rng.choices(zones, zone_w)[0]
        # 1–4 tasks, each on its own channel: several per debtor make the caps bite.
        k = min(rng.choice((1, 1, 2, 2, 3, 4)), n_tasks - len(rows))
        picked: list[str] = []
        while len(picked) < k:
            ch = rng.choices(channels, channel_w)[0]
            if ch not in picked:
                picked.append(ch)
        for ch in picked:
            task_id = f"T{len(rows) + 1:06d}"
            row: dict[str, Any] = {
                "task_id": task_id, "debtor_id": f"D{debtor:06d}", "channel": ch,
                "phone": f"+7916{debtor:07d}", "scenario": SCENARIO, "priority": rng.randint(0, 9),
                "vars": {"creditor": "Мосэнергосбыт", "account": task_id, "amount": round(rng.uniform(100, 90000), 2),
                         "due_date": "10.12.2026", "pay_url": "https://pay.example/x", "address": "ул. Ленина, 1"},
            }
            if tz:
                row["tz"] = tz
            if region:
                row["region"] = region
            if ch in ("viber", "whatsapp") and rng.random() < 0.6:
                row["cascade"] = ["sms"]
            rows.append(row)
    return rows


def _faults(rng: random.Random, o: Options) -> list[Fault]:
    d = o.duration_s
    faults: list[Fault] = []
    jump_at = rng.uniform(0.35, 0.6) * d if o.clock_jump else None
    if jump_at is not None:
        faults.append(Fault(round(jump_at, 2), "jump", {"by_min": o.jump_min}))
    if o.kills:
        t = rng.uniform(1.0, 3.0)
        while t < d * 1.1:
            if jump_at is None or abs(t - jump_at) > 1.0:
                faults.append(Fault(round(t, 2), "kill", {"proc": rng.randrange(o.processes),
                                                          "down_s": round(rng.uniform(0.2, 2.0), 2)}))
            t += rng.uniform(1.5, 4.5)
    for _ in range(o.redis_restarts):
        t = rng.uniform(0.15, 0.85) * d
        if jump_at is not None and abs(t - jump_at) < 2.0:
            t = jump_at + 2.5
        faults.append(Fault(round(t, 2), "failover" if o.failover else "redis",
                            {"down_s": round(rng.uniform(0.3, 2.5), 2), "how": rng.choice(("kill", "term"))}))
    for _ in range(o.ami_drops):
        faults.append(Fault(round(rng.uniform(0.1, 0.9) * d, 2), "ami_drop"))
    for _ in range(o.gateway_bursts):
        faults.append(Fault(round(rng.uniform(0.05, 0.9) * d, 2), "burst", {
            "provider": rng.choice(("whatsapp", "viber")), "count": rng.randint(10, 60),
            "status": rng.choice((429, 429, 500, 503))}))
    for _ in range(o.smsc_faults):
        at = round(rng.uniform(0.1, 0.9) * d, 2)
        if rng.random() < 0.5:
            faults.append(Fault(at, "smsc_drop"))
        else:
            faults.append(Fault(at, "smsc_garbage", {"kind": rng.choice(
                ("unknown_command", "bad_body", "stray_response", "bad_length"))}))
    return sorted(faults, key=lambda f: f.at_s)
