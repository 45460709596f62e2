"""Helpers of the simulator tests (no tests here): the Asterisk 22 captures parsed, a raw AMI client.

Both are written here, apart from ``connectors``: the simulators' tests judge the simulator
against the real Asterisk's wire text, not against the engine's own parser. The captures are
read in place from ``/work/shared/asterisk-22-transcripts`` (never copied into the repo).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "asterisk-22-transcripts"

Msg = dict[str, str]

#: A Local channel's sequence number differs from run to run: ``Local/x@ctx-00000026;1`` → ``Local/x@ctx-#;1``.
_LOCAL_SEQ = re.compile(r"-[0-9a-f]{8}(;[12])$")


def parse_raw(text: str) -> list[Msg]:
    """AMI wire text (blocks of ``Key: Value`` lines; ``#…`` comment lines and a banner skipped)."""
    out: list[Msg] = []
    for block in re.split(r"\r?\n\s*\r?\n", text):
        msg: Msg = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            msg.setdefault(key.strip(), value.strip())
        if msg:
            out.append(msg)
    return out


@dataclass(frozen=True)
class SummaryLine:
    """One line of ``volna-busy-invalid-noanswer-machine.txt``: ``<t> <Event> <channel tail> k=v …``."""

    at_s: float
    event: str
    channel_tail: str
    fields: dict[str, str]

    @property
    def leg(self) -> str:
        if self.channel_tail.endswith((";1", ";2")):
            return self.channel_tail[-2:]
        return ";2" if self.fields.get("Uniqueid", "").endswith("-2") else ";1"


def parse_summary(text: str) -> dict[str, list[SummaryLine]]:
    """Sections ``=== <number>`` → their lines."""
    sections: dict[str, list[SummaryLine]] = {}
    current: list[SummaryLine] | None = None
    for line in text.splitlines():
        if line.startswith("==="):
            current = sections.setdefault(line.strip("= ").strip(), [])
            continue
        parts = line.split()
        if not parts or current is None:
            continue
        fields = dict(p.split("=", 1) for p in parts[3:])
        current.append(SummaryLine(float(parts[0]), parts[1], parts[2], fields))
    return sections


def leg_of(msg: Msg) -> str:
    """``;1`` (the originated half: ChannelId) or ``;2`` (the debtor's half: OtherChannelId ``…-2``)."""
    for key in ("Uniqueid", "DestUniqueid", "LocalOneUniqueid"):
        if key in msg:
            return ";2" if msg[key].endswith("-2") else ";1"
    return ";1"


def normalized(value: str) -> str:
    return _LOCAL_SEQ.sub(r"-#\1", value)


def per_leg(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for leg, name in items:
        out.setdefault(leg, []).append(name)
    return out


class AmiClient:
    """A raw AMI client: writes actions, reads messages (banner skipped)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.inbox: list[Msg] = []
        self._buf = ""
        self.closed = False

    @classmethod
    async def connect(cls, port: int, timeout_s: float = 3.0) -> AmiClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout_s)
        return cls(reader, writer)

    @classmethod
    async def login(cls, port: int, events: str = "call,user") -> AmiClient:
        c = await cls.connect(port)
        c.send("Login", Username="volna", Secret="sim-secret", Events=events, ActionID="login")
        await c.until(lambda m: any(x.get("ActionID") == "login" for x in m))
        return c

    def send(self, action: str, *extra: tuple[str, str], **headers: str) -> None:
        lines = [f"Action: {action}", *(f"{k}: {v}" for k, v in headers.items()), *(f"{k}: {v}" for k, v in extra)]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _feed(self, data: bytes) -> None:
        self._buf += data.decode()
        *blocks, self._buf = re.split(r"\r\n\r\n", self._buf)
        for block in blocks:
            msg: Msg = {}
            for line in block.split("\r\n"):
                key, sep, value = line.partition(": ")
                if sep:
                    msg.setdefault(key, value)
                elif line.endswith(":"):
                    msg.setdefault(line[:-1], "")
            if msg:
                self.inbox.append(msg)

    async def until(self, predicate: Callable[[list[Msg]], bool], timeout_s: float = 3.0) -> list[Msg]:
        async def read() -> None:
            while not predicate(self.inbox):
                data = await self.reader.read(65536)
                if not data:
                    self.closed = True
                    return
                self._feed(data)

        await asyncio.wait_for(read(), timeout_s)
        return self.inbox

    def events(self, name: str | None = None) -> list[Msg]:
        return [m for m in self.inbox if "Event" in m and (name is None or m["Event"] == name)]

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (ConnectionError, TimeoutError):
            pass


def hangups(n: int) -> Callable[[list[Msg]], bool]:
    return lambda msgs: sum(m.get("Event") == "Hangup" for m in msgs) >= n
