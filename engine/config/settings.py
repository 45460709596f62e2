"""Typed settings: one TOML file (``volna.toml`` / ``--config``) plus ``VOLNA_…`` env overrides.

Env overrides use ``__`` between levels: ``VOLNA_REDIS__URL``,
``VOLNA_DISPATCHER__BATCH_SIZE``. ``REDIS_URL`` is honoured too, so one variable
points tests, the demo and the engine at the same server. Every key is
documented in ``ops/volna.example.toml``.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from engine.domain.outcomes import Channel
from engine.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ClockSpec:
    """A scaled engine clock, as child processes are given it: ``start_ms:speed:epoch_real_ms``
    (engine time ``start_ms`` at real time ``epoch_real_ms``, running ``speed`` times as fast)."""

    start_ms: int
    speed: float
    epoch_real_ms: int

    @classmethod
    def parse(cls, spec: str) -> ClockSpec:
        parts = spec.split(":")
        try:
            start, speed, epoch = int(parts[0]), float(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            raise ValueError(f"clock spec {spec!r} is not start_ms:speed:epoch_real_ms") from None
        if len(parts) != 3 or not (0 < speed < 1e9) or start < 0 or epoch < 0:
            raise ValueError(f"clock spec {spec!r} is not start_ms:speed:epoch_real_ms (speed > 0)")
        return cls(start, speed, epoch)

    def __str__(self) -> str:
        return f"{self.start_ms}:{self.speed}:{self.epoch_real_ms}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RedisSettings(_Section):
    """The live store: waves, queues, caps, pacing, results streams (every process shares one)."""

    #: The Redis server: `redis://[:password@]host:port/db`, `rediss://` for TLS, `unix:///path?db=0`. Logs and errors
    #: show it without the password. The environment's `REDIS_URL` overrides it too.
    url: str = "redis://127.0.0.1:6379/0"
    #: Results stream retention: entries beyond this many per wave are trimmed (approximate).
    results_maxlen: int = Field(default=5_000_000, ge=1000)
    #: Correlation ids (message id → task) live this long.
    correlation_ttl_s: int = Field(default=3 * 86400, ge=60)
    #: Redis Cluster instead of a single server.
    cluster: bool = False
    #: The Redis password (``requirepass``; with Sentinel, the master's and its replicas'), read
    #: from this file; a password in ``url`` works too but then the config file must not be world-readable.
    password_file: Path | None = None
    #: Redis Sentinel instead of a fixed server: the sentinels' ``host:port`` (three or more, on
    #: separate machines). Every process asks them for the master and follows a failover; ``url``
    #: then gives only the database number (and TLS with ``rediss://``).
    sentinels: list[str] = Field(default_factory=list)
    #: The master's name in the sentinels' configuration (``sentinel monitor <name> …``).
    sentinel_master: str = Field(default="volna", pattern=r"^[A-Za-z0-9._\-]{1,64}$")
    #: The sentinels' own password (``requirepass`` in sentinel.conf), read from this file.
    sentinel_password_file: Path | None = None
    #: The durable point of no return: after ``begin_send`` and before the wire, wait until this
    #: many replicas hold the mark (``WAIT``), once per batch. 0: off. A batch whose wait times
    #: out is not sent; it goes back to the queue.
    durable_replicas: int = Field(default=0, ge=0, le=16)
    #: Also wait until the master's AOF holds the mark on disk (``WAITAOF 1 …``, Redis ≥ 7.2 with
    #: ``appendonly yes``), so a power cut under ``appendfsync everysec`` cannot resend it either
    #: (only on a server whose WAITAOF waits for the fsync: docs/failover.md).
    durable_aof: bool = False
    #: How long that wait may take before the batch goes back to the queue unsent.
    durable_timeout_s: float = Field(default=1.0, gt=0, le=5)

    @field_validator("sentinels")
    @classmethod
    def _sentinels(cls, value: list[str]) -> list[str]:
        for address in value:
            sentinel_address(address)
        return value

    @model_validator(mode="after")
    def _one_topology(self) -> RedisSettings:
        if self.sentinels and self.cluster:
            raise ValueError("sentinels and cluster exclude each other (a Redis Cluster fails over by itself)")
        if self.cluster and self.durable:
            raise ValueError("durable_replicas and durable_aof are not supported on a Redis Cluster yet "
                             "(WAIT reaches one node, a wave's batch may not)")
        return self

    @property
    def durable(self) -> bool:
        return self.durable_replicas > 0 or self.durable_aof

    def password(self) -> str | None:
        return _read_secret(self.password_file, "redis.password_file")

    def sentinel_password(self) -> str | None:
        return _read_secret(self.sentinel_password_file, "redis.sentinel_password_file")


def sentinel_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) → (host, port); ValueError naming the address otherwise."""
    host, sep, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"sentinel address {address!r} is not host:port")
    return host, int(port)


def _read_secret(path: Path | None, key: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path} ({exc.strerror})") from None


class WindowSpec(_Section):
    #: opens (HH:MM, the debtor's local time);
    start: time
    #: closes (HH:MM, after the opening).
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> WindowSpec:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} is not after start {self.start}")
        return self


class WindowSettings(_Section):
    """Campaign contact hours, debtor's local time; always clipped to :attr:`legal_*`."""

    #: The campaigns' window on working days (transferred working Saturdays included):
    weekday: WindowSpec = WindowSpec(start=time(8), end=time(20))
    #: The campaigns' window on weekends and public holidays:
    weekend: WindowSpec = WindowSpec(start=time(9), end=time(20))
    #: The legal bound on working days (230-FZ art. 7), which no other setting widens:
    legal_weekday: WindowSpec = WindowSpec(start=time(8), end=time(22))
    #: The legal bound on weekends and public holidays (230-FZ art. 7), which no other setting widens:
    legal_weekend: WindowSpec = WindowSpec(start=time(9), end=time(20))
    #: Holiday calendar country for ``holidays`` (weekends, public holidays, transferred days).
    calendar: str = "RU"
    #: Per channel overrides of ``weekday`` and ``weekend``
    #: (``[windows.channels.sms] weekday = {start = "09:00", end = "19:00"}``):
    channels: dict[Channel, dict[str, WindowSpec]] = Field(
        default_factory=dict, json_schema_extra={"keys": ["<channel>", "<weekday|weekend>"]})
    #: Per campaign overrides, for one channel or ``"*"`` for all (``[windows.campaigns.c1.ivr]``
    #: ``weekday = {start = "10:00", end = "19:00"}``); they win over the channel's, and are still
    #: clipped to the legal bound:
    campaigns: dict[str, dict[str, dict[str, WindowSpec]]] = Field(
        default_factory=dict, json_schema_extra={"keys": ["<campaign>", "<channel-or-*>", "<weekday|weekend>"]})


class CapLimits(_Section):
    #: per day of the debtor's local calendar;
    day: int = Field(ge=0)
    #: per ISO week (Monday to Sunday);
    week: int = Field(ge=0)
    #: per calendar month.
    month: int = Field(ge=0)


class CapSettings(_Section):
    """Per-debtor contact caps (230-FZ art. 7), across all campaigns and channels."""

    #: Check and count the caps. Off only for load tests against the simulators: the caps are a legal duty.
    enabled: bool = True
    #: Conversations (an answered call, an operator's talk) a debtor may have, at most,
    conversation: CapLimits = CapLimits(day=1, week=2, month=8)
    #: Messages (SMS, Viber, WhatsApp) a debtor may receive, at most,
    message: CapLimits = CapLimits(day=2, week=4, month=16)


class PacingTarget(_Section):
    """A pacing target's limits by its name (a trunk, an SMPP account, a gateway account), in place of
    those its connector settings give."""

    #: Sends per second at most, across every dispatcher.
    rate_per_s: float = Field(gt=0)
    #: Attempts in flight at once at most (calls up, messages awaiting the gateway's answer).
    max_concurrent: int = Field(ge=1)


class ChannelSettings(_Section):
    """A channel (``ivr``, ``sms``, ``viber``, ``whatsapp``) and its connector; the ``connector``
    table's keys are in the channel's own section below."""

    #: `volna run` without `--channels` starts this channel's loop (and `volna api` its webhooks).
    enabled: bool = True
    #: Guarantee 4: resend an attempt whose outcome is unknown after a crash.
    resend_unconfirmed: bool = False
    #: The connector's settings, checked by its own model (their keys: `[channels.<channel>.connector]`).
    connector: dict[str, Any] = Field(default_factory=dict)


class DispatcherSettings(_Section):
    """``volna run``: how each channel loop claims, holds and drains its attempts."""

    #: Tasks one claim takes from a wave's queue in one round trip to Redis.
    batch_size: int = Field(default=200, ge=1, le=5000)
    #: Attempts one channel loop keeps between claim and send/accept.
    max_inflight: int = Field(default=2000, ge=1)
    #: A claimed attempt's lease (real seconds), renewed while its process lives: a dead process's attempts are
    #: recovered by another after it.
    lease_s: float = Field(default=30.0, gt=0)
    #: How long a stopping process waits for in-flight sends before giving up on them.
    drain_grace_s: float = Field(default=10.0, ge=0)
    #: Share of a target's configured rate the limiter grants, to absorb scheduling jitter so
    #: the configured rate holds in every calendar second.
    rate_headroom: float = Field(default=0.97, gt=0.5, le=1.0)
    #: Claim at most this many seconds of the targets' combined rate ahead: a process waiting on
    #: pacing does not hoard tasks other processes could send (or a stop would cancel).
    claim_ahead_s: float = Field(default=2.0, gt=0)
    #: Idle poll ceiling: a loop with nothing eligible sleeps at most this long.
    idle_poll_s: float = Field(default=0.5, gt=0)


class ApiSettings(_Section):
    """``volna api``: the control API, the console, the webhooks and ``/metrics``, and their limits."""

    #: The address `volna api` listens on (the console, the control API, the webhooks, /metrics).
    host: str = "127.0.0.1"
    #: Its port (0: any free port).
    port: int = Field(default=8080, ge=0, le=65535)
    #: Largest JSON or webhook body (413 beyond).
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    #: Largest task upload (413 beyond, after the last whole line below it).
    max_upload_bytes: int = Field(default=1 << 30, ge=1024)
    #: A request body (JSON, webhook) must arrive whole, an upload send something, within this.
    body_read_timeout_s: float = Field(default=10.0, gt=0)
    #: Uploads one process serves at once (429 with Retry-After beyond).
    max_concurrent_uploads: int = Field(default=4, ge=1)
    #: Lines per second one upload is read at (0 = unpaced).
    upload_lines_per_s: float = Field(default=20_000.0, ge=0)
    #: Webhook requests one process handles at once (503 with Retry-After beyond: the provider resends).
    webhook_max_concurrent: int = Field(default=512, ge=1)


#: Recordings and the texts of messages are kept at least 3 years (Minjust order No. 134).
LEGAL_RETENTION_DAYS = 3 * 365 + 1


class RecordingSettings(_Section):
    """Call recordings: Asterisk writes them (``MixMonitor``, ``volna/<wave>/<task>-<attempt>.wav``
    under its monitor directory); ``volna recordings prune`` deletes them after the interaction
    log's retention (``retention.interaction_log_days``)."""

    #: The recordings' root as mounted on the host that prunes (Asterisk's monitor directory).
    dir: Path = Path("/var/spool/asterisk/monitor")


class ArchiveSettings(_Section):
    """``volna archive``: the results streams into PostgreSQL (docs/archive.md)."""

    #: libpq connection string or URL (``postgresql://volna@db.example/volna``); keep the password
    #: in ``password_file`` (or PGPASSFILE), not here.
    dsn: str = ""
    #: A file holding the PostgreSQL password (readable by Volna only).
    password_file: Path | None = None
    #: Records read and written per round (one COPY per table).
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    #: The consumer group the archivers share on every wave's results stream.
    group: str = Field(default="archive", pattern=r"^[A-Za-z0-9._:\-]{1,64}$")
    #: A record read by an archiver that died is taken over by another after this long.
    claim_idle_s: float = Field(default=30.0, gt=0)
    #: How long one read waits for new records.
    poll_s: float = Field(default=1.0, gt=0)
    #: Timeout of connecting to PostgreSQL.
    connect_timeout_s: float = Field(default=10.0, gt=0)
    #: Timeout of one SQL statement.
    statement_timeout_s: float = Field(default=120.0, gt=0)
    #: ``volna archive`` applies the retention rules this often (0: never; run ``volna retention``
    #: from a timer instead, as ops/systemd/volna-retention.timer does).
    retention_every_s: float = Field(default=0.0, ge=0)

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"archive.password_file: cannot read {self.password_file} ({exc.strerror})") from None


class RetentionSettings(_Section):
    """How long things are kept (152-FZ for personal data, 230-FZ for the interaction log)."""

    #: A finished wave (completed or stopped) whose results are all archived leaves Redis this long
    #: after it finished (engine time). Late receipts after that are counted as unknown ids.
    redis_hours: float = Field(default=48.0, ge=0)
    #: Personal data in PostgreSQL (phones, template vars) is pseudonymized this long after the
    #: wave's day: the debtor id stays, the phone becomes its keyed hash.
    personal_data_days: int = Field(default=365, ge=1)
    #: Message texts and call-recording references are kept this long (230-FZ and Minjust order
    #: No. 134: at least 3 years), then deleted.
    interaction_log_days: int = Field(default=LEGAL_RETENTION_DAYS, ge=1)
    #: The key of the phones' keyed hash (HMAC-SHA256), at least 16 bytes: a file only root and
    #: Volna read. The archive, retention and erasure refuse to run without it.
    phone_hash_key_file: Path | None = None
    #: Task vars that name or locate the debtor: erasure takes their values out of the texts kept.
    personal_vars: list[str] = Field(default_factory=lambda: [
        "name", "full_name", "first_name", "last_name", "middle_name", "fio", "address"])

    def phone_key(self) -> bytes | None:
        """The hash key, or None when none is configured."""
        if self.phone_hash_key_file is None:
            return None
        try:
            key = self.phone_hash_key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"retention.phone_hash_key_file: cannot read {self.phone_hash_key_file} "
                              f"({exc.strerror})") from None
        if len(key) < 16:
            raise ConfigError(f"retention.phone_hash_key_file: {self.phone_hash_key_file} holds fewer than 16 bytes")
        return key

    def require_phone_key(self) -> bytes:
        key = self.phone_key()
        if key is None:
            raise ConfigError("retention.phone_hash_key_file is not set: the archive keeps phones as keyed "
                              "hashes (make one: head -c 32 /dev/urandom > /etc/volna/phone-hash.key)")
        return key


class PhoneSettings(_Section):
    """The life of a phone number (docs/inbound.md): the directory of debtors' phones, and when a
    number stops being called."""

    #: ``invalid_number`` outcomes from distinct attempts, counted per cause family (SIP/Q.850,
    #: SMPP, messenger gateway), that deactivate a number; congestion never counts.
    invalid_strikes: int = Field(default=2, ge=1, le=100)
    #: A deactivation expires after this many days (Russian operators reissue numbers).
    deactivation_days: int = Field(default=180, ge=1)
    #: Strikes older than this are forgotten (a transient 404 in March says nothing in June).
    strike_window_days: int = Field(default=30, ge=1)
    #: The directory's hot set in Redis: a phone stays this long after its last task or contact
    #: (PostgreSQL answers for older ones when the archive is configured).
    directory_days: int = Field(default=90, ge=1)


#: Opt-out words by language (matched as whole words ignoring case, spacing and punctuation;
#: ``ё`` = ``е``; a word ending in ``*`` matches the words it begins).
DEFAULT_OPT_OUT = {
    "ru": ["стоп", "отписаться", "отписка", "не звоните", "не звонить", "не пишите", "не беспокоить"],
    "en": ["stop", "unsubscribe", "stop all", "opt out"],
}
#: Replies that name a representative (230-FZ art. 8: contact only through the representative).
DEFAULT_REPRESENTATIVE = {
    "ru": ["представител*", "адвокат*", "юрист*"],
    "en": ["representative*", "lawyer*", "attorney*"],
}


class InboundSettings(_Section):
    """Callbacks and replies (docs/inbound.md)."""

    #: Per language, the replies that put the debtor on the stop-list with reason ``refused``.
    opt_out_keywords: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_OPT_OUT.items()})
    #: Per language, the replies that put the debtor on the stop-list with reason ``representative``.
    representative_keywords: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_REPRESENTATIVE.items()})
    #: An inbound call's or message's id is remembered this long, so every dispatcher that sees it
    #: (every AMI session, a resent webhook, an MO the SMSC delivers again) records it once.
    dedupe_ttl_s: int = Field(default=7 * 86400, ge=60)
    #: Parts of a concatenated MO wait this long for the rest (on any bind, in any process).
    concat_ttl_s: int = Field(default=600, ge=10)
    #: Characters of a reply's text kept in the record (the rest is cut).
    max_text_chars: int = Field(default=2000, ge=16)


_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in _LOG_LEVELS:
        raise ValueError(f"log level {value!r} is not one of {', '.join(_LOG_LEVELS)}")
    return level


class LogSettings(_Section):
    """Logs, to standard error: phone numbers are masked in every line, whatever the level."""

    #: CRITICAL, ERROR, WARNING, INFO or DEBUG (under systemd the journal keeps them).
    level: str = "INFO"
    #: One JSON object per line (false: plain text for a terminal).
    json_format: bool = Field(default=True, alias="json")
    #: Per component, e.g. ``{"connectors.smpp" = "DEBUG"}``.
    components: dict[str, str] = Field(default_factory=dict)

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        return _log_level(value)

    @field_validator("components")
    @classmethod
    def _component_levels(cls, value: dict[str, str]) -> dict[str, str]:
        return {component: _log_level(level) for component, level in value.items()}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOLNA_", env_nested_delimiter="__", extra="forbid")

    redis: RedisSettings = RedisSettings()
    windows: WindowSettings = WindowSettings()
    caps: CapSettings = CapSettings()
    dispatcher: DispatcherSettings = DispatcherSettings()
    pacing: dict[str, PacingTarget] = Field(default_factory=dict, json_schema_extra={"keys": ["<target>"]})
    channels: dict[Channel, ChannelSettings] = Field(default_factory=dict)
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()
    archive: ArchiveSettings = ArchiveSettings()
    recordings: RecordingSettings = RecordingSettings()
    retention: RetentionSettings = RetentionSettings()
    phones: PhoneSettings = PhoneSettings()
    inbound: InboundSettings = InboundSettings()
    #: The folder of scenario files (`*.yaml`), relative to the working directory.
    scenarios_dir: Path = Path("scenarios")
    #: Engine clock spec (``start_ms:speed:epoch_real_ms``); empty = the system clock.
    clock: str = ""

    @field_validator("clock")
    @classmethod
    def _clock(cls, value: str) -> str:
        if value:
            ClockSpec.parse(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file: an operator overrides one key without editing TOML.
        return (env_settings, init_settings)

    def channel(self, channel: Channel) -> ChannelSettings:
        return self.channels.get(channel, ChannelSettings())


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read ``path`` (or ``volna.toml`` when present), apply env, then ``overrides``."""
    data: dict[str, Any] = {}
    file = Path(path) if path else (Path("volna.toml") if Path("volna.toml").exists() else None)
    if file is not None:
        try:
            mode = file.stat().st_mode
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
        data = parse_config_text(file, lambda text: tomllib.loads(text), tomllib.TOMLDecodeError, "TOML")
        if mode & stat.S_IROTH and _has_secrets(data):
            raise ConfigError(f"{file}: holds secrets and is world-readable; chmod o-r {file}")
    data.update(overrides)
    if "REDIS_URL" in os.environ and "VOLNA_REDIS__URL" not in os.environ:
        redis = data.setdefault("redis", {})
        if isinstance(redis, dict):  # anything else is left to the validation, which names the key
            data["redis"] = {**redis, "url": os.environ["REDIS_URL"]}
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = f"{file}: " if file else ""
        lines = [f"{where}{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def parse_config_text(file: Path, parse: Callable[[str], Any], syntax_error: type[Exception], syntax: str) -> Any:
    """Read ``file`` as UTF-8 and parse it; every way that can fail is a :class:`ConfigError`
    naming the file (a cp1251 file from an operator's editor, a file nested thousands deep)."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    try:
        return parse(text)
    except syntax_error as exc:
        raise ConfigError(f"{file}: not valid {syntax}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{file}: not valid {syntax}: nested too deeply") from None


_SECRET_WORDS = ("password", "token", "secret")


def _has_secrets(node: Any) -> bool:
    if isinstance(node, dict):
        return any(
            (any(w in str(k).lower() for w in _SECRET_WORDS) and isinstance(v, str) and bool(v)
             and not str(k).endswith("_file"))
            or _has_secrets(v)
            for k, v in node.items()
        )
    if isinstance(node, list):
        return any(_has_secrets(v) for v in node)
    return False
