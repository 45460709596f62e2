"""Typed settings of the AMI connector (``[channels.ivr.connector]``).

Several Asterisk servers, each with its AMI account and its trunks; every trunk is a pacing
target (``Target(name, rate_per_s, max_concurrent)``) — keep trunk names unique engine-wide.
The secret is given inline or, better, as ``secret_file`` (read at each login, so a rotated
secret is picked up on the next reconnect).

Example (every key with its default, except the required ones)::

    [channels.ivr]
    resend_unconfirmed = false     # an Originate whose answer was lost is `unknown`, never re-sent
    [channels.ivr.connector]
    ring_timeout_s = 30.0          # Originate Timeout (a scenario's ivr.ring_timeout_s wins)
    hangup_margin_s = 30.0         # past ring + the script's max_duration_s: Hangup action
    events = "call,user,system,agent"  # Login Events mask: no VarSet/Newexten on the wire; system for
                                   # Shutdown/FullyBooted, agent for the operator queues' events
    channel_id_prefix = "volna"    # ChannelId = <prefix>-<20 hex of the attempt key>
    follow_foreign = true          # also report calls other dispatcher processes originated
    local_guard = true             # never more than max_concurrent own calls on a trunk
    action_timeout_s = 5.0         # every AMI action (Originate's "queued" answer included)
    connect_timeout_s = 5.0
    ping_interval_s = 10.0
    ping_timeout_s = 5.0           # no Pong in time: the link is dead, reconnect
    reconnect_min_s = 0.5          # backoff doubles up to reconnect_max_s, with jitter
    reconnect_max_s = 30.0
    settle_s = 1.0                 # wait for a missing piece (other leg, response) after hang-up
    hangup_wait_s = 10.0           # after our Hangup action, give up waiting for the Hangup event
    retry_delay_s = 5.0            # Retry(delay_s) while a server is down, refuses, or a trunk is full
    boot_wait_s = 10.0             # after a restart: wait this long for FullyBooted, then go on
    tick_s = 0.25                  # timers: settle, max duration, hang-up wait
    close_drain_s = 5.0            # on close, wait for own calls in flight to end
    queue_poll_s = 2.0             # QueueSummary of the operator queues the scenarios use
    queue_stale_s = 10.0           # a queue state older than this: no operator is offered
    recording_format = "wav"       # MixMonitor's file: volna/<wave>/<task>-<attempt>.wav
    inbound_contexts = ["volna-inbound"]  # Newchannel here from a caller id → InboundEvent
    inbound_dids = []              # only these Exten (DIDs); empty = any
    [[channels.ivr.connector.servers]]
    name = "ast1"
    host = "10.0.0.5"
    port = 5038
    username = "volna"
    secret_file = "/etc/volna/ami-secret"
    auth = "md5"                   # Challenge/MD5 login; "plain" sends the secret
    [[channels.ivr.connector.servers.trunks]]
    name = "ast1-trunk-a"
    dial = "PJSIP/{number}@trunk-a"
    number_format = "national_8"   # e164 (+79161234567), e164_digits (79161234567), national_8 (89161234567)
    caller_id = '"Volna" <84950000000>'
    rate_per_s = 10.0
    max_concurrent = 30
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from engine.errors import ConfigError

_NAME = r"^[A-Za-z0-9._:\-]{1,64}$"

NumberFormat = Literal["e164", "e164_digits", "national_8"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrunkSettings(_Model):
    #: The trunk's name: its pacing target (unique engine-wide).
    name: str = Field(pattern=_NAME)
    #: Originate ``Channel``, with ``{number}`` (``PJSIP/{number}@trunk-a``, ``Local/{number}@debtors``).
    dial: str = Field(min_length=3, max_length=200)
    #: ``e164`` (+79161234567), ``e164_digits`` (79161234567), ``national_8`` (89161234567); the
    #: spellings ``"+7…"``, ``"7…"`` and ``"8…"`` are accepted too.
    number_format: NumberFormat = "e164"
    #: The Originate's `CallerID` (`"Volna" <84950000000>`); unset: the trunk's own.
    caller_id: str | None = Field(default=None, max_length=120)
    #: Calls placed per second at most on this trunk, across every dispatcher.
    rate_per_s: float = Field(default=10.0, gt=0)
    #: Calls up at once at most on this trunk (ringing or answered).
    max_concurrent: int = Field(default=30, ge=1)

    @field_validator("number_format", mode="before")
    @classmethod
    def _alias(cls, value: object) -> object:
        aliases = {"+7": "e164", "7": "e164_digits", "8": "national_8"}
        return aliases.get(str(value).rstrip(".…x"), value) if isinstance(value, str) else value

    @field_validator("dial")
    @classmethod
    def _template(cls, value: str) -> str:
        fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        if fields != ["number"] or "/" not in value or any(c in value for c in "\r\n,"):
            raise ValueError("dial must be like 'PJSIP/{number}@trunk' with {number} exactly once")
        return value

    @field_validator("caller_id")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\r" in value or "\n" in value):
            raise ValueError("caller_id must be one line")
        return value


def format_number(e164: str, fmt: NumberFormat) -> str:
    """``+79161234567`` as the trunk wants it; ``national_8`` dials abroad as ``810…``."""
    digits = e164.lstrip("+")
    if fmt == "e164":
        return "+" + digits
    if fmt == "e164_digits":
        return digits
    return "8" + digits[1:] if digits.startswith("7") else "810" + digits


class ServerSettings(_Model):
    #: The server's name (in logs, metrics and health).
    name: str = Field(pattern=_NAME)
    #: Its AMI address (manager.conf `bindaddr`).
    host: str = "127.0.0.1"
    #: Its AMI port (manager.conf `port`).
    port: int = Field(default=5038, ge=1, le=65535)
    #: The AMI account (the `[volna]` section of manager.conf).
    username: str = Field(min_length=1, max_length=80)
    #: The account's secret inline (prefer `secret_file`).
    secret: SecretStr | None = None
    #: A file holding the secret, read at each login (rewrite it to rotate the secret).
    secret_file: Path | None = None
    #: `md5`: Challenge/MD5 login; `plain` sends the secret.
    auth: Literal["md5", "plain"] = "md5"
    trunks: list[TrunkSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _has_secret(self) -> ServerSettings:
        if self.secret is None and self.secret_file is None:
            raise ValueError(f"servers.{self.name}: secret or secret_file is required")
        return self

    def read_secret(self) -> str:
        if self.secret_file is not None:
            try:
                return self.secret_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"servers.{self.name}.secret_file {self.secret_file}: {exc.strerror}") from None
        return self.secret.get_secret_value() if self.secret is not None else ""


class AmiSettings(_Model):
    """The Asterisk servers (``[[channels.ivr.connector.servers]]``), each with its AMI account and its
    trunks (``[[channels.ivr.connector.servers.trunks]]``), and how calls are followed."""

    servers: list[ServerSettings] = Field(min_length=1)
    #: The Originate's `Timeout`: how long a call rings (a scenario's `ivr.ring_timeout_s` wins).
    ring_timeout_s: float = Field(default=30.0, ge=1, le=300)
    #: Past the ring timeout and the script's `max_duration_s`, the connector hangs the call up itself.
    hangup_margin_s: float = Field(default=30.0, ge=0)
    #: The Login `Events` mask: `system` for Shutdown/FullyBooted, `agent` for the operator queues' events; no
    #: VarSet/Newexten on the wire.
    events: str = Field(default="call,user,system,agent", pattern=r"^[a-z,]+$")
    #: `ChannelId` = `<prefix>-<20 hex of the attempt key>`: how every dispatcher recognises Volna's calls.
    channel_id_prefix: str = Field(default="volna", pattern=r"^[a-z][a-z0-9]{0,15}$")
    #: Also report calls other dispatcher processes originated (their events reach every session).
    follow_foreign: bool = True
    #: Never more than a trunk's `max_concurrent` own calls from this process, whatever Redis says.
    local_guard: bool = True
    #: Every AMI action's answer (the Originate's "queued" included) within this, else the link is bad.
    action_timeout_s: float = Field(default=5.0, gt=0)
    #: Connecting and logging in to AMI.
    connect_timeout_s: float = Field(default=5.0, gt=0)
    #: A `Ping` action this often on an idle link.
    ping_interval_s: float = Field(default=10.0, gt=0)
    #: No `Pong` in time: the link is dead, reconnect.
    ping_timeout_s: float = Field(default=5.0, gt=0)
    #: First wait before reconnecting; doubles up to `reconnect_max_s`, with jitter.
    reconnect_min_s: float = Field(default=0.5, gt=0)
    #: Longest wait between reconnects.
    reconnect_max_s: float = Field(default=30.0, gt=0)
    #: After a hang-up, wait this long for a missing piece (the other leg, the response).
    settle_s: float = Field(default=1.0, ge=0)
    #: After our `Hangup` action, give up waiting for the Hangup event after this.
    hangup_wait_s: float = Field(default=10.0, gt=0)
    #: The timers' resolution (settle, maximum duration, hang-up wait).
    tick_s: float = Field(default=0.25, gt=0, le=5)
    #: On close, wait this long for own calls in flight to end (and report them); the rest are
    #: reported by the processes following them, or end ``unknown`` at the core's final timeout.
    close_drain_s: float = Field(default=5.0, ge=0)
    #: `Retry` after this while a server is down, restarting or refusing, or a trunk is full.
    retry_delay_s: float = Field(default=5.0, gt=0)
    #: After a relogin to an Asterisk that was shutting down, originate again when ``FullyBooted``
    #: comes — or after this long, for an account whose manager.conf ``read`` lacks ``system``.
    boot_wait_s: float = Field(default=10.0, gt=0)
    #: Operator queues: read with ``QueueSummary`` this often; a state older than ``queue_stale_s``
    #: is unknown (no operator is offered).
    queue_poll_s: float = Field(default=2.0, gt=0, le=60)
    #: A queue state older than this is unknown: no operator is offered.
    queue_stale_s: float = Field(default=10.0, gt=0)
    #: The recording's format (``MixMonitor``'s file extension): wav (PCM), gsm, wav49, ogg …
    recording_format: str = Field(default="wav", pattern=r"^(wav|WAV|wav49|gsm|ogg|sln|ulaw|alaw|g722)$")
    #: Contexts whose new channels are debtors calling back (the compiled `volna-inbound`): each becomes an
    #: `inbound_call` record.
    inbound_contexts: list[str] = Field(default_factory=list)
    #: Only calls to these DIDs (`Exten`) count as inbound; empty: any.
    inbound_dids: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AmiSettings:
        servers = [s.name for s in self.servers]
        trunks = [t.name for s in self.servers for t in s.trunks]
        if len(set(servers)) != len(servers):
            raise ValueError("servers: names must be unique")
        if len(set(trunks)) != len(trunks):
            raise ValueError("trunks: names must be unique")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s is below reconnect_min_s")
        return self
