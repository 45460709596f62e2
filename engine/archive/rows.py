"""What one results-stream record becomes in the archive's tables (pure; the archiver writes).

Where a record goes (:func:`destination`):

* ``result``, ``dispatched``, ``late`` records that carry a task, an attempt and a channel →
  ``results``; those that make a contact also → ``contacts`` (:func:`contact_of`);
* ``inbound`` (and any later ``inbound_*`` kind) with a debtor → ``inbound``;
* anything else — a kind a later version added, a record that does not parse — →
  ``other_records``, whole, so nothing the engine wrote is lost.

A contact is an attempt that reached the debtor (answered by a person, delivered, read) or
that counts towards a cap: its outcome is in the scenario's ``caps_count`` for the attempt's own
channel (a ``late`` record carries its own). Its cap class is the scenario's for the channel,
and ``conversation`` when the debtor was put through to an operator. One attempt is one contact
however many records say so (a ``read`` after ``delivered``): the table's key is the attempt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import orjson

from engine.domain.models import Task
from engine.domain.outcomes import Channel, Outcome
from engine.domain.scenarios import DEFAULT_COUNTED, Scenario
from engine.gates.caps import periods
from engine.gates.decide import Rendered, render_text
from engine.store.schema import RecordKind

#: Outcomes that mean the debtor was reached (a person answered, a message arrived).
REACHED = frozenset({Outcome.ANSWERED, Outcome.DELIVERED, Outcome.READ})
_ATTEMPT_KINDS = frozenset({RecordKind.RESULT.value, RecordKind.DISPATCHED.value, RecordKind.LATE.value})
_CHANNELS = frozenset(c.value for c in Channel)

RESULT_COLUMNS = ("wave_id", "stream_ms", "stream_seq", "kind", "day", "campaign_id", "task_id", "attempt",
                  "debtor_id", "channel", "outcome", "final", "provider_code", "provider_text", "claimed_at",
                  "sent_at", "accepted_at", "finished_at", "parts", "actions", "data")
CONTACT_COLUMNS = ("wave_id", "task_id", "attempt", "stream_ms", "stream_seq", "campaign_id", "debtor_id",
                   "channel", "cap_class", "outcome", "at", "local_day", "local_week", "local_month", "scenario",
                   "text", "recording_ref")
INBOUND_COLUMNS = ("wave_id", "stream_ms", "stream_seq", "kind", "day", "campaign_id", "debtor_id", "channel",
                   "at", "data")
OTHER_COLUMNS = ("wave_id", "stream_ms", "stream_seq", "kind", "record")


class Destination(StrEnum):
    RESULTS = "results"
    INBOUND = "inbound"
    OTHER = "other_records"


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: its wave, its id (``ms-seq``) and its record (None: not JSON)."""

    wave_id: str
    stream_id: str
    record: dict[str, Any] | None
    raw: str

    @property
    def ms_seq(self) -> tuple[int, int]:
        ms, _, seq = self.stream_id.partition("-")
        return int(ms), int(seq or 0)


def parse_entry(wave_id: str, stream_id: str, fields: dict[str, str] | None, record_field: str) -> Entry:
    raw = (fields or {}).get(record_field, "")
    try:
        record = orjson.loads(raw)
    except (TypeError, ValueError):
        record = None
    return Entry(wave_id, stream_id, record if isinstance(record, dict) else None,
                 raw if record is None else "")


def destination(entry: Entry) -> Destination:
    r = entry.record
    if r is None:
        return Destination.OTHER
    kind = r.get("kind")
    if (kind in _ATTEMPT_KINDS and isinstance(r.get("task_id"), str) and isinstance(r.get("attempt"), int)
            and r.get("channel") in _CHANNELS and isinstance(r.get("debtor_id"), str)
            and (r.get("outcome") is None or isinstance(r.get("outcome"), str))):
        return Destination.RESULTS
    if isinstance(kind, str) and kind.startswith("inbound") and isinstance(r.get("debtor_id"), str) \
            and r.get("debtor_id"):
        return Destination.INBOUND
    return Destination.OTHER


def ts(ms: Any) -> datetime | None:
    """Epoch ms (engine clock) → aware datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC) if isinstance(ms, int | float) else None


def _json(value: Any) -> str:
    """JSON text for a jsonb column (orjson: the archiver's hot path dumps one per record)."""
    return orjson.dumps(value).decode()


def _data(record: dict[str, Any]) -> dict[str, Any]:
    data = record.get("data")
    return data if isinstance(data, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def result_row(entry: Entry, day: date, campaign_id: str) -> tuple[Any, ...]:
    r = entry.record or {}
    ms, seq = entry.ms_seq
    data = _data(r)
    parts = data.get("parts")
    actions = data.get("actions")
    return (entry.wave_id, ms, seq, r["kind"], day, str(r.get("campaign_id") or campaign_id), r["task_id"],
            r["attempt"], r["debtor_id"], r["channel"], r.get("outcome"), bool(r.get("final")),
            _text(r.get("provider_code")), _text(r.get("provider_text")), ts(r.get("claimed_at")),
            ts(r.get("sent_at")), ts(r.get("accepted_at")), ts(r.get("finished_at")),
            parts if isinstance(parts, int) and 0 <= parts < 32768 else None,
            [str(a) for a in actions] if isinstance(actions, list) else None,
            _json(data) if data else None)


def inbound_row(entry: Entry, day: date, campaign_id: str) -> tuple[Any, ...]:
    r = entry.record or {}
    ms, seq = entry.ms_seq
    data = _data(r)
    return (entry.wave_id, ms, seq, str(r["kind"]), day, str(r.get("campaign_id") or campaign_id), r["debtor_id"],
            str(r.get("channel") or ""), ts(r.get("finished_at")), _json(data))


def other_row(entry: Entry) -> tuple[Any, ...]:
    ms, seq = entry.ms_seq
    record = entry.record if entry.record is not None else {"unparsed": entry.raw}
    kind = record.get("kind")
    return (entry.wave_id, ms, seq, kind if isinstance(kind, str) else None, _json(record))


def counts(scenario: Scenario | None, channel: Channel, outcome: Outcome) -> bool:
    if scenario is not None:
        return scenario.counts(channel, outcome)
    return outcome in DEFAULT_COUNTED[channel]


def contact_of(entry: Entry, day: date, campaign_id: str, scenario: Scenario | None, task: Task | None
               ) -> tuple[Any, ...] | None:
    """The ``contacts`` row this record makes, or None (see the module's docstring)."""
    r = entry.record or {}
    if r.get("kind") not in (RecordKind.RESULT.value, RecordKind.LATE.value):
        return None
    try:
        outcome = Outcome(str(r.get("outcome")))
        channel = Channel(r["channel"])
    except (ValueError, KeyError):
        return None
    if outcome not in REACHED and not counts(scenario, channel, outcome):
        return None
    data = _data(r)
    actions = data.get("actions")
    if isinstance(actions, list) and "operator" in actions:
        cap_class = "conversation"
    else:
        cap_class = scenario.cap_class(channel) if scenario is not None else "message"
    _, week_label, month_label = periods(day)
    ms, seq = entry.ms_seq
    recording = data.get("recording")
    return (entry.wave_id, r["task_id"], r["attempt"], ms, seq, str(r.get("campaign_id") or campaign_id),
            r["debtor_id"], channel.value, cap_class, outcome.value, ts(r.get("finished_at")), day,
            week_label[1:], month_label[1:], task.scenario if task is not None else "",
            message_text(task, scenario, channel), str(recording) if recording else None)


def message_text(task: Task | None, scenario: Scenario | None, channel: Channel) -> str | None:
    """The text a message carried, rendered again from the scenario and the task's vars (the
    engine renders it the same way before the send); a WhatsApp template by name and parameters."""
    if task is None or scenario is None:
        return None
    if channel is Channel.WHATSAPP:
        tpl = scenario.messages.whatsapp
        if tpl is None:
            return None
        return f"{tpl.name}: " + " | ".join(str(task.vars.get(p, "")) for p in tpl.body_params)
    rendered = render_text(task, scenario, channel)
    return rendered.text if isinstance(rendered, Rendered) else None


# ---- the side streams: stop-list changes and the API audit ------------------------------------


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _ms_seq(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def stop_change_row(stream_id: str, f: dict[str, str]) -> tuple[Any, ...]:
    """A stop-list change stream entry → a ``stoplist_changes`` row (the phone only hashed or masked)."""
    ms, seq = _ms_seq(stream_id)
    digest = f.get("hash") or ""
    try:
        hashed = bytes.fromhex(digest) if digest else None
    except ValueError:
        hashed = None
    return (ms, seq, f.get("op", ""), f.get("kind", ""), f.get("debtor") or None, hashed, f.get("masked") or None,
            f.get("reason") or None, ts(int_or_none(f.get("at"))), f.get("by") or None)


def audit_row(stream_id: str, f: dict[str, str]) -> tuple[Any, ...]:
    """An API audit stream entry → an ``audit`` row."""
    ms, seq = _ms_seq(stream_id)
    try:
        detail = json.loads(f.get("detail") or "{}")
    except ValueError:
        detail = {"unparsed": f.get("detail")}
    at: datetime | None
    try:
        at = datetime.fromisoformat(f["when"])
    except (KeyError, ValueError):
        at = ts(ms)
    return ("api", ms, seq, f.get("who"), f.get("role"), f.get("what", ""), f.get("target"),
            int_or_none(f.get("status")), f.get("from"), at, json.dumps(detail, ensure_ascii=False))
