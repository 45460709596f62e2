"""The Redis storage schema: every stored format that Python and Lua both read or write.

One source of truth. The Lua scripts do not spell a field name, a phase code, a counter name
or a TTL: :func:`lua_constants` generates them from this module into the header of every
script (:mod:`engine.store.scripts`), and Python reads and writes the same formats through the
classes here. A change of format is a change of this file.

=====================  ========================================================================
task state             one JSON object per task in the wave's ``state`` hash (:class:`TaskState`)
wave counters          the wave's ``counts`` hash (:class:`Counter`, :class:`WaveCounts`)
wave meta              the wave's ``meta`` hash (:class:`Meta`)
correlation value      the value of a correlation key (:class:`CorrelationValue`)
control message        what a wave state change publishes (:class:`ControlMessage`)
reservations           a debtor's ``capres`` hash: attempt → counters held (:class:`Reservation`)
cap TTLs               how long cap counters and reservations live (:data:`CAP_TTL_S`)
result records         the results stream's entries (field ``r``, shaped as
                       :class:`engine.domain.models.Result`; :class:`RecordKind`)
=====================  ========================================================================
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.domain.attempt import AttemptPhase, Verdict
from engine.domain.models import Result
from engine.domain.outcomes import Channel, Outcome
from engine.domain.wave import WaveState
from engine.store.keys import CHANNEL_ORDER, SCRIPT_KEY_NAMES

# ---- task state --------------------------------------------------------------------------------

#: The phases Redis stores, and their one-letter codes (RESERVED and PACED live in the process
#: that holds the lease; Redis says CLAIMED meanwhile).
PHASE_CODES: dict[AttemptPhase, str] = {
    AttemptPhase.QUEUED: "q",
    AttemptPhase.CLAIMED: "c",
    AttemptPhase.SENDING: "s",
    AttemptPhase.ACCEPTED: "a",
    AttemptPhase.ENDED: "f",
}
_PHASE_OF_CODE = {code: phase for phase, code in PHASE_CODES.items()}

#: Field of :class:`TaskState` → its short name in the stored JSON (a state per task: short names
#: keep a million-task wave small).
STATE_FIELDS: dict[str, str] = {
    "phase": "s",
    "attempt": "a",
    "channel": "c",
    "priority": "p",
    "debtor": "d",
    # while leased
    "owner": "o",
    "generation": "g",
    "target": "tg",
    "holds_slot": "hs",
    "correlation": "cid",
    "claimed_at": "ca",
    "sent_at": "sa",
    "accepted_at": "aa",
    # once ended
    "outcome": "out",
    # while a retry or cascade waits: the attempt just ended and its outcome, to tell a
    # duplicate of that outcome from news
    "prev_attempt": "pa",
    "prev_outcome": "po",
}


@dataclass(frozen=True, slots=True)
class TaskState:
    """A task's state as stored (read in Python by recovery, status and the tests)."""

    phase: AttemptPhase
    attempt: int
    channel: Channel
    debtor: str = ""
    priority: int = 0
    owner: str = ""
    #: How many times this task was claimed: a reservation belongs to one claim of an attempt.
    generation: int = 0
    target: str = ""
    holds_slot: bool = False
    correlation: str = ""
    claimed_at: int | None = None
    sent_at: int | None = None
    accepted_at: int | None = None
    outcome: str = ""
    prev_attempt: int | None = None
    prev_outcome: str = ""

    @classmethod
    def decode(cls, raw: str) -> TaskState:
        data = json.loads(raw)
        f = STATE_FIELDS
        return cls(
            phase=_PHASE_OF_CODE[data[f["phase"]]], attempt=int(data[f["attempt"]]),
            channel=Channel(data[f["channel"]]),
            debtor=str(data.get(f["debtor"]) or ""), priority=int(data.get(f["priority"]) or 0),
            owner=str(data.get(f["owner"]) or ""), generation=int(data.get(f["generation"]) or 0),
            target=str(data.get(f["target"]) or ""), holds_slot=bool(data.get(f["holds_slot"])),
            correlation=str(data.get(f["correlation"]) or ""), claimed_at=data.get(f["claimed_at"]),
            sent_at=data.get(f["sent_at"]), accepted_at=data.get(f["accepted_at"]),
            outcome=str(data.get(f["outcome"]) or ""), prev_attempt=data.get(f["prev_attempt"]),
            prev_outcome=str(data.get(f["prev_outcome"]) or ""),
        )

    @property
    def ended(self) -> bool:
        return self.phase is AttemptPhase.ENDED

    @property
    def leased(self) -> bool:
        return self.phase in (AttemptPhase.CLAIMED, AttemptPhase.SENDING, AttemptPhase.ACCEPTED)


class Guard(StrEnum):
    """Who may end or requeue an attempt: the condition a script checks before it does."""

    #: The caller holds the lease (its owner's send, or a late event for a leased attempt).
    LEASED = ""
    #: The lease has expired (recovery in any process).
    EXPIRED = "expired"
    #: The attempt waits in a queue (stop, sweeps).
    QUEUED = "queued"
    #: Queued, or claimed but not yet sent (a stop reaching a claimed batch).
    OPEN = "open"
    #: The caller's own claim (its generation): a gate ended it, or it goes back to the queue.
    #: A claim that is over (recovered, claimed again) is left alone, and nothing is recorded.
    CLAIM = "claim"


class PartsPolicy(StrEnum):
    """When a message sent in several parts is done: all parts reported, or the first."""

    ALL = "all"
    FIRST = "first"


class SettleMode(StrEnum):
    """How the wave scripts settle reservations (``ARGV[3]``, engine.store.lua.wave)."""

    #: A single Redis: in the same script, atomically with the transition.
    INLINE = "inline"
    #: A Redis Cluster: written to the wave's outbox and applied in the debtor's slot after.
    OUTBOX = "outbox"


#: The field of a wave's outbox hash that numbers its entries (never a reservation field: those
#: start with the wave id).
OUTBOX_SEQ = "#seq"


# ---- wave counters -----------------------------------------------------------------------------


class Counter(StrEnum):
    """Fields of a wave's ``counts`` hash. ``{channel}`` and the like are filled by the helpers
    below (Python) and by the generated ``CNT_…`` functions (Lua)."""

    TOTAL = "total"
    QUEUED = "queued"
    LEASED = "leased"
    FINAL = "final"
    #: Attempts that reached the wire (begin-send), less those the connector answered Retry.
    SENT = "sent"
    LATE = "late"
    DUPLICATE = "duplicate"
    INBOUND = "inbound"
    CHANNEL_TOTAL = "c:{channel}:total"
    CHANNEL_SENT = "c:{channel}:sent"
    CHANNEL_ACCEPTED = "c:{channel}:accepted"
    CHANNEL_OUTCOME = "c:{channel}:o:{outcome}"
    OUTCOME = "o:{outcome}"
    ZONE = "z:{zone}"
    #: Finals per engine minute (the rate and ETA of a wave).
    MINUTE = "m:{minute}"

    def of(self, **parts: object) -> str:
        return self.value.format(**parts)


@dataclass(frozen=True, slots=True)
class WaveCounts:
    """A wave's ``counts`` hash, parsed."""

    raw: dict[str, int]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> WaveCounts:
        return cls({k: int(v) for k, v in raw.items()})

    def get(self, counter: Counter, **parts: object) -> int:
        return self.raw.get(counter.of(**parts), 0)

    def outcomes(self) -> dict[str, int]:
        return self._under("o:")

    def zones(self) -> dict[str, int]:
        return self._under("z:")

    def channel_outcomes(self, channel: Channel | str) -> dict[str, int]:
        return self._under(f"c:{channel}:o:")

    def per_minute(self, now_ms: int) -> float:
        """Finals over the last minute: this minute so far plus the previous one, weighted."""
        minute, frac = now_ms // 60000, (now_ms % 60000) / 60000
        return self.get(Counter.MINUTE, minute=minute) + self.get(Counter.MINUTE, minute=minute - 1) * (1 - frac)

    def _under(self, prefix: str) -> dict[str, int]:
        return {k[len(prefix):]: v for k, v in self.raw.items() if k.startswith(prefix)}


# ---- wave meta and control ---------------------------------------------------------------------


class Meta(StrEnum):
    """Fields of a wave's ``meta`` hash (besides ``<state>_at`` and ``<state>_by``)."""

    WAVE_ID = "wave_id"
    CAMPAIGN_ID = "campaign_id"
    DAY = "day"
    STATE = "state"
    CREATED_AT = "created_at"
    CREATED_BY = "created_by"
    #: Who asked for the state change being applied (written into ``<state>_by`` by the script).
    PENDING_BY = "pending_by"


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """Published on the control channel when a wave changes state: ``<wave> <state>``."""

    wave_id: str
    state: WaveState

    def encode(self) -> str:
        return f"{self.wave_id} {self.state.value}"

    @classmethod
    def decode(cls, raw: str) -> ControlMessage | None:
        wave_id, _, state = raw.partition(" ")
        try:
            return cls(wave_id, WaveState(state))
        except ValueError:
            return None


# ---- correlation -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CorrelationValue:
    """What a peer's id (message id, call id) leads to: the attempt, and what its acceptance
    said (parts of a long SMS, the trunk of a call), so a receipt that beats the acceptance's
    own bookkeeping still carries it."""

    wave_id: str
    task_id: str
    attempt: int
    channel: Channel
    #: The claim of the attempt that sent it (its reservation's key).
    generation: int
    parts: int = 1
    parts_policy: str = "all"
    data: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        return "|".join([self.wave_id, self.task_id, str(self.attempt), self.channel.value, str(self.generation),
                         str(self.parts), self.parts_policy, json.dumps(self.data, separators=(",", ":"))])

    @classmethod
    def decode(cls, raw: str) -> CorrelationValue:
        wave_id, task_id, attempt, channel, generation, parts, policy, data = raw.split("|", 7)
        return cls(wave_id, task_id, int(attempt), Channel(channel), int(generation), int(parts), policy,
                   json.loads(data or "{}"))


# ---- the phone directory -----------------------------------------------------------------------

#: A phone's directory hash (keys.directory; engine.store.directory reads it): its debtor, its
#: load and its last contact. The load and the last contact are packed into one field each (ids
#: never hold a space: engine.domain.models): the last contact is written for every attempt that
#: reached the wire, and seven fields cost Redis 13 000 more instructions per task of the core's
#: dispatch (492 000 → 479 000, load/core_instructions.py --redis) and 29 more bytes per queued
#: task (992 → 963, bench_core).
DIRECTORY_FIELDS = {"debtor": "debtor", "load": "load", "last": "last"}
DIRECTORY_LOAD = "{wave} {campaign} {at}"
DIRECTORY_LAST = "{wave} {campaign} {at} {channel}"


# ---- the stop-list -----------------------------------------------------------------------------


class ErasedPhone(StrEnum):
    """What stops an erased debtor's phone, kept by its keyed hash alone (keys.PHONE_HASHES, JSON
    field ``ERASED_PHONE_KIND``): the stop-list, or a deactivation."""

    STOP = "stop"
    INVALID = "invalid"


ERASED_PHONE_KIND = "kind"
#: A deactivation's field (keys.INVALID_PHONES, JSON) that says until when it stops the phone
#: (epoch ms; null: until it is reactivated).
DEACTIVATION_UNTIL = "until"


# ---- contact caps ------------------------------------------------------------------------------

DAY_S = 86400
#: How long a cap counter outlives its period (a day counter is read on its day only; a margin
#: covers the zones' calendars), and how long a debtor's reservations are remembered.
CAP_TTL_S = {"day": 3 * DAY_S, "week": 10 * DAY_S, "month": 35 * DAY_S}
RESERVATIONS_TTL_S = 40 * DAY_S

#: finalize's flag for an attempt not applied whose late hold it leaves to the caller: on a single
#: Redis a settlement that keeps every reservation as it is is not sent (engine.store.wavestore).
LATE_HOLD_ASKED = 2

#: Reservation fields in a debtor's ``capres`` hash (the value is JSON).
RESERVATION_FIELDS = {"counters": "k", "held": "h", "seq": "q"}


# Not frozen: one is made for every attempt, and a frozen dataclass's __init__ sets each field
# through object.__setattr__ (2.7 times the cost; load/bench_core.py). Nothing changes one.
@dataclass(slots=True)
class Reservation:
    """One reservation of a debtor's contact caps, as a script settles it.

    ``field`` names the attempt's claim (``wave:task:attempt:generation``, plus ``:conv`` for
    the conversation hold of an IVR call), so a re-claim of the same attempt never mixes with
    the claim before it. ``counters`` are the day, week and month counter keys it takes.
    """

    key: str
    field: str
    counters: tuple[str, str, str]

    def wire(self, verdict: Verdict) -> list[Any]:
        """The settlement of this reservation as the scripts take it."""
        return [self.key, self.field, self.counters, verdict]


# ---- result records ------------------------------------------------------------------------------


class RecordKind(StrEnum):
    RESULT = "result"
    DISPATCHED = "dispatched"
    LATE = "late"
    INBOUND = "inbound"


#: The field of a results-stream entry that holds the record's JSON.
RECORD_FIELD = "r"


# ---- Lua ---------------------------------------------------------------------------------------


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _lua_value(value: Any) -> str:
    return str(value) if isinstance(value, int) else _lua_string(str(value))


def _lua_template(name: str, template: str) -> str:
    """``c:{channel}:total`` → ``local function CNT_CHANNEL_TOTAL(channel) return 'c:' .. channel .. ':total' end``
    (a nil part is an error, not the text "nil")."""
    parts, params, rest = [], [], template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        param, _, rest = tail.partition("}")
        if head:
            parts.append(_lua_string(head))
        parts.append(param)
        params.append(param)
    if rest:
        parts.append(_lua_string(rest))
    return f"local function {name}({', '.join(params)}) return {' .. '.join(parts)} end"


def _lua_tables() -> dict[str, dict[str, Any]]:
    """The constant tables the scripts name (``SF.phase``), by their Lua names."""
    return {
        "K": {name: i for i, name in enumerate(SCRIPT_KEY_NAMES, start=1)},
        "PH": {p.value: c for p, c in PHASE_CODES.items()},
        "GUARD": {g.name: g.value for g in Guard},
        "POLICY": {p.name: p.value for p in PartsPolicy},
        "SETTLE": {m.name: m.value for m in SettleMode},
        # The task state by its stored names, ``st[SF.phase]``: renaming every field to these
        # names and back cost each script 0.9 µs per task (two tables made).
        "SF": STATE_FIELDS,
        "CNT": {c.name: c.value for c in Counter if "{" not in c.value},
        "META": {m.name: m.value for m in Meta},
        "WS": {s.name: s.value for s in WaveState},
        "KIND": {k.name: k.value for k in RecordKind},
        "RES": RESERVATION_FIELDS,
        "VERDICT": {v.name: v.value for v in Verdict},
        "DIR": DIRECTORY_FIELDS,
        "ERASED": {k.name: k.value for k in ErasedPhone},
        "RF": {name: name for name in Result.model_fields},
    }


_MEMBER = re.compile(r"\b([A-Z][A-Z_]*)\.([A-Za-z_]\w*)")


def fold_constants(lua: str) -> str:
    """Every ``SF.phase``, ``PH.claimed``, ``K.state``… of a script replaced by its value, as if
    written by hand: the scripts name the schema's constants, and pay nothing for it at run time
    (looked up in the tables on every access, they cost Redis 3 % of its instructions per task
    of the core: 476 400 → 462 200, load/core_instructions.py --redis). So the tables are not in
    the scripts at all, and a name they lack is an error here, when the script is made."""
    tables = _lua_tables()

    def value(m: re.Match[str]) -> str:
        table = tables.get(m.group(1))
        if table is None:
            return m.group(0)
        if m.group(2) not in table:
            raise ValueError(f"Lua script names {m.group(0)}: engine.store.schema has no such constant")
        return _lua_value(table[m.group(2)])

    return _MEMBER.sub(value, lua)


def lua_constants() -> str:
    """The generated header of every script: the names above as Lua locals."""
    lines = ["-- Generated from engine/store/schema.py: edit that file, not this header. The constant",
             "-- tables (K, SF, PH, ...) are folded into the scripts (fold_constants)."]
    lines.append("local CHANNELS = {" + ", ".join(_lua_string(c.value) for c in CHANNEL_ORDER) + "}")
    lines.append(f"local OUTBOX_SEQ = {_lua_string(OUTBOX_SEQ)}")
    lines.append(f"local DELIVERED = {_lua_string(Outcome.DELIVERED.value)}")
    lines += [_lua_template(f"CNT_{c.name}", c.value) for c in Counter if "{" in c.value]
    lines.append(f"local RECORD_FIELD = {_lua_string(RECORD_FIELD)}")
    lines.append(f"local CAP_TTL = {{{CAP_TTL_S['day']}, {CAP_TTL_S['week']}, {CAP_TTL_S['month']}}}")
    lines.append(f"local RES_TTL = {RESERVATIONS_TTL_S}")
    lines.append(f"local LATE_HOLD_ASKED = {LATE_HOLD_ASKED}")
    lines.append(f"local ERASED_PHONE_KIND = {_lua_string(ERASED_PHONE_KIND)}")
    lines.append(f"local DEACTIVATION_UNTIL = {_lua_string(DEACTIVATION_UNTIL)}")
    lines.append(_lua_template("DIRECTORY_LAST", DIRECTORY_LAST))
    return "\n".join(lines) + "\n"
