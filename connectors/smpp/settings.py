"""Typed settings of the SMPP connector (``[channels.sms.connector]``).

Every key with its default, except the required ones::

    [channels.sms]
    resend_unconfirmed = false        # guarantee 4: a submit whose answer was lost is `unknown`
    [channels.sms.connector]
    final_timeout_s = 86400.0         # wait this long for a receipt before the attempt ends
    [[channels.sms.connector.accounts]]
    name = "smsc1"                    # the pacing target (unique engine-wide)
    host = "smsc.example.net"
    port = 2775
    system_id = "volna"               # ≤ 15 characters
    password_file = "/etc/volna/smpp-password"   # or password = "…" (≤ 8 characters); re-read per bind
    system_type = ""
    bind_mode = "transceiver"         # or "transmitter_receiver"
    binds = 1                         # transceivers, or transmitters in transmitter_receiver mode
    receiver_binds = 1                # receivers in transmitter_receiver mode
    window = 10                       # outstanding submit_sm per bind
    rate_per_s = 50.0                 # → the core's pacing (Target)
    # max_concurrent = 200            # → the core's pacing; default none: each bind's window bounds it
    enquire_link_s = 30.0
    response_timeout_s = 10.0         # a submit_sm unanswered this long is `unknown`
    connect_timeout_s = 10.0
    window_wait_s = 10.0              # longest a send waits for a bound bind with window room
    reconnect_min_s = 1.0             # exponential backoff with jitter between binds
    reconnect_max_s = 60.0
    drain_timeout_s = 5.0             # on shutdown: wait for outstanding submits, then unbind
    source_addr = "Volna"             # alphanumeric → TON 5 / NPI 0; digits → TON 1 / NPI 1
    # source_ton = 5                  # override the derived TON / NPI
    # source_npi = 0
    service_type = ""
    registered_delivery = 1           # ask for a final receipt
    # validity_s = 86400              # validity_period (relative); unset = the SMSC's default
    max_parts = 6                     # longer texts are rejected, never truncated
    parts_policy = "all"              # the attempt is final after every part's receipt, or the first's
    concat_ref_bits = 8               # UDH IE 0x00 (8-bit reference) or 16 → IE 0x08
    submit_id_base = "text"           # "text" | "dec" | "hex": see connectors/smpp/receipt.py
    receipt_id_base = "text"
    [channels.sms.connector.accounts.throttle]
    retry_min_s = 0.05                # first re-send of a throttled submit_sm (doubles, jittered)
    retry_max_s = 2.0
    budget_s = 30.0                   # past it a throttled first part is handed back as Retry
    decrease = 0.7                    # AIMD: the account's rate × this on ESME_RTHROTTLED / RMSGQFUL
    recovery = 0.25                   # … and + this share of the last capacity per second without one
    floor_per_s = 1.0
    [channels.sms.connector.accounts.tls]
    enabled = false
    # ca_file = "/etc/volna/smsc-ca.pem"
    verify = true
    # server_hostname = "smsc.example.net"
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from engine.errors import ConfigError

_NAME = r"^[A-Za-z0-9._:\-]{1,64}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsSettings(_Model):
    #: Connect over TLS.
    enabled: bool = False
    #: The CA bundle the SMSC's certificate is checked against (unset: the system's).
    ca_file: Path | None = None
    #: Check the SMSC's certificate and host name.
    verify: bool = True
    #: The name its certificate must carry (unset: `host`).
    server_hostname: str | None = None

    def context(self) -> ssl.SSLContext | None:
        if not self.enabled:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


class ThrottleSettings(_Model):
    """ESME_RTHROTTLED (0x58) / ESME_RMSGQFUL (0x14): the same PDU again later, the account slower
    (:mod:`connectors.smpp.throttle`)."""

    #: First re-send of a throttled `submit_sm` after this (doubling, jittered).
    retry_min_s: float = Field(default=0.05, gt=0)
    #: Longest wait between re-sends.
    retry_max_s: float = Field(default=2.0, gt=0)
    #: Past this, a throttled first part is handed back to the core as `Retry`.
    budget_s: float = Field(default=30.0, ge=0)
    #: AIMD: the account's rate is multiplied by this on `ESME_RTHROTTLED`/`ESME_RMSGQFUL`,
    decrease: float = Field(default=0.7, gt=0, lt=1)
    #: and grows by this share of the last capacity per second without one,
    recovery: float = Field(default=0.25, gt=0)
    #: never below this rate.
    floor_per_s: float = Field(default=1.0, gt=0)


class AccountSettings(_Model):
    """One SMSC account (system_id): its binds, window, capacity, addressing and message rules."""

    #: The account's name: its pacing target (unique engine-wide).
    name: str = Field(default="smsc", pattern=_NAME)
    #: The SMSC's address.
    host: str
    #: Its SMPP port.
    port: int = Field(default=2775, ge=1, le=65535)
    #: The account's `system_id` (at most 15 characters).
    system_id: str = Field(min_length=1, max_length=15)
    #: The password inline (at most 8 characters; prefer `password_file`).
    password: SecretStr | None = None
    #: A file holding the password, re-read at every bind (rewrite it to rotate).
    password_file: Path | None = None
    #: The bind's `system_type`, when the SMSC asks for one.
    system_type: str = Field(default="", max_length=12)
    #: TLS to the SMSC:
    tls: TlsSettings = TlsSettings()
    #: `transceiver` (one bind sends and receives) or `transmitter_receiver` (separate binds).
    bind_mode: Literal["transceiver", "transmitter_receiver"] = "transceiver"
    #: Transceivers, or transmitters in `transmitter_receiver` mode.
    binds: int = Field(default=1, ge=1, le=64)
    #: Receivers in `transmitter_receiver` mode.
    receiver_binds: int = Field(default=1, ge=1, le=64)
    #: Outstanding `submit_sm` per bind (what the SMSC allows).
    window: int = Field(default=10, ge=1, le=1000)
    #: Messages per second at most (the TPS bought), across every dispatcher: the pacing target's rate.
    rate_per_s: float = Field(default=50.0, gt=0)
    #: The pacing target's concurrency; unset: 10 × `binds` × `window`.
    max_concurrent: int | None = Field(default=None, ge=1)
    #: An `enquire_link` this often on every bind.
    enquire_link_s: float = Field(default=30.0, gt=0)
    #: A PDU unanswered this long: a `submit_sm` ends `unknown`, the bind is rebuilt.
    response_timeout_s: float = Field(default=10.0, gt=0)
    #: Connecting and binding.
    connect_timeout_s: float = Field(default=10.0, gt=0)
    #: Longest a send waits for a bound bind with room in its window.
    window_wait_s: float = Field(default=10.0, gt=0)
    #: First wait before binding again; doubles up to `reconnect_max_s`, with jitter.
    reconnect_min_s: float = Field(default=1.0, gt=0)
    #: Longest wait between binds.
    reconnect_max_s: float = Field(default=60.0, gt=0)
    #: On shutdown: wait this long for outstanding submits, then unbind.
    drain_timeout_s: float = Field(default=5.0, ge=0)
    #: The sender: alphanumeric (at most 11 characters) → TON 5 / NPI 0; digits → TON 1 / NPI 1.
    source_addr: str = Field(default="Volna", min_length=1, max_length=20)
    #: Overrides the TON derived from `source_addr`.
    source_ton: int | None = Field(default=None, ge=0, le=6)
    #: Overrides the NPI derived from `source_addr`.
    source_npi: int | None = Field(default=None, ge=0, le=18)
    #: The `submit_sm`'s `service_type`.
    service_type: str = Field(default="", max_length=5)
    #: 1: ask for a final receipt (`delivered`, `undelivered` come from it).
    registered_delivery: int = Field(default=1, ge=0, le=0xFF)
    #: The message's validity period (relative); unset: the SMSC's default.
    validity_s: int | None = Field(default=None, ge=60, le=99 * 86400)
    #: Longer texts end `rejected`, never truncated.
    max_parts: int = Field(default=6, ge=1, le=255)
    #: A multipart message is final after every part's receipt (`all`) or the first's.
    parts_policy: Literal["all", "first"] = "all"
    #: The concatenation reference: 8-bit (UDH IE 0x00) or 16-bit (IE 0x08).
    concat_ref_bits: Literal[8, 16] = 8
    #: How the SMSC writes message ids in `submit_sm_resp`: `text` as is, `dec` or `hex` numbers.
    submit_id_base: Literal["text", "dec", "hex"] = "text"
    #: How it writes them in receipts (`id:` and `receipted_message_id`).
    receipt_id_base: Literal["text", "dec", "hex"] = "text"
    #: When the SMSC throttles:
    throttle: ThrottleSettings = ThrottleSettings()

    @model_validator(mode="after")
    def _check(self) -> AccountSettings:
        if self.password is None and self.password_file is None:
            raise ValueError(f"accounts.{self.name}: password or password_file is required")
        if self.password is not None and len(self.password.get_secret_value()) > 8:
            raise ValueError(f"accounts.{self.name}: password longer than 8 characters (SMPP 3.4)")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(f"accounts.{self.name}: reconnect_max_s < reconnect_min_s")
        if not self.source_addr.isascii():
            raise ValueError(f"accounts.{self.name}: source_addr must be ASCII")
        if self.is_alphanumeric_source and len(self.source_addr) > 11:
            raise ValueError(f"accounts.{self.name}: an alphanumeric source_addr has at most 11 characters")
        return self

    @property
    def is_alphanumeric_source(self) -> bool:
        return not self.source_addr.lstrip("+").isdigit()

    def source(self) -> tuple[int, int, str]:
        """``(ton, npi, addr)``: alphanumeric → 5/0; digits (``+`` allowed) → 1/1; overrides win."""
        if self.is_alphanumeric_source:
            ton, npi, addr = 5, 0, self.source_addr
        else:
            ton, npi, addr = 1, 1, self.source_addr.lstrip("+")
        return (
            self.source_ton if self.source_ton is not None else ton,
            self.source_npi if self.source_npi is not None else npi,
            addr,
        )

    def secret(self) -> str:
        """The password, re-read from ``password_file`` each time (rotate it by rewriting the file)."""
        if self.password_file is not None:
            try:
                value = self.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"accounts.{self.name}: password_file {self.password_file}: "
                                  f"cannot read ({exc.strerror})") from None
        else:
            assert self.password is not None
            value = self.password.get_secret_value()
        if len(value) > 8:
            raise ConfigError(f"accounts.{self.name}: password longer than 8 characters (SMPP 3.4)")
        return value

    @property
    def transmitters(self) -> int:
        return self.binds

    @property
    def concurrency(self) -> int | None:
        """The pacing target's concurrency: none unless configured. What the SMSC sees is bounded
        by each bind's window, and sends beyond it wait for a window slot in the connector (FIFO,
        up to ``window_wait_s``); what waits is bounded by the engine's claims (``rate_per_s`` ×
        ``dispatcher.claim_ahead_s``). Engine-wide slots in Redis added two round trips per batch
        and, circulating through Redis, held one process below the SMSC's pace: with ten windows'
        worth (the old default), 200 slots were all taken while the connector's queue was empty
        and the binds' windows half used (``load/bench_vs_kannel.py``, 2026-12-04)."""
        return self.max_concurrent


class SmppSettings(_Model):
    accounts: list[AccountSettings] = Field(min_length=1)
    #: How long an accepted message waits for its receipt before the attempt ends on its own.
    final_timeout_s: float = Field(default=86400.0, gt=0)

    @model_validator(mode="after")
    def _unique(self) -> SmppSettings:
        names = [a.name for a in self.accounts]
        if len(set(names)) != len(names):
            raise ValueError("accounts: names must be unique")
        return self
