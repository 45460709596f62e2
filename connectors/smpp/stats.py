"""Plain counters of the SMPP connector (Prometheus comes later): one object per connector."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class SmppStats:
    #: submit_sm PDUs written (re-sends of throttled ones included).
    submits: int = 0
    accepted: int = 0
    #: ESME_RTHROTTLED / ESME_RMSGQFUL answers (each re-sent later, inside the connector).
    throttled: int = 0
    refused: int = 0
    #: submit_sm whose answer never came (timeout, bind lost): reported as unconfirmed.
    unconfirmed: int = 0
    response_timeouts: int = 0
    receipts: int = 0
    receipts_unparsed: int = 0
    receipt_sink_errors: int = 0
    #: deliver_sm that are not receipts (mobile-originated): answered and dropped.
    mo_ignored: int = 0
    #: PDUs whose frame was intact but whose body was not (the bind survives them).
    malformed_pdus: int = 0
    #: Streams that could not be split into PDUs any more (the bind is dropped and re-bound).
    framing_errors: int = 0
    generic_nacks_sent: int = 0
    #: Responses to no request we have waiting (late after a timeout, or bogus).
    unexpected_responses: int = 0
    binds: int = 0
    bind_failures: int = 0
    binds_lost: int = 0
    enquire_links: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)
