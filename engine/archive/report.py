"""``volna report``: the seed's table — per channel, over a month or any period — computed in
PostgreSQL with one query (no Python loop over records).

Definitions (docs/archive.md says the same):

* period: the waves' days (the debtors' local calendar days), ``--month`` or ``--from/--to``;
* actions: attempts that reached the wire (``dispatched`` records);
* debtors contacted / reached: distinct debtors with an action / with an attempt answered by a
  person, delivered or read;
* actions per debtor: actions ÷ debtors contacted; per month: that ÷ the period's months
  (its days ÷ 30.44);
* answered rate (IVR): calls answered by a person ÷ actions; delivered rate (messages): attempts
  delivered or read (a late receipt included, an attempt once) ÷ actions;
* answered by a machine, invalid numbers: result records with those outcomes;
* callbacks: inbound calls (and messages) recorded for the channel; opt-outs and promises to
  pay: results whose scenario actions include them; SMS parts billed: ``data.parts`` of results.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from engine.errors import VolnaError
from engine.store.keys import CHANNEL_ORDER

COLUMNS = ("channel", "actions", "debtors_contacted", "debtors_reached", "actions_per_debtor",
           "actions_per_debtor_month", "answered", "answered_rate", "delivered", "delivered_rate",
           "answered_machine", "invalid_numbers", "callbacks", "opt_outs", "promises_to_pay", "sms_parts")
DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date  # inclusive

    @classmethod
    def month(cls, text: str) -> Period:
        m = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise VolnaError(f"--month {text!r}: expected YYYY-MM")
        start = date(int(m.group(1)), int(m.group(2)), 1)
        following = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
        return cls(start, following - timedelta(days=1))

    @classmethod
    def between(cls, start: str, end: str) -> Period:
        try:
            a, b = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError:
            raise VolnaError(f"--from {start!r} --to {end!r}: expected dates YYYY-MM-DD") from None
        if b < a:
            raise VolnaError(f"--to {end} is before --from {start}")
        return cls(a, b)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def months(self) -> float:
        return self.days / DAYS_PER_MONTH

    def __str__(self) -> str:
        return f"{self.start} … {self.end}"


REPORT_SQL = """
WITH r AS (
    SELECT kind, channel, debtor_id, outcome, wave_id, task_id, attempt, parts, actions
    FROM results
    WHERE day BETWEEN %(start)s AND %(end)s AND (%(campaign)s::text IS NULL OR campaign_id = %(campaign)s)
), per_channel AS (
    SELECT channel,
           count(*) FILTER (WHERE kind = 'dispatched') AS actions,
           count(*) FILTER (WHERE kind = 'result' AND outcome = 'answered') AS answered,
           count(*) FILTER (WHERE kind = 'result' AND outcome = 'answered_machine') AS answered_machine,
           count(*) FILTER (WHERE kind = 'result' AND outcome = 'invalid_number') AS invalid_numbers,
           count(*) FILTER (WHERE kind = 'result' AND 'opt_out' = ANY (actions)) AS opt_outs,
           count(*) FILTER (WHERE kind = 'result' AND 'promise_to_pay' = ANY (actions)) AS promises_to_pay,
           coalesce(sum(parts) FILTER (WHERE kind = 'result'), 0) AS sms_parts
    FROM r GROUP BY channel
), delivered AS (
    SELECT channel, count(*) AS delivered
    FROM (SELECT DISTINCT channel, wave_id, task_id, attempt FROM r
          WHERE kind IN ('result', 'late') AND outcome IN ('delivered', 'read')) d
    GROUP BY channel
), debtors AS (
    SELECT channel, count(*) FILTER (WHERE contacted) AS debtors_contacted,
           count(*) FILTER (WHERE reached) AS debtors_reached
    FROM (SELECT channel, debtor_id, bool_or(kind = 'dispatched') AS contacted,
                 bool_or(kind IN ('result', 'late') AND outcome IN ('answered', 'delivered', 'read')) AS reached
          FROM r GROUP BY channel, debtor_id) x
    GROUP BY channel
), callbacks AS (
    SELECT channel, count(*) AS callbacks FROM inbound
    WHERE day BETWEEN %(start)s AND %(end)s AND (%(campaign)s::text IS NULL OR campaign_id = %(campaign)s)
    GROUP BY channel
)
SELECT c.channel,
       coalesce(p.actions, 0), coalesce(d.debtors_contacted, 0), coalesce(d.debtors_reached, 0),
       round(coalesce(p.actions, 0)::numeric / nullif(d.debtors_contacted, 0), 2),
       round(coalesce(p.actions, 0)::numeric / nullif(d.debtors_contacted, 0) / (%(days)s::numeric / 30.4375), 2),
       coalesce(p.answered, 0),
       CASE WHEN c.channel = 'ivr' THEN round(coalesce(p.answered, 0)::numeric / nullif(p.actions, 0), 4) END,
       coalesce(v.delivered, 0),
       CASE WHEN c.channel <> 'ivr' THEN round(coalesce(v.delivered, 0)::numeric / nullif(p.actions, 0), 4) END,
       coalesce(p.answered_machine, 0), coalesce(p.invalid_numbers, 0), coalesce(b.callbacks, 0),
       coalesce(p.opt_outs, 0), coalesce(p.promises_to_pay, 0), coalesce(p.sms_parts, 0)
FROM unnest(%(channels)s::text[]) WITH ORDINALITY AS c(channel, ord)
LEFT JOIN per_channel p USING (channel)
LEFT JOIN delivered v USING (channel)
LEFT JOIN debtors d USING (channel)
LEFT JOIN callbacks b USING (channel)
ORDER BY c.ord
"""

DAILY_SQL = """
SELECT day, channel, count(*) FILTER (WHERE kind = 'dispatched') AS actions
FROM results
WHERE day BETWEEN %(start)s AND %(end)s AND (%(campaign)s::text IS NULL OR campaign_id = %(campaign)s)
GROUP BY day, channel ORDER BY day, channel
"""

REACH_SQL = """
SELECT day, count(*) FILTER (WHERE contacted) AS contacted, count(*) FILTER (WHERE reached) AS reached
FROM (SELECT day, debtor_id, bool_or(kind = 'dispatched') AS contacted,
             bool_or(kind IN ('result', 'late') AND outcome IN ('answered', 'delivered', 'read')) AS reached
      FROM results
      WHERE day BETWEEN %(start)s AND %(end)s AND (%(campaign)s::text IS NULL OR campaign_id = %(campaign)s)
      GROUP BY day, debtor_id) x
GROUP BY day ORDER BY day
"""


def _params(period: Period, campaign: str | None) -> dict[str, Any]:
    return {"start": period.start, "end": period.end, "campaign": campaign, "days": period.days,
            "channels": [c.value for c in CHANNEL_ORDER]}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return value


async def channel_report(conn: psycopg.AsyncConnection, period: Period, campaign: str | None = None
                         ) -> list[dict[str, Any]]:
    """One row per channel (ivr, sms, viber, whatsapp), the columns of :data:`COLUMNS`."""
    cur = await conn.execute(REPORT_SQL, _params(period, campaign))
    return [dict(zip(COLUMNS, (_plain(v) for v in row), strict=True)) for row in await cur.fetchall()]


@dataclass(frozen=True, slots=True)
class Daily:
    days: list[date]
    actions: dict[str, list[int]]  # channel → per day
    reach_rate: list[float | None]  # debtors reached ÷ contacted, per day


async def daily(conn: psycopg.AsyncConnection, period: Period, campaign: str | None = None) -> Daily:
    days = [period.start + timedelta(days=i) for i in range(period.days)]
    index = {d: i for i, d in enumerate(days)}
    actions = {c.value: [0] * len(days) for c in CHANNEL_ORDER}
    cur = await conn.execute(DAILY_SQL, _params(period, campaign))
    for day, channel, n in await cur.fetchall():
        actions.setdefault(channel, [0] * len(days))[index[day]] = int(n)
    reach: list[float | None] = [None] * len(days)
    cur = await conn.execute(REACH_SQL, _params(period, campaign))
    for day, contacted, reached in await cur.fetchall():
        reach[index[day]] = reached / contacted if contacted else None
    return Daily(days, actions, reach)


def as_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
    return buf.getvalue()


def as_json(rows: list[dict[str, Any]], period: Period, campaign: str | None) -> str:
    return json.dumps({"from": period.start.isoformat(), "to": period.end.isoformat(), "campaign": campaign,
                       "channels": rows}, ensure_ascii=False, indent=2) + "\n"


_LABELS = {"actions": "actions", "debtors_contacted": "debtors contacted", "debtors_reached": "debtors reached",
           "actions_per_debtor": "actions per debtor", "actions_per_debtor_month": "  per month",
           "answered": "answered (person)", "answered_rate": "  answered rate", "delivered": "delivered",
           "delivered_rate": "  delivered rate", "answered_machine": "answered by a machine",
           "invalid_numbers": "invalid numbers found", "callbacks": "callbacks", "opt_outs": "opt-outs",
           "promises_to_pay": "promises to pay", "sms_parts": "SMS parts billed"}


def as_table(rows: list[dict[str, Any]], period: Period, campaign: str | None) -> str:
    """The figures as rows and the channels as columns, as the seed's table reads."""
    head = f"Volna report {period}" + (f", campaign {campaign}" if campaign else "") + "\n"
    width = max(len(v) for v in _LABELS.values()) + 2
    lines = [head, " " * width + "".join(f"{r['channel']:>12}" for r in rows)]
    for key, label in _LABELS.items():
        cells = []
        for r in rows:
            v = r[key]
            if v is None:
                cells.append(f"{'—':>12}")
            elif key.endswith("_rate"):
                cells.append(f"{v * 100:>11.1f}%")
            elif isinstance(v, float):
                cells.append(f"{v:>12.2f}")
            else:
                cells.append(f"{v:>12,}".replace(",", " "))
        lines.append(f"{label:<{width}}" + "".join(cells))
    return "\n".join(lines) + "\n"
