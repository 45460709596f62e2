"""Per-minute series of a wave's day, folded from its results stream: the console's charts.

Sends are ``dispatched`` records (by ``sent_at``), finals are ``result`` records that end
their task (by ``finished_at``), outcomes are every attempt's ``result`` (a retried attempt's
too). The rates are what the manager watches: the answer rate of calls (answered by someone /
calls that ended at the peer) and the delivery rate of messages (delivered or read / messages
that ended at the peer); attempts the engine itself ended (stop-list, caps, cancelled…) are in
neither side.

A :class:`MinuteSeries` is folded incrementally: it remembers the last stream id it read, so a
console polling every few seconds costs only the records since the last poll, never the whole
stream (a million-task wave stays cheap). Minutes are the engine clock's (epoch ms / 60 000).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from engine.domain.outcomes import ENGINE_OUTCOMES, MESSAGE_CHANNELS, Channel, Outcome
from engine.store.keys import CHANNEL_ORDER, WaveKeys
from engine.store.schema import RECORD_FIELD

MINUTE_MS = 60_000
#: Outcomes that mean a person (or at least a line) picked up: the numerator of the answer rate.
ANSWERED = frozenset({Outcome.ANSWERED, Outcome.ANSWERED_INCOMPLETE, Outcome.WRONG_PARTY})
#: The numerator of the delivery rate.
DELIVERED = frozenset({Outcome.DELIVERED, Outcome.READ})
#: Records read per round trip while catching up.
PAGE = 5000

Key = tuple[int, str]  # (minute, channel or outcome)


@dataclass
class MinuteSeries:
    """Counts per minute of one wave (or, merged, of a day): the state of an incremental fold."""

    #: The last stream id folded in (exclusive start of the next read).
    cursor: str = "0-0"
    sends: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    finals: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    outcomes: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    #: Attempts that ended at the peer (the rates' denominators), and those answered/delivered.
    ended: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    reached: dict[Key, int] = field(default_factory=lambda: defaultdict(int))

    def fold(self, record: dict[str, Any]) -> None:
        kind = record.get("kind")
        channel = str(record.get("channel") or "")
        if kind == "dispatched":
            at = record.get("sent_at") or record.get("claimed_at")
            if at is not None:
                self.sends[(int(at) // MINUTE_MS, channel)] += 1
            return
        if kind != "result":
            return
        at = record.get("finished_at") or record.get("sent_at") or record.get("claimed_at")
        outcome = record.get("outcome")
        if at is None or not outcome:
            return
        minute = int(at) // MINUTE_MS
        self.outcomes[(minute, outcome)] += 1
        if record.get("final"):
            self.finals[(minute, channel)] += 1
        if outcome in ENGINE_OUTCOMES or outcome in (Outcome.ACCEPTED, Outcome.UNKNOWN, Outcome.ERROR):
            return  # never reached the peer, or its fate is not known yet
        self.ended[(minute, channel)] += 1
        good = ANSWERED if channel == Channel.IVR else DELIVERED
        if outcome in good:
            self.reached[(minute, channel)] += 1

    def merge(self, other: MinuteSeries) -> None:
        for mine, theirs in ((self.sends, other.sends), (self.finals, other.finals),
                             (self.outcomes, other.outcomes), (self.ended, other.ended),
                             (self.reached, other.reached)):
            for k, n in theirs.items():
                mine[k] += n

    def view(self, *, from_ms: int | None = None, to_ms: int | None = None) -> dict[str, Any]:
        """Aligned arrays for a chart: one x per minute from the first to the last with data (or
        the bounds given), and per channel / outcome a count (or a rate, null without data) per x."""
        minutes = {m for d in (self.sends, self.finals, self.outcomes) for m, _ in d}
        if from_ms is not None:
            minutes.add(from_ms // MINUTE_MS)
        if to_ms is not None:
            minutes.add(to_ms // MINUTE_MS)
        if not minutes:
            return {"minutes_ms": [], "sends": {}, "finals": {}, "rates": {}, "outcomes": {}}
        first, last = min(minutes), max(minutes)
        if from_ms is not None:
            first = max(first, from_ms // MINUTE_MS)
        if to_ms is not None:
            last = min(last, to_ms // MINUTE_MS)
        xs = list(range(first, last + 1))
        channels = [c.value for c in CHANNEL_ORDER if any(k[1] == c.value for k in (*self.sends, *self.finals))]
        outcomes = sorted({o for _, o in self.outcomes})

        def row(d: dict[Key, int], name: str) -> list[int]:
            return [d.get((m, name), 0) for m in xs]

        def rate(name: str) -> list[float | None]:
            return [round(100 * self.reached.get((m, name), 0) / n, 1) if (n := self.ended.get((m, name), 0))
                    else None for m in xs]

        return {
            "minutes_ms": [m * MINUTE_MS for m in xs],
            "sends": {c: row(self.sends, c) for c in channels},
            "finals": {c: row(self.finals, c) for c in channels},
            "rates": {c: rate(c) for c in channels if any(self.ended.get((m, c)) for m in xs)},
            "outcomes": {o: row(self.outcomes, o) for o in outcomes},
        }


def rate_kind(channel: str) -> str:
    """What a channel's rate measures: ``answer`` (calls) or ``delivery`` (messages)."""
    return "delivery" if channel in {c.value for c in MESSAGE_CHANNELS} else "answer"


async def catch_up(redis: Redis, wave_id: str, series: MinuteSeries, *, max_records: int = 200_000) -> int:
    """Fold what the wave's stream holds after ``series.cursor``; returns how many records were read.

    ``max_records`` bounds one call (a first look at a huge wave is finished by the next polls).
    """
    stream = WaveKeys(wave_id).results
    read = 0
    while read < max_records:
        page = await redis.xrange(stream, min=f"({series.cursor}", max="+", count=PAGE)
        if not page:
            break
        for _, fields in page:
            try:
                series.fold(json.loads(fields.get(RECORD_FIELD, "{}")))
            except (ValueError, TypeError):
                continue  # a record we cannot read is not worth a broken chart
        series.cursor = page[-1][0]
        read += len(page)
        if len(page) < PAGE:
            break
    return read
