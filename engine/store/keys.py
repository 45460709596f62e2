"""Every Redis key Volna uses, built in one place, with the hash-tag rules beside them.

Redis Cluster rules (ARCHITECTURE.md, "At scale"):

* one wave's keys share the hash tag ``{w:<wave>}`` so the wave's Lua scripts
  (claim, begin-send, finalize) touch one slot atomically;
* one debtor's cap keys share ``{d:<debtor>}`` so a reservation of the day,
  week and month counters is one atomic script;
* one pacing target's keys share ``{p:<target>}``;
* everything else is a single key per command (stop-list hashes, the wave
  registry, correlation ids), so it may live on any node.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.outcomes import Channel

PREFIX = "volna"

#: Pub/sub channel for wave state changes; every dispatcher subscribes.
CONTROL_CHANNEL = f"{PREFIX}:control"
#: Every wave id ever created (set).
WAVES = f"{PREFIX}:waves"
#: Ids of waves currently running (set), the dispatchers' safety-net poll.
RUNNING = f"{PREFIX}:waves:running"
#: Campaigns (hash id → JSON).
CAMPAIGNS = f"{PREFIX}:campaigns"
#: Stop-list: debtor id → JSON {reason, at, by}; phone (E.164) → JSON.
STOP_DEBTORS = f"{PREFIX}:stop:debtor"
STOP_PHONES = f"{PREFIX}:stop:phone"
#: Phones deactivated after ``phones.invalid_strikes`` ``invalid_number`` outcomes: phone → JSON
#: {at, until, detail, family, strikes} (engine.gates.deactivation).
INVALID_PHONES = f"{PREFIX}:phones:invalid"
#: Stop-list and deactivated phones of erased debtors, by the phone's keyed hash (hex) → JSON
#: {kind: stop|invalid, reason}: the stop-list still refuses a number nobody keeps in clear.
PHONE_HASHES = f"{PREFIX}:stop:phonehash"
#: Stream of stop-list changes (add, remove; phones as keyed hash and mask), for the archive.
STOP_CHANGES = f"{PREFIX}:stop:changes"
#: Audit stream of state-changing calls (who, what, when, from where).
AUDIT = f"{PREFIX}:audit"
#: Health reports of the dispatcher processes: process id → JSON (sessions, binds, gateway
#: accounts, throttling, in-flight), rewritten every few seconds; a stale one is a process gone.
HEALTH = f"{PREFIX}:health"
#: API tokens: sha256(token) → JSON {name, role, created}.
TOKENS = f"{PREFIX}:tokens"

CHANNEL_ORDER: tuple[Channel, ...] = (Channel.IVR, Channel.SMS, Channel.VIBER, Channel.WHATSAPP)


@dataclass(frozen=True, slots=True)
class WaveKeys:
    """All keys of one wave; :attr:`script_keys` is the fixed KEYS list of every wave script."""

    wave_id: str

    @property
    def tag(self) -> str:
        return f"{PREFIX}:{{w:{self.wave_id}}}"

    @property
    def meta(self) -> str:
        """Hash: state, campaign, day, timestamps and who changed the state."""
        return f"{self.tag}:meta"

    @property
    def tasks(self) -> str:
        """Hash: task id → task JSON (immutable once loaded)."""
        return f"{self.tag}:tasks"

    @property
    def state(self) -> str:
        """Hash: task id → state JSON (s, a, c, ph, o, …; see engine/store/lua)."""
        return f"{self.tag}:state"

    @property
    def counts(self) -> str:
        """Hash: counters by state, outcome and channel."""
        return f"{self.tag}:counts"

    def queue(self, channel: Channel | str) -> str:
        """Sorted set: task id scored by eligible time × 10 + (9 − priority)."""
        return f"{self.tag}:q:{channel}"

    @property
    def leases(self) -> str:
        """Sorted set: claimed/in-flight task id scored by lease expiry (epoch ms)."""
        return f"{self.tag}:leases"

    @property
    def results(self) -> str:
        """Stream of dispatch records and outcomes."""
        return f"{self.tag}:results"

    @property
    def data(self) -> str:
        """Hash: task id → JSON of data gathered before the final event (DTMF, steps)."""
        return f"{self.tag}:data"

    @property
    def parts(self) -> str:
        """Hash: task id → JSON of multipart receipt progress."""
        return f"{self.tag}:parts"

    @property
    def phones(self) -> str:
        """Hash: phone (E.164) → debtor id, to find the debtor of an inbound call."""
        return f"{self.tag}:phones"

    @property
    def debtors(self) -> str:
        """Hash: debtor id → comma-separated task ids (opt-out and inbound cancel the rest)."""
        return f"{self.tag}:debtors"

    @property
    def outbox(self) -> str:
        """Hash: reservation field → a settlement waiting to be applied in its debtor's slot (Redis
        Cluster only: a wave script cannot write another slot's keys)."""
        return f"{self.tag}:outbox"

    @property
    def script_keys(self) -> list[str]:
        """In the order of :data:`SCRIPT_KEY_NAMES` (the scripts' ``K`` table)."""
        return [
            self.meta, self.tasks, self.state, self.counts, self.leases, self.results, self.data,
            *(self.queue(c) for c in CHANNEL_ORDER), self.parts, self.phones, self.debtors, self.outbox,
        ]


#: The KEYS of every wave script, by position (1-based in Lua); ``queues`` is the first of the
#: channels' queues, in :data:`CHANNEL_ORDER`.
SCRIPT_KEY_NAMES: tuple[str, ...] = ("meta", "tasks", "state", "counts", "leases", "results", "data", "queues",
                                     *(f"queue_{c}" for c in CHANNEL_ORDER[1:]), "parts", "phones", "debtors",
                                     "outbox")


def correlation(channel: Channel | str, correlation_id: str) -> str:
    """String: the :class:`engine.store.schema.CorrelationValue` of an accepted attempt, with a TTL."""
    return f"{PREFIX}:corr:{channel}:{correlation_id}"


def inbound_seen(source_id: str) -> str:
    """String with a TTL: an inbound message's id (``sms:<smsc>:<id>``, ``whatsapp:<wamid>``), set
    by the one process that records it."""
    return f"{PREFIX}:inbound:seen:{source_id}"


def inbound_parts(reference: str) -> str:
    """Hash with a TTL: part number → the part's text, of one concatenated MO (any bind, any process)."""
    return f"{PREFIX}:inbound:parts:{reference}"


#: Stream of inbound records whose wave has left Redis, and of inbound from unknown numbers (the
#: archive reads it like a wave's results stream).
INBOUND = f"{PREFIX}:inbound:stream"


def directory(phone: str) -> str:
    """Hash with a TTL (``phones.directory_days``): the phone's debtor, the wave and campaign that
    loaded it, and its last contact (:mod:`engine.store.directory`)."""
    return f"{PREFIX}:dir:{phone}"


def phone_strikes(phone: str) -> str:
    """Hash: cause family → JSON list of the ``invalid_number`` strikes (attempt key, at ms, code)."""
    return f"{PREFIX}:phones:strikes:{phone}"


def debtor_tag(debtor_id: str) -> str:
    return f"{PREFIX}:{{d:{debtor_id}}}"


def cap_reservations(debtor_id: str) -> str:
    """Hash: attempt key → JSON of the counters it incremented (so release is exact and once)."""
    return f"{debtor_tag(debtor_id)}:capres"


def cap_counter(debtor_id: str, cap_class: str, period: str) -> str:
    """String counter; ``period`` is ``d2026-11-28``, ``w2026-48`` or ``m2026-11``."""
    return f"{debtor_tag(debtor_id)}:cap:{cap_class}:{period}"


def cap_counters(debtor_id: str, cap_class: str, periods: tuple[str, str, str]) -> tuple[str, str, str]:
    """The day, week and month counters of one class (the hot path's :func:`cap_counter` × 3)."""
    head = f"{debtor_tag(debtor_id)}:cap:{cap_class}:"
    return head + periods[0], head + periods[1], head + periods[2]


def pacing_rate(target: str) -> str:
    return f"{PREFIX}:{{p:{target}}}:tat"


def pacing_slots(target: str) -> str:
    return f"{PREFIX}:{{p:{target}}}:slots"
