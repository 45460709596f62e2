"""The SMSC simulator's knobs (read per PDU: tests change them while it runs) and its counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Knobs:
    seed: int = 1
    #: system_id → password. A bind with an unknown system_id gets ESME_RINVSYSID (0x0F), with a
    #: wrong password ESME_RINVPASWD (0x0E).
    accounts: dict[str, str] = field(default_factory=lambda: {"volna": "secret"})
    # ---- message ids ----
    #: How submit_sm_resp writes message ids: "dec" or "hex" (upper case).
    id_format: str = "dec"
    #: How the receipt text's ``id:`` writes them: "same", "dec" or "hex".
    receipt_id_format: str = "same"
    first_message_id: int = 100_000
    # ---- capacity ----
    #: submit_sm/data_sm per second per system_id (token bucket); above it ESME_RTHROTTLED. 0 = no limit.
    tps_limit: float = 0.0
    tps_burst: float = 0.0  # bucket size; 0 = a tenth of a second of tps_limit (at least 1)
    #: submits a session may have unanswered (with ``submit_latency_*``); above it ESME_RMSGQFUL. 0 = no limit.
    window: int = 0
    submit_latency_min_s: float = 0.0
    submit_latency_max_s: float = 0.0
    # ---- numbers ----
    #: Destinations (digits) starting with this get ESME_RINVDSTADR (0x0B). Empty = none.
    invalid_prefix: str = ""
    # ---- receipts ----
    receipts: bool = True
    #: Shares of final states (the rest is DELIVRD).
    undelivered_share: float = 0.0
    expired_share: float = 0.0
    rejected_share: float = 0.0
    #: Receipt delay: "fixed" (min), "uniform" (min…max) or "exponential" (min + Exp(mean), at most max).
    receipt_delay: str = "uniform"
    receipt_delay_min_s: float = 0.0
    receipt_delay_max_s: float = 0.0
    receipt_delay_mean_s: float = 0.0
    #: Put receipted_message_id / message_state / network_error_code TLVs in receipts.
    receipt_tlvs: bool = True
    #: Which bound receiver/transceiver of the system_id gets a receipt: "round_robin", "same"
    #: (the session that submitted, if it can receive) or "other" (any other, if there is one).
    receipt_routing: str = "round_robin"
    #: Receipts as "deliver_sm" (text + TLVs) or "data_sm" (message_payload + TLVs).
    receipt_command: str = "deliver_sm"
    #: A receipt answered with an error status is sent again after this long (at most 5 times).
    receipt_retry_s: float = 1.0
    # ---- faults ----
    #: Close a session after it sent this many PDUs (bind included) without answering the last
    #: ones: the messages are accepted, the client never learns. 0 = never.
    drop_after_pdus: int = 0
    #: How many sessions to drop that way (0 = every one).
    drop_times: int = 1
    #: Send a garbage PDU to the client after every this many PDUs received. 0 = never.
    garbage_every_pdus: int = 0
    #: "unknown_command", "bad_body" (a receipt deliver_sm cut short), "stray_response",
    #: or "bad_length" (command_length 7: the client must drop and re-bind).
    garbage_kind: str = "unknown_command"
    #: Stop answering anything (binds included) while true.
    silent: bool = False
    # ---- MO (POST /mo) ----
    #: Where the parts of one MO message go when the request names no bind per part: all on
    #: one bind ("same", round-robin per message) or each on the next bind ("round_robin").
    mo_parts_routing: str = "same"
    # ---- reach ledger ----
    #: Append every reach event to this file as one JSON line (empty: in memory only).
    reach_log: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["accounts"] = {k: "***" for k in self.accounts}
        return out


@dataclass
class SmscStats:
    """Readable by tests (``sim.stats``) and as JSON (``GET /stats``)."""

    connections: int = 0
    binds: Counter[str] = field(default_factory=Counter)
    bind_failures: Counter[str] = field(default_factory=Counter)
    #: submit_sm / data_sm PDUs received.
    submits: int = 0
    #: Parts answered ESME_ROK (stored by the SMSC).
    accepted_parts: int = 0
    throttled: int = 0
    queue_full: int = 0
    invalid_destination: int = 0
    malformed: int = 0
    #: Whole messages (parts joined) per destination digits and per text.
    per_destination: Counter[str] = field(default_factory=Counter)
    per_text: Counter[str] = field(default_factory=Counter)
    parts_per_message: Counter[int] = field(default_factory=Counter)
    #: Parts that end or start inside a character (GSM escape, surrogate pair, odd UCS-2).
    broken_parts: int = 0
    udh_ref_bits: Counter[int] = field(default_factory=Counter)
    #: Parts concatenated with the sar_* TLVs instead of a UDH.
    sar_parts: int = 0
    receipts_sent: int = 0
    #: Receipts delivered on another session than the one the message came in on.
    receipts_on_other_session: int = 0
    receipts_acked: int = 0
    receipts_nacked: int = 0
    #: Receipts waiting for a receiver of their system_id to bind.
    receipts_waiting: int = 0
    enquire_links: int = 0
    unbinds: int = 0
    generic_nacks_received: int = 0
    generic_nacks_sent: int = 0
    dropped_sessions: int = 0
    garbage_sent: int = 0
    #: Garbage the client answered (deliver_sm_resp to a bad deliver_sm, generic_nack to an unknown command).
    garbage_answered: int = 0
    #: MO messages sent (``POST /mo``), their PDUs (parts), the parts the ESME answered ESME_ROK or
    #: with an error, and the messages whose every part was answered ESME_ROK.
    mo_messages: int = 0
    mo_parts_sent: int = 0
    mo_parts_acked: int = 0
    mo_parts_nacked: int = 0
    mo_messages_acked: int = 0

    @property
    def messages(self) -> int:
        return sum(self.per_text.values())

    def accepted_twice(self) -> list[str]:
        """Texts the SMSC accepted more than once (tests send distinct texts)."""
        return [text for text, n in self.per_text.items() if n > 1]

    def to_json(self, *, per_message: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("per_destination", "per_text")
        }
        out["binds"] = dict(self.binds)
        out["bind_failures"] = dict(self.bind_failures)
        out["parts_per_message"] = {str(k): v for k, v in self.parts_per_message.items()}
        out["udh_ref_bits"] = {str(k): v for k, v in self.udh_ref_bits.items()}
        out["messages"] = self.messages
        out["accepted_twice"] = len(self.accepted_twice())
        if per_message:
            out["per_destination"] = dict(self.per_destination)
            out["per_text"] = dict(self.per_text)
        return out
