"""What a chaos run runs: Redis with AOF on a fixed port, the simulators (tapped so every send
is recorded with its arrival time), the webhook endpoint, and the dispatcher processes.

The clock: every process reads the engine clock spec from the generated config
(``clock = "start_ms:speed:epoch_real_ms"``). A jump kills every dispatcher, rewrites the
spec with a later start and restarts them, so at any real moment one spec is in force;
:class:`JumpClock` keeps that history and maps a simulator's arrival time (real) to engine
time. The orchestrator's own clock (webhook finalization, status) jumps with it.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.calendar.clock import ScaledClock
from engine.store.localredis import RedisServer, free_port
from simulators.ami import Knobs as AmiKnobs
from simulators.ami.knobs import SimStats as AmiStats
from simulators.gateway import Knobs as GatewayKnobs
from simulators.smsc import Knobs as SmscKnobs
from simulators.smsc import SmscSimulator
from tests.chaos.plan import SCENARIO, Plan
from tests.redis_sentinel import SentinelSet

ROOT = Path(__file__).resolve().parents[2]

# ---- the clock ---------------------------------------------------------------------------------


class JumpClock:
    """A :class:`ScaledClock` whose start can be moved forward; remembers every spec in force."""

    def __init__(self, start_ms: int, speed: float = 1.0) -> None:
        self.current = ScaledClock(start_ms, speed)
        self.history: list[tuple[int, ScaledClock]] = [(0, self.current)]
        self.speed = speed

    def now_ms(self) -> int:
        return self.current.now_ms()

    def now(self) -> datetime:
        return self.current.now()

    async def sleep_until_ms(self, when_ms: int, max_real_s: float = 1.0) -> None:
        await self.current.sleep_until_ms(when_ms, max_real_s)

    def spec(self) -> str:
        return self.current.spec()

    def jump(self, by_ms: int) -> None:
        real_ms = time.time_ns() // 1_000_000
        new = ScaledClock(self.current.now_ms() + by_ms, self.current.speed, real_ms)
        self.history.append((real_ms, new))
        self.current = new

    def engine_ms_at(self, real_s: float) -> int:
        """Engine time at a real moment (``time.time()``), by the spec in force then."""
        real_ms = int(real_s * 1000)
        i = bisect.bisect_right([at for at, _ in self.history], real_ms) - 1
        clock = self.history[max(i, 0)][1]
        return clock.start_ms + int((real_ms - clock.epoch_real_ms) * clock.speed)


# ---- the generated configuration ---------------------------------------------------------------


def toml_value(value: Any) -> str:
    """Inline TOML (JSON's strings and numbers are valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {type(value).__name__}")


def to_toml(config: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(key)} = {toml_value(value)}\n" for key, value in config.items())


@dataclass
class Secrets:
    ami: str = "sim-secret"
    wa_token: str = "sim-wa-token"
    viber_password: str = "sim-password"
    app_secret: str = "sim-app-secret"
    verify_token: str = "verify-me"
    callback_token: str = "sim-callback-token"
    hmac_secret: str = "sim-hmac-secret"
    smpp: str = "chaospw"  # SMPP 3.4: at most 8 characters


def scenario_yaml() -> str:
    """The chaos scenario: every channel, an IVR script, short retries, cascades to SMS."""
    return """\
name: chaos
title: chaos run
ivr_cap_class: message
messages:
  sms: "{creditor}: по л/с {account} долг {amount:money}. Оплата до {due_date}: {pay_url}"
  viber: "{creditor} ({address}): по л/с {account} долг {amount:money}. {pay_url}"
  whatsapp: {name: debt_reminder_soft, language: ru, body_params: [creditor, account, amount]}
  sms_details: "Реквизиты {creditor}: л/с {account}-sms-details, {amount:money}. {pay_url}"
ivr:
  max_duration_s: 10
  operator: {queue: debt-operators}
  steps:
    - {id: greeting, play: [volna/greeting-soft]}
    - {id: amount, say_amount: {var: amount}}
    - id: main
      menu:
        options:
          - {key: "1", action: operator}
          - {key: "2", action: sms_payment_details}
          - {key: "3", action: promise_to_pay}
          - {key: "9", action: opt_out}
retry:
  - when: [busy, no_answer]
    delay_s: 1
    max_attempts: 2
cascade:
  - from: viber
    to: sms
    when: [not_subscribed, undelivered, expired, rejected]
  - from: whatsapp
    to: sms
    when: [not_subscribed, undelivered, rejected]
"""


def make_config(plan: Plan, *, redis_url: str, ami_port: int, smsc_port: int, gateway_url: str, secrets_dir: Path,
                scenarios_dir: Path, clock_spec: str, redis: dict[str, Any] | None = None) -> dict[str, Any]:
    s = Secrets()
    files = {}
    for name in ("ami", "wa_token", "viber_password", "app_secret", "verify_token", "callback_token", "hmac_secret",
                 "smpp"):
        path = secrets_dir / name
        path.write_text(getattr(s, name) + "\n")
        path.chmod(0o600)
        files[name] = str(path)
    http = {"connect_timeout_s": 1.0, "read_timeout_s": 2.0, "backoff_base_s": 0.02, "backoff_max_s": 0.3,
            "retry_budget_s": 3.0, "max_attempts": 6, "health_probe_s": 0.5, "unhealthy_retry_s": 2.0,
            "final_timeout_s": 12.0}
    rates = plan.rates
    return {
        "scenarios_dir": str(scenarios_dir),
        "clock": clock_spec,
        "redis": {"url": redis_url, **(redis or {})},
        "dispatcher": {"lease_s": 3.0, "idle_poll_s": 0.1, "drain_grace_s": 2.0, "batch_size": 100},
        # engine.dispatch.runner at INFO: its "running" line tells a crash at start-up from one later.
        "log": {"json": False, "level": "WARNING", "components": {"engine.dispatch.runner": "INFO"}},
        "channels": {
            "ivr": {"connector": {
                "servers": [{"name": "ast1", "port": ami_port, "username": "volna", "secret_file": files["ami"],
                             "auth": "md5", "trunks": [{
                                 "name": "trunk-chaos", "dial": "Local/{number}@debtor-sim",
                                 "number_format": "e164_digits", "rate_per_s": rates["ivr"], "max_concurrent": 60}]}],
                "ring_timeout_s": 2.0, "settle_s": 0.2, "tick_s": 0.05, "reconnect_min_s": 0.05,
                "reconnect_max_s": 0.5, "action_timeout_s": 2.0, "connect_timeout_s": 2.0, "hangup_wait_s": 1.0,
                "hangup_margin_s": 0.0, "retry_delay_s": 1.0}},
            # Resent when unconfirmed: every resend must be reported (a dispatched record of its own).
            "sms": {"resend_unconfirmed": True, "connector": {
                "final_timeout_s": 12.0,
                "accounts": [{"name": "smsc-chaos", "host": "127.0.0.1", "port": smsc_port, "system_id": "volna",
                              "password_file": files["smpp"], "binds": 2, "window": 10,
                              "rate_per_s": rates["sms"], "enquire_link_s": 1.0, "response_timeout_s": 2.0,
                              "connect_timeout_s": 1.0, "window_wait_s": 2.0, "reconnect_min_s": 0.05,
                              "reconnect_max_s": 0.5, "drain_timeout_s": 1.0,
                              "throttle": {"retry_min_s": 0.02, "retry_max_s": 0.3, "budget_s": 3.0}}]}},
            "whatsapp": {"connector": {
                "base_url": gateway_url, "http": http, "app_secret_file": files["app_secret"],
                "verify_token_file": files["verify_token"],
                "accounts": [{"name": "wa-chaos", "phone_number_id": "1000000001",
                              "access_token_file": files["wa_token"], "rate_per_s": rates["whatsapp"],
                              "max_concurrent": 40}]}},
            "viber": {"connector": {
                "base_url": gateway_url, "http": http, "callback_token_file": files["callback_token"],
                "callback_hmac_secret_file": files["hmac_secret"],
                "accounts": [{"name": "viber-chaos", "username": "volna", "password_file": files["viber_password"],
                              "rate_per_s": rates["viber"], "max_concurrent": 40}]}},
        },
    }


# ---- Redis ---------------------------------------------------------------------------------------


class RedisNode:
    """One redis-server with AOF on a fixed port and directory, so a restart finds its data."""

    def __init__(self, directory: Path, appendfsync: str) -> None:
        self.server = RedisServer(appendonly=True, appendfsync=appendfsync, port=free_port(), directory=directory)
        self.restarts = 0
        #: (down, up) in ``time.time()`` of every restart; the one under way.
        self.outages: list[tuple[float, float]] = []
        self.down_since: float | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    async def restart(self, down_s: float, how: str = "kill") -> None:
        self.down_since = time.time()
        await asyncio.to_thread(self.server.stop, kill=how == "kill")
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.server.start)
        self.outages.append((self.down_since, time.time()))
        self.down_since = None
        self.restarts += 1

    def stop(self) -> None:
        self.server.stop()

    def redis_settings(self) -> dict[str, Any]:
        return {"url": self.url}

    def down(self) -> bool:
        return self.server.proc is None


class SentinelNode:
    """The ``failover`` world: a master, its replica and three sentinels (:class:`SentinelSet`);
    a Redis fault kills the master, the sentinels promote the replica, the old master returns as
    the new one's replica after ``down_s``. The durable point of no return is on."""

    def __init__(self, directory: Path, appendfsync: str) -> None:
        self.group = SentinelSet(appendfsync=appendfsync, directory=directory)
        self.restarts = 0
        self.outages: list[tuple[float, float]] = []
        self.down_since: float | None = None
        self.failover_s: list[float] = []

    @property
    def url(self) -> str:
        return "redis://127.0.0.1/0"

    def redis_settings(self) -> dict[str, Any]:
        return {**self.group.settings(), "durable_replicas": 1, "durable_timeout_s": 1.0}

    def start(self) -> None:
        if any(n.proc is not None for n in self.group.nodes):
            for node in self.group.nodes:
                if node.proc is None:
                    self.group.restart_as_replica(node)
            return
        self.group.start()

    def down(self) -> bool:
        return any(n.proc is None for n in self.group.nodes)

    async def restart(self, down_s: float, how: str = "kill") -> None:
        self.down_since = time.time()
        old = await asyncio.to_thread(self.group.kill_master, how)
        await asyncio.to_thread(self.group.wait_failover, old)
        self.failover_s.append(round(time.time() - self.down_since, 1))
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.group.restart_as_replica, old)
        self.outages.append((self.down_since, time.time()))
        self.down_since = None
        self.restarts += 1

    def stop(self) -> None:
        self.group.stop()


# ---- the simulators, tapped ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WireSend:
    """One send as a peer saw it: channel, who, when (real), and the attempt where the peer knows it."""

    channel: str
    number: str  # digits
    real_s: float
    #: AMI: the ChannelId; SMS and messengers: the task id (from the rendered text).
    ref: str
    engine_ms: int | None = None


class TimedAmiStats(AmiStats):
    """The AMI simulator's counters, plus every Originate with its arrival time."""

    def __init__(self) -> None:
        super().__init__()
        self.sends: list[WireSend] = []

    def originate(self, now: float, digits: str, channel_id: str) -> int:
        self.sends.append(WireSend("ivr", digits, time.time(), channel_id))
        return super().originate(now, digits, channel_id)


class GatewayTap:
    """An aiohttp middleware on the gateway simulator: every accepted send, with its arrival time.

    The task id travels in the rendered text (the ``account`` variable is the task id), so each
    accepted message is tied to its task without the simulator knowing about tasks.
    """

    def __init__(self) -> None:
        self.sends: list[WireSend] = []
        self.refused: Counter[int] = Counter()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        arrived = time.time()
        if request.method != "POST":
            return await handler(request)
        channel = "viber" if request.path == "/vbs/api/v2/send" else \
            "whatsapp" if request.path.endswith("/messages") else None
        body = await request.read()  # cached: the handler reads it again
        response: web.StreamResponse = await handler(request)
        if channel is None:
            return response
        if response.status in (200, 201, 202):
            data = json.loads(body)
            number = str(data.get("to") or data.get("phone") or "")
            task = _task_ref(body)
            self.sends.append(WireSend(channel, "".join(c for c in number if c.isdigit()), arrived, task))
        else:
            self.refused[response.status] += 1
        return response


class SmscTap:
    """Every whole message the SMSC stores (parts joined), with its arrival time (wraps ``_count``)."""

    def __init__(self, sim: SmscSimulator) -> None:
        self.sends: list[WireSend] = []
        original = sim._count

        def count(destination: str, text: str, parts: int) -> None:
            self.sends.append(WireSend("sms", destination, time.time(), _task_ref(text.encode())))
            original(destination, text, parts)

        sim._count = count  # type: ignore[method-assign]


_TASK_ID = re.compile(r"\bT[0-9]{6}(?:-sms-details)?")


def _task_ref(body: bytes) -> str:
    match = _TASK_ID.search(body.decode("utf-8", "replace"))
    return match.group(0) if match else ""


def ami_knobs(seed: int) -> AmiKnobs:
    return AmiKnobs(seed=seed, ring_min_s=0.01, ring_max_s=0.05, talk_min_s=0.05, talk_max_s=0.2,
                    no_answer_s=0.1, busy_share=0.08, no_answer_share=0.05, congestion_share=0.02,
                    invalid_share=0.01, failed_share=0.01, machine_share=0.05,
                    key_mix="1:0.04,2:0.05,3:0.05,9:0.02")


def smsc_knobs(seed: int, rate_per_s: float) -> SmscKnobs:
    return SmscKnobs(seed=seed, accounts={"volna": Secrets.smpp}, receipt_delay="uniform",
                     receipt_delay_min_s=0.02, receipt_delay_max_s=0.5, undelivered_share=0.04,
                     expired_share=0.01, rejected_share=0.01, tps_limit=rate_per_s * 0.9,
                     submit_latency_min_s=0.0, submit_latency_max_s=0.02)


def gateway_knobs(seed: int) -> GatewayKnobs:
    return GatewayKnobs(seed=seed, no_account_share=0.15, delivered_min_s=0.02, delivered_max_s=0.3,
                        read_share=0.3, read_min_s=0.05, read_max_s=0.3, duplicate_share=0.05,
                        out_of_order_share=0.05, read_without_delivered_share=0.03, error_share=0.01,
                        hang_share=0.003, hang_s=4.0, webhook_attempts=9, webhook_concurrency=32)


# ---- the dispatcher processes --------------------------------------------------------------------


@dataclass(frozen=True)
class Exit:
    """A dispatcher process that exited on its own."""

    pid: int
    code: int
    last_line: str
    log: str
    started: float
    ended: float
    #: It had logged "dispatcher … running" (its start-up was over).
    ran: bool

    def describe(self) -> str:
        return f"pid {self.pid} exited with {self.code}: {self.last_line} ({self.log})"


@dataclass
class Fleet:
    """``n`` dispatcher processes (``tests.chaos.proc``) that can be killed and restarted."""

    n: int
    config: Path
    workdir: Path
    seed: int
    procs: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    incarnations: int = 0
    kills: int = 0
    log_of: dict[int, int] = field(default_factory=dict)
    started_at: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.procs = [None] * self.n

    def start(self, i: int) -> None:
        self.incarnations += 1
        k = self.incarnations
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        env.pop("REDIS_URL", None)
        args = [sys.executable, "-m", "tests.chaos.proc", "--config", str(self.config)]
        with open(self.workdir / f"proc-{k:03d}.log", "ab") as log:
            proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        self.procs[i] = proc
        self.log_of[proc.pid] = k
        self.started_at[proc.pid] = time.time()

    def start_all(self) -> None:
        for i in range(self.n):
            if self.procs[i] is None or self.procs[i].poll() is not None:  # type: ignore[union-attr]
                self.start(i)

    async def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)
            self.kills += 1
        self.procs[i] = None

    async def kill_all(self) -> None:
        await asyncio.gather(*(self.kill(i) for i in range(self.n)))

    async def dump_all(self) -> None:
        """Each live process logs what its channel loops hold (SIGUSR1)."""
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.5)

    async def stop_all(self) -> None:
        """SIGTERM (a graceful drain), then SIGKILL what is still there after 20 s."""
        alive = [p for p in self.procs if p is not None and p.poll() is None]
        for p in alive:
            p.send_signal(signal.SIGTERM)
        for p in alive:
            try:
                await asyncio.to_thread(p.wait, 20)
            except subprocess.TimeoutExpired:
                p.kill()
                await asyncio.to_thread(p.wait, 10)
        self.procs = [None] * self.n

    def reap(self) -> list[Exit]:
        """Restart processes that exited on their own (as a supervisor would); say which and how."""
        out = []
        for i, p in enumerate(self.procs):
            if p is not None and p.poll() is not None:
                log = self.workdir / f"proc-{self.log_of[p.pid]:03d}.log"
                text = log.read_text(errors="replace") if log.exists() else ""
                tail = text.strip().splitlines()[-1:]
                out.append(Exit(p.pid, p.returncode, tail[0][:200] if tail else "", log.name,
                                self.started_at[p.pid], time.time(), " running: " in text))
                self.start(i)
        return out


def write_scenarios(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{SCENARIO}.yaml").write_text(scenario_yaml(), encoding="utf-8")


def write_config(path: Path, config: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(to_toml(config), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
