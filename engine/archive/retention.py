"""Retention by law, as configuration (``[retention]``), applied by ``volna retention`` (nightly)
or by ``volna archive`` every ``archive.retention_every_s``.

* ``personal_data_days`` (152-FZ: no longer than needed): a task's phone and template vars are
  pseudonymized that long after the wave's day. The debtor id stays, and so does the phone's
  keyed hash (``task_personal.phone_hash``): the stop-list and the caps still recognise the
  debtor and the number.
* ``interaction_log_days`` (230-FZ, Minjust order No. 134: 3 years): the message texts and call
  recording references of the interaction log (and the texts of debtors' replies, in
  ``inbound``) are deleted that long after the contact's day;
  the contact rows (who, when, which channel, which cap) stay.

Each run changes only rows not yet changed: running it twice does nothing the second time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg

from engine.config.settings import RetentionSettings


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Rows of days before these dates are due."""

    personal_data: date
    interaction_log: date


def cutoffs(now_ms: int, settings: RetentionSettings) -> Cutoffs:
    today = datetime.fromtimestamp(now_ms / 1000, UTC).date()
    return Cutoffs(today - timedelta(days=settings.personal_data_days),
                   today - timedelta(days=settings.interaction_log_days))


@dataclass(frozen=True, slots=True)
class RetentionRun:
    cutoffs: Cutoffs
    pseudonymized: int
    texts_deleted: int


async def apply_retention(conn: psycopg.AsyncConnection, settings: RetentionSettings, now_ms: int) -> RetentionRun:
    due = cutoffs(now_ms, settings)
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE task_personal SET phone = NULL, vars = NULL, pseudonymized_at = now() "
            "WHERE day < %s AND pseudonymized_at IS NULL", (due.personal_data,))
        pseudonymized = cur.rowcount
        cur = await conn.execute(
            "UPDATE contacts SET text = NULL, recording_ref = NULL, content_deleted_at = now() "
            "WHERE local_day < %s AND content_deleted_at IS NULL", (due.interaction_log,))
        deleted = cur.rowcount
        # The debtors' replies are part of the interaction log too (docs/inbound.md).
        cur = await conn.execute(
            "UPDATE inbound SET data = data - 'text' || jsonb_build_object('text_deleted', true) "
            "WHERE day < %s AND data ? 'text'", (due.interaction_log,))
        deleted += cur.rowcount
        if pseudonymized or deleted:
            await audit(conn, "retention", "retention.apply", "", {
                "personal_data_before": due.personal_data.isoformat(), "pseudonymized_tasks": pseudonymized,
                "interaction_log_before": due.interaction_log.isoformat(), "texts_deleted": deleted}, now_ms)
    return RetentionRun(due, pseudonymized, deleted)


async def audit(conn: psycopg.AsyncConnection, source: str, what: str, target: str, detail: dict[str, object],
                now_ms: int, who: str = "volna") -> None:
    """An audit row of the archive's own acts (erasures, retention runs)."""
    await conn.execute(
        "INSERT INTO audit (source, stream_ms, stream_seq, who, role, what, target, at, detail) "
        "VALUES (%s, %s, nextval('audit_local_seq'), %s, '', %s, %s, %s, %s)",
        (source, now_ms, who, what, target, datetime.fromtimestamp(now_ms / 1000, UTC),
         json.dumps(detail, ensure_ascii=False)))
