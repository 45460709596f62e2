"""The parts one engine process shares between its loops, built once from settings."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import date

from redis.asyncio import Redis

from engine.calendar.clock import Clock
from engine.calendar.windows import WindowCalendar
from engine.config.scenario_files import load_scenarios
from engine.config.settings import Settings
from engine.domain.scenarios import Scenario
from engine.gates.caps import Caps
from engine.gates.deactivation import Deactivations
from engine.gates.pacing import Pacer
from engine.gates.stoplist import StopList
from engine.metrics.registry import Metrics
from engine.store.directory import PhoneDirectory
from engine.store.schema import SettleMode
from engine.store.scripts import Scripts
from engine.waves.control import Waves


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Context:
    settings: Settings
    clock: Clock
    redis: Redis
    scenarios: dict[str, Scenario]
    waves: Waves = field(init=False)
    caps: Caps = field(init=False)
    stoplist: StopList = field(init=False)
    pacer: Pacer = field(init=False)
    #: Debtors' phones beyond any wave (callbacks, replies); the archive answers for old ones when
    #: the composition root sets ``directory.fallback``.
    directory: PhoneDirectory = field(init=False)
    deactivations: Deactivations = field(init=False)
    windows: WindowCalendar = field(init=False)
    owner: str = field(default_factory=process_id)
    #: wave id → (campaign, day); immutable once a wave exists, so cached for good.
    _wave_days: dict[str, tuple[str, date]] = field(default_factory=dict)
    #: This process's Prometheus metrics (its own registry; the catalogue is in docs/metrics.md).
    metrics: Metrics = field(default_factory=Metrics, repr=False)

    def __post_init__(self) -> None:
        s = self.settings
        scripts = Scripts(self.redis)
        settle = SettleMode.OUTBOX if s.redis.cluster else SettleMode.INLINE
        self.windows = WindowCalendar(s.windows)
        self.waves = Waves(self.redis, self.clock, results_maxlen=s.redis.results_maxlen, settle_mode=settle,
                           scripts=scripts, calendar=self.windows)
        self.caps = Caps(self.redis, s.caps, cluster=s.redis.cluster, scripts=scripts)
        self.stoplist = StopList(self.redis, phone_key=s.retention.phone_key(), cluster=s.redis.cluster,
                                 scripts=scripts)
        self.pacer = Pacer(self.redis, headroom=s.dispatcher.rate_headroom)
        self.directory = PhoneDirectory(self.redis, ttl_s=s.phones.directory_days * 86400,
                                        cluster=s.redis.cluster, scripts=scripts)
        self.deactivations = Deactivations(
            self.redis, invalid_strikes=s.phones.invalid_strikes, deactivation_days=s.phones.deactivation_days,
            strike_window_days=s.phones.strike_window_days,
            hasher=self.stoplist.hashed if self.stoplist.phone_key else None)

    @classmethod
    def build(cls, settings: Settings, clock: Clock, redis: Redis) -> Context:
        scenarios = load_scenarios(settings.scenarios_dir) if settings.scenarios_dir.exists() else {}
        return cls(settings, clock, redis, scenarios)

    async def wave_day(self, wave_id: str) -> tuple[str, date]:
        if wave_id not in self._wave_days:
            info = await self.waves.get(wave_id)
            self._wave_days[wave_id] = (info.campaign_id, info.day)
        return self._wave_days[wave_id]
