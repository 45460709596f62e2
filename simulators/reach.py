"""The reach ledger: what each simulated peer says reached a number, append-only.

The engine's chaos test judges the legal contact caps from what the PEERS say reached each
number, not from the engine's own outcome labels, so every simulator records here the moment a
contact reached a person (or their phone). One event is a JSON object::

    {"at_ms": 1767225600123, "number": "79161234567", "channel": "ivr", "kind": "answered",
     "ref": "volna-d2c9750a37311db002c6"}

``at_ms`` is the wall clock (epoch milliseconds) when it happened; ``number`` the digits as
dialled / addressed (``+`` and any other non-digit dropped); ``channel`` one of
:data:`CHANNELS`; ``kind`` what happened (each simulator's docstring lists its kinds); ``ref``
the simulator's own id of the contact (the call's ``ChannelId``, the message id it issued).

Three ways to read it: ``sim.reach.events()`` in-process; ``GET /reach`` on the simulator's
HTTP endpoint (a JSON list, or JSON lines with ``?format=jsonl``; filters ``number``,
``kind``, ``channel``, ``since_ms``); and ``--reach-log PATH`` (knob ``reach_log``), which
appends each event as one JSON line as it happens, flushed per event: a ``kill -9`` of the
simulator loses at most the line being written. Name that file ``*.jsonl``, not ``*.log``:
it holds phone numbers by design, and the suite's privacy guard reads every ``*.log``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from simulators.control import BadInput

CHANNELS = ("ivr", "sms", "viber", "whatsapp")


def number_digits(address: str) -> str:
    """The digits of a number as dialled or addressed (``+7 916 …`` → ``7916…``); an address
    without digits (an alphanumeric sender) is kept as it is."""
    digits = "".join(ch for ch in address if ch.isdigit())
    return digits or address


def mask(number: str) -> str:
    """``79161234567`` → ``7916***4567``, for logs (a phone number is personal data)."""
    digits = number_digits(number)
    if len(digits) < 8:
        return "***"
    return f"{'+' if number.startswith('+') else ''}{digits[:4]}***{digits[-4:]}"


@dataclass(frozen=True, slots=True)
class ReachEvent:
    at_ms: int
    number: str
    channel: str
    kind: str
    ref: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ReachLedger:
    """Append-only list of :class:`ReachEvent`, mirrored line by line to ``path`` when given.

    The file is opened on the first event (append mode), so a simulator restarted with the same
    path keeps adding to it; :meth:`close` closes it.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._events: list[ReachEvent] = []
        self._file: IO[str] | None = None

    def record(self, number: str, channel: str, kind: str, ref: str, *, at_ms: int | None = None) -> ReachEvent:
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}")
        event = ReachEvent(at_ms if at_ms is not None else int(time.time() * 1000), number_digits(number),
                           channel, kind, ref)
        self._events.append(event)
        if self.path is not None:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            # One write per line, flushed at once: a kill -9 loses at most the line being written.
            self._file.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")
            self._file.flush()
        return event

    def events(self, *, number: str | None = None, kind: str | None = None, channel: str | None = None,
               since_ms: int | None = None) -> list[dict[str, Any]]:
        """The events (as JSON objects) in the order they happened, filtered."""
        wanted = number_digits(number) if number else None
        return [e.to_json() for e in self._events
                if (wanted is None or e.number == wanted) and (kind is None or e.kind == kind)
                and (channel is None or e.channel == channel) and (since_ms is None or e.at_ms >= since_ms)]

    def __len__(self) -> int:
        return len(self._events)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # ---- HTTP --------------------------------------------------------------------------------

    async def http_get(self, request: web.Request) -> web.Response:
        """``GET /reach[?number=&kind=&channel=&since_ms=&format=json|jsonl]``."""
        q = request.query
        unknown = sorted(set(q) - {"number", "kind", "channel", "since_ms", "format"})
        if unknown:
            raise BadInput(unknown[0], "unknown query parameter")
        since_ms = None
        if "since_ms" in q:
            try:
                since_ms = int(q["since_ms"])
            except ValueError:
                raise BadInput("since_ms", "expected an integer (epoch milliseconds)") from None
        if q.get("channel") is not None and q["channel"] not in CHANNELS:
            raise BadInput("channel", f"expected one of {', '.join(CHANNELS)}")
        fmt = q.get("format", "json")
        if fmt not in ("json", "jsonl"):
            raise BadInput("format", "expected json or jsonl")
        events = self.events(number=q.get("number") or None, kind=q.get("kind") or None,
                             channel=q.get("channel") or None, since_ms=since_ms)
        if fmt == "jsonl":
            text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
            return web.Response(text=text, content_type="application/x-ndjson")
        return web.json_response(events)
