"""SMS over SMPP 3.4: :class:`SmppConnector`, one target per SMSC account.

``send`` encodes the rendered text (GSM 03.38 or UCS-2, :mod:`connectors.smpp.gsm`), splits
it (:mod:`connectors.smpp.segments`) and submits the parts in order on the account's binds.
Results:

=================================  =========================================================
every part ESME_ROK                ``Accepted(correlation_id=<part 1 id>, part_ids=<the
                                   others>, data={"parts": n})``; ids in canonical form
                                   (:func:`connectors.smpp.receipt.canonical_id`)
more than ``max_parts`` parts      ``Final(rejected, "text needs N parts, limit M")`` —
                                   never truncated, nothing sent
ESME_RTHROTTLED / ESME_RMSGQFUL    the same PDU again, inside the connector (the bind slows
                                   down, AIMD); past ``throttle.budget_s`` on the first part
                                   ``Retry`` (nothing was accepted)
ESME_RINVDSTADR (0x0B)             ``Final(invalid_number, provider_code="0x0000000B")``
system errors (0x08, 0x45, 0xFF…)  ``Final(failed)``, code kept
any other status                   ``Final(rejected)``, code kept
no bound bind with room in time    ``Retry`` (nothing was sent)
bind lost / no answer in time      ``ConnectorError`` — the submit may have been accepted:
                                   the core records ``unknown`` (or resends, only if the
                                   channel says ``resend_unconfirmed``). Never re-sent here.
=================================  =========================================================

A later part failing after earlier ones were accepted cannot be undone: the refusal becomes
the ``Final`` (with ``data["accepted_parts"]``), an unconfirmed or unsendable later part a
``ConnectorError`` (``unknown``).

Receipts (on any bind of the account) become :class:`~engine.port.LateEvent` through
:meth:`Connector.emit`; the core correlates them by message id. A receipt is answered after the
sink returned (``ESME_RX_T_APPN`` if it raised or none is bound yet: the SMSC delivers it again),
so a crash never acknowledges a receipt nobody recorded; the sink sees a receipt at least once.
Mobile-originated deliver_sm (not receipts) are answered and ignored (counted as ``mo_ignored``).

Usage::

    async with SmppConnector.from_config(raw, resend_unconfirmed=False) as conn:
        conn.bind_events(sink)
        result = await conn.send(SendRequest(task, attempt, target="smsc1", text="…"))
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from typing import Any

from pydantic import ValidationError

from connectors.smpp import pdu
from connectors.smpp.account import NotSent, SmppAccount
from connectors.smpp.gsm import encode_text
from connectors.smpp.mo import MoPart
from connectors.smpp.receipt import Receipt, canonical_id
from connectors.smpp.segments import ConcatRefs, segments, split_units
from connectors.smpp.settings import SmppSettings
from engine.domain.models import Task
from engine.domain.outcomes import Channel, Outcome
from engine.errors import ConfigError, ConnectorError
from engine.port import Accepted, Connector, Final, InboundEvent, Retry, SendRequest, SendResult, Target

log = logging.getLogger("connectors.smpp")

#: command_status values that say the SMSC failed, not that the message is wrong.
FAILED_STATUSES = frozenset({0x04, 0x08, 0x0D, 0x45, 0x64, 0xFE, 0xFF})


class PartlySent(ConnectorError):
    """A later part could not be confirmed after earlier parts were accepted."""


def refusal(status: int) -> Final:
    """The final outcome of a submit_sm refused with ``status``."""
    code = pdu.status_code(status)
    text = pdu.status_text(status)
    if status == pdu.ESME_RINVDSTADR:
        return Final(Outcome.INVALID_NUMBER, provider_code=code, provider_text=text)
    if status in FAILED_STATUSES:
        return Final(Outcome.FAILED, provider_code=code, provider_text=text)
    return Final(Outcome.REJECTED, provider_code=code, provider_text=text)


class SmppConnector(Connector):
    channel = Channel.SMS

    def __init__(self, settings: SmppSettings, *, resend_unconfirmed: bool = False) -> None:
        super().__init__()
        self.settings = settings
        self.resend_unconfirmed = resend_unconfirmed
        self.accounts: dict[str, SmppAccount] = {
            a.name: SmppAccount(a, on_receipt=self._on_receipt, on_mo=self._on_mo) for a in settings.accounts
        }
        self._refs = {a.name: ConcatRefs(a.concat_ref_bits) for a in settings.accounts}
        self._targets = [Target(a.name, a.rate_per_s, a.concurrency) for a in settings.accounts]

    @classmethod
    def from_config(cls, raw: dict[str, Any], *, resend_unconfirmed: bool = False) -> SmppConnector:
        """Build from ``[channels.sms.connector]`` (see :mod:`connectors.smpp.settings`)."""
        try:
            settings = SmppSettings.model_validate(raw)
        except ValidationError as exc:
            lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            raise ConfigError("channels.sms.connector:\n  " + "\n  ".join(lines)) from None
        return cls(settings, resend_unconfirmed=resend_unconfirmed)

    # ---- targets -----------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        return list(self._targets)

    def route(self, task: Task) -> str:
        """A debtor keeps hearing from the same account while it is healthy."""
        names = [t.name for t in self._targets if self.accounts[t.name].healthy] or [t.name for t in self._targets]
        if len(names) == 1:
            return names[0]
        return names[zlib.crc32(task.debtor_id.encode()) % len(names)]

    def healthy(self, target: str) -> bool:
        account = self.accounts.get(target)
        return account is not None and account.healthy

    # ---- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Start every bind; returns once each tried once. An SMSC that is down is retried in the
        background (``healthy`` is False meanwhile), never an error here."""
        for account in self.accounts.values():
            account.metrics = self.metrics
            account.report_connections()
        await asyncio.gather(*(
            acc.start(acc.settings.connect_timeout_s + 1.0) for acc in self.accounts.values()
        ))

    async def close(self) -> None:
        await asyncio.gather(*(acc.stop() for acc in self.accounts.values()))

    async def wait_bound(self, timeout_s: float = 10.0) -> None:
        """Wait until every bind of every account is bound (tests, benchmarks, the CLI)."""
        await asyncio.gather(*(acc.wait_bound(timeout_s) for acc in self.accounts.values()))

    # ---- send --------------------------------------------------------------------------------

    async def send(self, request: SendRequest) -> SendResult:
        account = self.accounts.get(request.target)
        if account is None:
            return Final(Outcome.ERROR, provider_text=f"no SMPP account named {request.target!r}")
        s = account.settings
        if not request.text:
            return Final(Outcome.REJECTED, provider_text="empty text")
        encoded = encode_text(request.text)
        chunks = split_units(encoded, s.concat_ref_bits)
        n = len(chunks)
        if n > s.max_parts:
            return Final(Outcome.REJECTED, provider_text=f"text needs {n} parts, limit {s.max_parts}",
                         data={"parts": n})
        destination = request.task.phone.lstrip("+")
        refs = self._refs[account.name]
        ref = refs.acquire(destination) if n > 1 else None
        ids: list[str] = []
        # Each part's id is announced as its submit_sm_resp comes (see SendRequest.announce).
        announce = request.announce if n > 1 else None
        announced: list[Any] = []
        try:
            for i, segment in enumerate(segments(encoded, ref, s.concat_ref_bits, parts=chunks)):
                body = pdu.encode_submit_sm_body(
                    account.head, destination, esm_class=segment.esm_class, data_coding=encoded.data_coding,
                    short_message=segment.short_message, registered_delivery=s.registered_delivery,
                    validity_period=account.validity,
                )
                try:
                    status, message_id = await account.submit(body, next_part=bool(ids))
                except NotSent as exc:
                    if not ids:
                        return Retry(delay_s=exc.retry_after_s, reason=str(exc))
                    raise PartlySent(f"part {i + 1} of {n} not sent after {i} accepted ({exc})") from None
                except ConnectorError as exc:
                    if ids:
                        raise PartlySent(f"part {i + 1} of {n} unconfirmed after {i} accepted ({exc})") from None
                    raise
                if status != pdu.ESME_ROK:
                    final = refusal(status)
                    data: dict[str, Any] = {"parts": n}
                    if ids:
                        data |= {"accepted_parts": len(ids), "part_ids": list(ids)}
                    return Final(final.outcome, final.provider_code, final.provider_text, data=data)
                ids.append(canonical_id(message_id, s.submit_id_base))
                if announce is not None:
                    announced.append(asyncio.ensure_future(announce(ids[-1], n, s.parts_policy, {"parts": n})))
        finally:
            if ref is not None:
                refs.release(destination, ref)
        if announced:
            await asyncio.gather(*announced)
        return Accepted(
            correlation_id=ids[0],
            part_ids=tuple(ids[1:]),
            data={"parts": n},
            final_timeout_s=self.settings.final_timeout_s,
            parts_policy=s.parts_policy,
        )

    # ---- receipts ----------------------------------------------------------------------------

    async def _on_receipt(self, receipt: Receipt) -> None:
        if self._sink is None:
            # Not wired yet (binds come up in open(), before bind_events): refuse it for now, the
            # SMSC delivers it again (ESME_RX_T_APPN), rather than answer OK and lose it.
            raise ConnectorError("no event sink bound yet")
        await self.emit(receipt.to_event())

    async def _on_mo(self, account: str, part: MoPart) -> None:
        """A debtor's reply (or one part of it): the core joins the parts, in Redis, whatever
        bind or process each came through."""
        if self._sink is None:
            raise ConnectorError("no event sink bound yet")
        data: dict[str, Any] = {"account": account, "destination": part.destination, "data_coding": part.data_coding}
        if part.concat is not None:
            ref, total, seq = part.concat
            data["concat"] = {"ref": ref, "total": total, "seq": seq}
        # A copy delivered again within ten minutes (its answer was lost) is the same message.
        source_id = f"sms:{part.fingerprint}:{int(time.time() // 600)}"
        await self.emit(InboundEvent(channel=Channel.SMS, phone=part.phone, kind="message", source_id=source_id,
                                     text=part.text, data=data))
