"""The AMI simulator's knobs and counters (``sim.knobs``, ``sim.stats``, ``GET /stats``)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

#: Outcomes a simulated call can take (``Knobs.by_number`` values).
OUTCOMES = ("answered", "machine", "busy", "no_answer", "congestion", "invalid", "unallocated", "rejected", "failed")

#: UserEvent names the dialplan compiler emits (connectors/ami/variables.py) — duplicated on purpose.
EV_STEP, EV_KEY, EV_ACTION, EV_AMD, EV_QUEUE, EV_END = (
    "VolnaStep", "VolnaKey", "VolnaAction", "VolnaAmd", "VolnaQueue", "VolnaEnd",
)
EV_IDENTITY, EV_OFFER, EV_PROMISE, EV_PROMPT, EV_RECORDING = (
    "VolnaIdentity", "VolnaOffer", "VolnaPromise", "VolnaPrompt", "VolnaRecording",
)
#: Identity answers (``Knobs.identity_by_number`` values).
IDENTITY = ("confirmed", "wrong", "none")


@dataclass
class Knobs:
    """Read per call / per action: a test may change them while the simulator runs."""

    seed: int = 1
    username: str = "volna"
    secret: str = "sim-secret"
    banner: str = "Asterisk Call Manager/11.0.0"
    # ---- outcome mix (shares of all calls; the rest are answered by a person) ----
    busy_share: float = 0.0
    no_answer_share: float = 0.0
    congestion_share: float = 0.0
    #: A SIP trunk's 404: congestion with cause 1 (Reason 8).
    invalid_share: float = 0.0
    #: A number that does not exist, as the volna capture shows it (``Hangup(1)`` before answer:
    #: Reason 0, both legs cause 1) — a share of all calls, and numbers that always are.
    unallocated_share: float = 0.0
    unallocated_numbers: str = ""
    rejected_share: float = 0.0
    failed_share: float = 0.0
    machine_share: float = 0.0
    #: Dialled digits → outcome (one of :data:`OUTCOMES`), overriding the mix.
    by_number: dict[str, str] = field(default_factory=dict)
    # ---- timing ----
    ring_min_s: float = 0.05
    ring_max_s: float = 0.2
    talk_min_s: float = 0.1
    talk_max_s: float = 0.4
    #: Ringing before ``no_answer``; 0 = the Originate's ``Timeout``.
    no_answer_s: float = 0.0
    #: Delay of the "Originate successfully queued" response.
    queue_latency_s: float = 0.0
    # ---- the IVR as the debtor hears it ----
    #: Key → share of answered calls pressing it (the rest press nothing), e.g. ``"1:0.1,2:0.2,9:0.05"``.
    key_mix: str = "1:0.1,2:0.2,9:0.05"
    #: Dialled digits → keys pressed, overriding the mix.
    keys_by_number: dict[str, str] = field(default_factory=dict)
    key_actions: str = "1:operator,2:sms_payment_details,3:promise_to_pay,9:opt_out"
    #: The steps an answered call goes through (the last one is the menu the keys are pressed
    #: in), per Originate ``Context`` (``steps_by_context``), else ``steps``.
    steps: str = "greeting,identity,creditor,amount,due,main"
    steps_by_context: dict[str, str] = field(default_factory=dict)
    #: Steps that ask "if you are the account holder, press 1": the answerer confirms (``1``)
    #: unless ``identity_by_number`` says ``wrong`` (presses 2) or ``none`` (presses nothing), or
    #: the ``wrong_party_share`` draw says wrong; the call then ends there.
    identity_steps: str = "identity"
    identity_by_number: dict[str, str] = field(default_factory=dict)
    wrong_party_share: float = 0.0
    #: Prompt files missing from the sound set: file → the step that plays it. The call reports
    #: ``VolnaPrompt`` (``Status: FAILED``) there, as the compiled dialplan does after Playback.
    missing_prompts: dict[str, str] = field(default_factory=dict)
    #: Steps whose prompts say the debt (the dialplan's ``Disclosure: 1``).
    disclosure_steps: str = "creditor,notice,amount,account,due"
    #: The digits a debtor keys in after choosing "promise to pay": ``DDMM`` or ``DDMM:amount``,
    #: per number, else ``promise_digits`` (empty: the scenario captures nothing, no VolnaPromise).
    promise_by_number: dict[str, str] = field(default_factory=dict)
    promise_digits: str = ""
    #: Where MixMonitor writes (Asterisk's monitor directory): ``VolnaRecording`` reports the
    #: Originate's ``VOLNA_REC`` under it.
    monitor_dir: str = "/var/spool/asterisk/monitor"
    amd: bool = False
    #: People who answer and say nothing: AMD reports ``MACHINE`` / ``INITIALSILENCE-…``, and the
    #: dialplan goes on as for a person unless ``silence_is_machine`` (a scenario's
    #: ``amd.initial_silence: machine``).
    silent_numbers: str = ""
    silence_is_machine: bool = False
    #: For a queue never configured over HTTP (``POST /queues/<name>``): does an agent take the
    #: call (True), or does ``VolnaQueue`` report ``TIMEOUT`` (False)?
    operator_available: bool = True
    #: The operator queue the dialplan's ``Queue()`` step uses, per Originate ``Context`` (the
    #: scenario's ``operator.queue``), else ``operator_queue``.
    operator_queue: str = "debt-operators"
    queue_by_context: dict[str, str] = field(default_factory=dict)
    #: Queues configured at start: name → agents logged in and available (``--agents debt-operators=20``).
    agents: dict[str, str] = field(default_factory=dict)
    # ---- capacity ----
    #: Simultaneous calls; beyond it a call fails with congestion (cause 34). 0 = no limit.
    channel_limit: int = 0
    #: Originates per calendar second; beyond it congestion (cause 42). 0 = no limit.
    cps_limit: float = 0.0
    # ---- load and faults ----
    #: ``VarSet``/``Newexten`` (dialplan class) events per answered call, like a real dialplan.
    event_burst: int = 0
    #: Vary the order of OriginateResponse / Newstate / DialEnd / Hangup (a real Asterisk does).
    shuffle: bool = True
    #: Close every AMI connection once, right after the N-th Originate was queued (0 = never).
    drop_after_originates: int = 0
    #: ``POST /restart``: how long Asterisk takes to shut down (AMI open, every action refused
    #: "Asterisk is shutting down"), and whether the ``Shutdown`` event comes at the end of that
    #: (``end``: where ``really_quit`` publishes it) or at its start (``start``).
    shutdown_s: float = 1.1
    shutdown_event_at: str = "end"
    #: manager.conf ``timestampevents``: a ``Timestamp: <epoch s.µs>`` header on every event.
    timestamp_events: bool = False
    # ---- reach ledger ----
    #: Append every reach event to this file as one JSON line (empty: in memory only).
    reach_log: str = ""
    # ---- inbound calls ----
    inbound_per_s: float = 0.0
    inbound_context: str = "from-debtors"
    inbound_did: str = "84950000000"
    inbound_numbers: str = "89161234567"

    def shares(self) -> list[tuple[str, float]]:
        return [("busy", self.busy_share), ("no_answer", self.no_answer_share),
                ("congestion", self.congestion_share), ("invalid", self.invalid_share),
                ("unallocated", self.unallocated_share),
                ("rejected", self.rejected_share), ("failed", self.failed_share),
                ("machine", self.machine_share)]

    def silent(self) -> frozenset[str]:
        return frozenset(n.strip().lstrip("+") for n in self.silent_numbers.split(",") if n.strip())

    def unallocated(self) -> frozenset[str]:
        return frozenset(n.strip().lstrip("+") for n in self.unallocated_numbers.split(",") if n.strip())

    def queue_for(self, context: str) -> str:
        return self.queue_by_context.get(context, self.operator_queue)

    def steps_for(self, context: str) -> list[str]:
        return [s for s in self.steps_by_context.get(context, self.steps).split(",") if s]

    def promise_for(self, digits: str) -> str:
        return self.promise_by_number.get(digits, self.promise_digits)

    def keys(self) -> list[tuple[str, float]]:
        return _pairs(self.key_mix, float)

    def actions(self) -> dict[str, str]:
        return dict(_pairs(self.key_actions, str))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _pairs(text: str, cast: Any) -> list[tuple[str, Any]]:
    out = []
    for item in text.split(","):
        key, sep, value = item.strip().partition(":")
        if sep:
            out.append((key.strip(), cast(value.strip())))
    return out


@dataclass
class SimStats:
    originates: int = 0
    #: Dialled digits → Originates (a number dialled twice for one attempt shows here).
    per_number: Counter[str] = field(default_factory=Counter)
    #: ChannelId → Originates.
    per_channel_id: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    concurrent: int = 0
    concurrent_high: int = 0
    max_originates_per_s: int = 0
    channel_limit_hits: int = 0
    cps_limit_hits: int = 0
    events_sent: int = 0
    connections: int = 0
    logins: int = 0
    login_failures: int = 0
    drops: int = 0
    hangup_actions: int = 0
    inbound_calls: int = 0
    malformed_lines: int = 0
    #: ``POST /restart`` s, and actions answered "Asterisk is shutting down" meanwhile.
    restarts: int = 0
    refused_shutting_down: int = 0
    #: Originates refused "Asterisk is shutting down", by ChannelId.
    refused_originates: Counter[str] = field(default_factory=Counter)
    #: ``time.monotonic()`` when the last restart was over (listening again); 0 before any.
    booted_at: float = 0.0
    #: ChannelId → ``time.monotonic()`` of its last Originate.
    originated_at: dict[str, float] = field(default_factory=dict)
    #: Calls cut by a shutdown.
    cut_by_shutdown: int = 0
    #: Calls an operator took, and ones the queue refused (``JOINEMPTY`` / ``TIMEOUT``).
    operator_calls: int = 0
    #: Calls whose menu offered the operator (``VolnaOffer``), and prompts reported missing.
    operator_offers: int = 0
    prompt_failures: int = 0
    queue_summaries: int = 0
    _second: int = -1
    _in_second: int = 0

    def originate(self, now: float, digits: str, channel_id: str) -> int:
        """Counts one Originate; returns how many came in this calendar second so far."""
        self.originates += 1
        self.per_number[digits] += 1
        if channel_id:
            self.per_channel_id[channel_id] += 1
            self.originated_at[channel_id] = now
        second = math.floor(now)
        if second != self._second:
            self._second, self._in_second = second, 0
        self._in_second += 1
        self.max_originates_per_s = max(self.max_originates_per_s, self._in_second)
        return self._in_second

    def call_started(self) -> None:
        self.concurrent += 1
        self.concurrent_high = max(self.concurrent_high, self.concurrent)

    def call_ended(self, outcome: str) -> None:
        self.concurrent -= 1
        self.outcomes[outcome] += 1

    def duplicates(self) -> dict[str, int]:
        return {k: v for k, v in self.per_number.items() if v > 1}

    def to_json(self, *, per_number: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if not k.startswith("_") and k not in
               ("per_number", "per_channel_id", "refused_originates", "originated_at")}
        out["refused_originates"] = sum(self.refused_originates.values())
        out["outcomes"] = dict(self.outcomes)
        out["numbers"] = len(self.per_number)
        out["numbers_dialled_twice"] = len(self.duplicates())
        out["channel_ids_twice"] = sum(1 for v in self.per_channel_id.values() if v > 1)
        if per_number:
            out["per_number"] = dict(self.per_number)
        return out
