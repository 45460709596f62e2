"""One AMI connection of the simulator (an asyncio protocol): banner, actions in, bytes out.

What it may read is its ``mask``: the event classes of its login's ``Events`` header (``on`` /
``all`` / empty: every class; ``off``: none; else the listed ones), as ``manager.c`` filters.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from simulators.ami.knobs import Knobs, SimStats
from simulators.ami.wire import ActionReader, Headers, encode, get

_ALL_CLASSES = frozenset({"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
                          "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
                          "message"})


def event_mask(value: str) -> frozenset[str]:
    v = value.strip().lower()
    if v in ("", "on", "yes", "true", "all"):
        return _ALL_CLASSES
    if v in ("off", "no", "false"):
        return frozenset()
    return frozenset(p.strip() for p in v.split(",") if p.strip())


class SessionHost(Protocol):
    """What a connection uses of the simulator that serves it (:class:`simulators.ami.server.AmiSimulator`)."""

    @property
    def knobs(self) -> Knobs: ...
    @property
    def stats(self) -> SimStats: ...
    @property
    def sessions(self) -> set[Session]: ...

    def handle(self, s: Session, action: Headers) -> None: ...


class Session(asyncio.Protocol):
    def __init__(self, sim: SessionHost) -> None:
        self.sim = sim
        self.reader = ActionReader()
        self.transport: asyncio.Transport | None = None
        self.logged_in = False
        self.mask: frozenset[str] = frozenset()
        self.challenge = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sim.sessions.add(self)
        self.sim.stats.connections += 1
        transport.write(f"{self.sim.knobs.banner}\r\n".encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.sim.sessions.discard(self)
        self.transport = None

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def reply(self, action: Headers, headers: list[tuple[str, str]]) -> None:
        action_id = get(action, "ActionID")
        if action_id:
            headers = [headers[0], ("ActionID", action_id), *headers[1:]]
        self.write(encode(headers))

    def data_received(self, data: bytes) -> None:
        try:
            actions = self.reader.feed(data)
        except ValueError:
            if self.transport is not None:
                self.transport.close()
            return
        self.sim.stats.malformed_lines = self.reader.malformed
        for action in actions:
            self.sim.handle(self, action)
