"""The control API's wire vocabulary: every JSON body it takes and every JSON answer it gives, as pydantic models.

One source of truth for three things: requests are validated with the ``…In`` models
(:func:`engine.api.http.read_json`), answers are built through the others (a handler returns
one, :func:`engine.api.http.answers` writes it; every refusal is an :class:`Error`), and the
OpenAPI document's schemas are these models' ``model_json_schema()`` (:mod:`engine.api.openapi`).
A field added here is validated, answered and documented at once; nothing is written twice.

Answers forbid undeclared fields (building one with a stray key fails loudly, in the tests)
and are documented with every field required, since every field is always written; the
records of a stream (results, audit) allow more, as the streams may grow fields.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.api.auth import NAME_PATTERN, Perm, Role
from engine.domain.models import Result
from engine.domain.wave import WaveState
from engine.gates.stoplist import StopReason
from engine.store.schema import RecordKind

#: Ids the API creates (waves, campaigns): no braces (Redis Cluster hash tags), no spaces.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
#: A results stream id (``ms`` or ``ms-seq``).
STREAM_ID_PATTERN = r"^[0-9]{1,20}(-[0-9]{1,20})?$"


class Body(BaseModel):
    """A request body: strict about its fields (an unknown one is a 400, not ignored)."""

    model_config = ConfigDict(extra="forbid")


class Answer(BaseModel):
    """An answer: only declared fields, each always written (so documented as required)."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


WaveAction = Literal["start", "pause", "resume", "stop"]
StopKind = Literal["debtor", "phone"]
#: A debtor id, or a phone in any form ``phonenumbers`` reads (stored and looked up as E.164).
StopValue = Annotated[str, Field(min_length=1, max_length=128)]
UploadFormat = Literal["jsonl", "csv"]
Actions = Annotated[list[WaveAction], Field(description="The control actions the wave's state allows")]
History = Annotated[
    dict[str, int | str | None],
    Field(description="`<state>_at` (epoch ms, engine clock) and `<state>_by` (token name): created, running, "
                      "paused, stopped, completed"),
]
Counts = dict[str, int]


# ---- errors and health ---------------------------------------------------------------------------


class Error(BaseModel):
    """Every refusal: one line, never a secret or a phone number; a few answers add fields (an upload's counts)."""

    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True)

    error: str


class Health(Answer):
    status: Literal["ok"] = "ok"


class Ready(Answer):
    ready: bool
    checks: dict[str, bool]


# ---- campaigns and waves -------------------------------------------------------------------------


class CampaignIn(Body):
    campaign_id: str = Field(pattern=ID_PATTERN)
    title: str = Field(default="", max_length=200)


class Campaign(Answer):
    campaign_id: str
    title: str
    created_at: int | None
    created_by: str


class WaveIn(Body):
    wave_id: str = Field(pattern=ID_PATTERN)
    campaign_id: str = Field(pattern=ID_PATTERN)
    day: date = Field(description="The debtors' local calendar day the wave runs on")


class SummaryCounts(Answer):
    total: int
    queued: int
    in_flight: int
    final: int
    sent: int


class WaveSummary(Answer):
    wave_id: str
    campaign_id: str
    day: str
    state: WaveState
    actions: Actions
    counts: SummaryCounts
    history: History


class CampaignDetail(Campaign):
    waves: list[WaveSummary]


class CampaignList(Answer):
    campaigns: list[Campaign]


class WaveList(Answer):
    waves: list[WaveSummary]
    now_ms: int


class ChannelView(Answer):
    total: int
    queued: int
    eligible_now: int
    sent: int
    accepted: int
    outcomes: Counts
    rate_per_min: float = Field(description="Results per minute over the last real minute")


class ZoneView(Answer):
    zone: str = Field(description="An IANA zone, or multi:N for tasks constrained to N zones")
    tasks: int
    open_now: bool | None = None
    opens_at_ms: int | None = None
    closes_at_ms: int | None = None


class ViewCounts(SummaryCounts):
    late_events: int
    inbound_calls: int


class WaveView(Answer):
    wave_id: str
    campaign_id: str
    day: str
    state: WaveState
    now_ms: int
    counts: ViewCounts
    outcomes: Counts
    channels: dict[str, ChannelView]
    rate_per_min: float = Field(description="Final outcomes per minute (engine clock)")
    eta_s: int | None
    zones: list[ZoneView]
    multi_zone_tasks: int
    history: History
    actions: Actions


class ControlResult(Answer):
    wave_id: str
    action: WaveAction
    state: WaveState
    by: str


# ---- uploads -------------------------------------------------------------------------------------


class Rejection(Answer):
    line: int
    reason: str


class UploadReport(Answer):
    wave_id: str
    format: UploadFormat
    lines: int
    bytes: int
    accepted: int
    already_loaded: int
    rejected: int
    rejections: list[Rejection] = Field(description="The first rejected lines (at most 1000 by default)")
    rejections_truncated: bool
    seconds: float


# ---- the stop-list -------------------------------------------------------------------------------


class StopIn(Body):
    kind: StopKind
    value: StopValue
    reason: StopReason


class StopEntry(Answer):
    kind: StopKind
    value: str
    reason: str
    at_ms: int
    by: str


class StopPage(Answer):
    kind: StopKind
    entries: list[StopEntry]
    next: str | None


class StopRemoved(Answer):
    kind: StopKind
    value: str
    removed: bool


# ---- phones --------------------------------------------------------------------------------------


class PhoneDeactivation(Answer):
    """A deactivated number: masked unless the caller's role may change the stop-list."""

    phone: str
    at_ms: int
    until_ms: int | None
    family: str
    strikes: int


class PhoneList(Answer):
    phones: list[PhoneDeactivation]


class PhoneStrike(Answer):
    attempt: str
    at: str | None


class PhoneContact(Answer):
    at: str | None
    channel: str | None
    wave_id: str
    campaign_id: str
    source: str


class PhoneDeactivated(Answer):
    at: str | None
    until: str | None
    family: str
    strikes: int


class PhoneStop(Answer):
    kind: StopKind
    reason: str
    at: str | None
    by: str


class PhoneReport(Answer):
    phone: str
    debtor_id: str | None
    last_contact: PhoneContact | None
    strikes: dict[str, list[PhoneStrike]]
    strikes_to_deactivate: int
    deactivated: PhoneDeactivated | None
    stoplist: list[PhoneStop]


class ReactivateIn(Body):
    reason: Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]


class PhoneReactivated(Answer):
    phone: str
    was_deactivated: bool


# ---- results -------------------------------------------------------------------------------------


class ResultRecord(Result):
    """A record of the wave's results stream (see ``volna results`` in docs/cli.md) and its stream id."""

    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True)

    kind: RecordKind
    stream_id: str


class ResultsPage(Answer):
    wave_id: str
    records: list[ResultRecord]
    next: str | None
    more: bool


# ---- tokens and audit ----------------------------------------------------------------------------


class WhoAmI(Answer):
    name: str
    role: Role
    token_id: str
    permissions: list[Perm]
    now_ms: int


class TokenIn(Body):
    role: Role
    name: str = Field(pattern=NAME_PATTERN)


class TokenCreated(Answer):
    token: str
    token_id: str
    name: str
    role: Role


class TokenInfo(Answer):
    token_id: str
    name: str
    role: Role
    created_ms: int


class TokenList(Answer):
    tokens: list[TokenInfo]


class TokenRevoked(Answer):
    token_id: str
    revoked: bool


class AuditRecord(BaseModel):
    """An entry of the audit stream (:mod:`engine.api.audit`)."""

    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True,
                              populate_by_name=True)

    id: str
    who: str
    role: str = ""
    what: str
    target: str = ""
    status: int
    from_: str = Field(default="", alias="from")
    forwarded: str = ""
    when: str
    detail: dict[str, Any] = Field(default_factory=dict)
    method: str = ""


class AuditPage(Answer):
    records: list[AuditRecord]
    next: str | None


# ---- the console: charts, look-ups, health, stop-list import ------------------------------------


class StopImported(Answer):
    added: int
    rejected: int
    rejections: list[Rejection] = Field(description="Refused lines, each with its line number and reason")


class ZoneWindow(Answer):
    zone: str
    tasks: int
    channel: str = Field(description="The channel whose window this is (calls and messages may differ)")
    open_now: bool
    opens_at_ms: int | None = Field(description="Epoch ms: the window's opening on the day (null: no window)")
    closes_at_ms: int | None


class Charts(Answer):
    """Per-minute series of one wave or of every wave of a day (engine clock, epoch ms per minute)."""

    day: str
    waves: list[str]
    now_ms: int
    minutes_ms: list[int]
    sends: dict[str, list[int]] = Field(description="Channel → attempts sent per minute")
    finals: dict[str, list[int]] = Field(description="Channel → tasks that ended per minute")
    rates: dict[str, list[float | None]] = Field(
        description="Channel → percent answered (calls) or delivered (messages) of the attempts that ended at the "
                    "peer that minute; null when none did")
    rate_kinds: dict[str, Literal["answer", "delivery"]]
    outcomes: dict[str, list[int]] = Field(description="Outcome → attempts that ended with it per minute")
    windows: list[ZoneWindow] = Field(description="The contact windows of the day, zone by zone and channel")
    catching_up: bool = Field(description="The streams were not all read yet (a big day opened late): the next "
                                          "calls read on, each at most about a second's work")


class LookupTask(Answer):
    wave_id: str
    day: str
    task_id: str
    debtor_id: str
    phone: str
    channel: str
    scenario: str
    phase: str
    attempt: int
    outcome: str
    final: bool
    at_ms: int | None


class CapUse(Answer):
    debtor_id: str
    cap_class: Literal["conversation", "message"]
    day: int
    week: int
    month: int
    day_limit: int
    week_limit: int
    month_limit: int


class PhoneStatus(Answer):
    phone: str
    status: Literal["active", "stopped", "invalid"]
    since_ms: int | None


class LookupAnswer(Answer):
    kind: StopKind
    query: str = Field(description="As looked up (a phone masked unless the role sees phones)")
    day: str
    masked: bool = Field(description="Phones are masked for this caller's role")
    debtors: list[str]
    phones: list[str]
    tasks: list[LookupTask]
    caps: list[CapUse]
    phone_status: list[PhoneStatus]
    stoplist: list[StopEntry]


class SessionState(Answer):
    kind: str = Field(description="ami (AMI sessions), smpp (binds), or a messenger gateway's name")
    target: str
    up: int
    configured: int | None
    state: Literal["up", "degraded", "down"]


class Throttled(Answer):
    kind: str
    target: str
    total: int


class TargetState(Answer):
    channel: str
    target: str
    healthy: bool
    in_flight: int


class ProcessHealth(Answer):
    process: str
    at_ms: int
    stale: bool = Field(description="No report for a while: the process may be gone")
    sessions: list[SessionState]
    throttled: list[Throttled]
    targets: list[TargetState]


class QueueDepth(Answer):
    wave_id: str
    state: WaveState
    channels: dict[str, dict[str, int]] = Field(description="Channel → queued, eligible_now")
    in_flight: int


class EngineHealth(Answer):
    now_ms: int
    redis: bool
    processes: list[ProcessHealth]
    queues: list[QueueDepth]
