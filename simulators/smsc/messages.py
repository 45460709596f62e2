"""What the SMSC simulator keeps of messages in flight: each message's fate, each part's pending receipt, MO sent.

Shared by the simulator (:mod:`simulators.smsc.server`), which makes them, and its sessions
(:mod:`simulators.smsc.session`), which carry them on the wire and report their answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class MessageFate:
    """What becomes of one message, all its parts alike: its final state, decided once."""

    stat: str
    number: str  # the destination as addressed
    ref: str  # the message id of its first part
    total: int
    accepted: int = 0
    delivered: int = 0


@dataclass(slots=True)
class PendingReceipt:
    """One accepted part on its way to the handset (and its receipt, if one was asked for)."""

    system_id: str
    number: int
    source: str  # the message's destination
    destination: str  # the message's source
    stat: str
    submitted_at: datetime
    text: str
    #: The session that took the submit; only compared by identity (``receipt_routing``), so any object.
    origin: object | None
    attempts: int = 0
    fate: MessageFate | None = None
    receipt: bool = True
    counted: bool = False


@dataclass(slots=True)
class MoMessage:
    """A mobile-originated message sent to the ESMEs (``POST /mo``), and how its parts were answered."""

    mo_id: str
    parts: int
    acked: int = 0
    nacked: int = 0
