"""Shared aiohttp plumbing of the HTTP gateway connectors: one :class:`GatewayClient` per account.

A client owns one ``aiohttp.ClientSession`` (its own connection pool, connect and
read timeouts), the account's health, an account-wide throttle and the retry loop
of a send. The connectors give the loop one *attempt* (build the request, send it,
classify the reply) and get a :data:`~engine.port.SendResult` back.

What may be sent again — guarantee 4, "at most once on the wire":

* nothing reached the peer (refused or timed-out connect, DNS, TLS, no free pooled
  connection in time) → :class:`NotSent`, retried with backoff and jitter;
* the peer answered that it did not take the message: 429 (``Retry-After`` honoured,
  account-wide, since the limit is the account's), a status in
  ``http.retry_statuses`` (500, 503 by default: the API's own "failed, try again"),
  and the API-specific throttling codes the connector maps to :class:`Again`;
* the request was written and no answer came back (read timeout, disconnect, a
  502/504 from a proxy that lost the API's answer) → :class:`MaybeSent`, a
  :class:`~engine.errors.ConnectorError`: the core records ``unknown`` or resends
  when the channel's ``resend_unconfirmed`` says so. Neither API offers an
  idempotency key for sends (Meta ``POST /{Version}/{Phone-Number-ID}/messages``,
  Route Mobile ``POST /vbs/api/v2/send``: both specs checked), so a blind resend
  could deliver the message twice.

When the retries or ``retry_budget_s`` run out on a safe failure, the send answers
``Retry(delay_s)`` (nothing was accepted; the core requeues the same attempt).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from types import TracebackType
from typing import Any

import aiohttp

from connectors.messengers.settings import HttpSettings
from engine.backoff import Backoff
from engine.errors import ConnectorError
from engine.port import ConnectorMetrics, NoMetrics, Retry, SendResult

log = logging.getLogger("connectors.messengers")

USER_AGENT = "volna/0.1.0"
_TEXT_KEPT = 500


class NotSent(ConnectorError):
    """Nothing reached the peer: the same request may be sent again."""


class MaybeSent(ConnectorError):
    """The request may have been accepted: never resent blindly (guarantee 4)."""


class ClientState(StrEnum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    #: The parsed JSON body, or ``None`` when the body is empty or not JSON.
    data: Any
    retry_after_s: float | None
    #: The start of the raw body (for error texts).
    text: str


@dataclass(frozen=True, slots=True)
class Done:
    """The attempt has its result (accepted, or a final outcome)."""

    result: SendResult


@dataclass(frozen=True, slots=True)
class Again:
    """The peer did not take it: send the same request again after ``delay_s`` (backoff when ``None``)."""

    reason: str
    delay_s: float | None = None
    #: The limit is the account's (429, app/WABA rate codes): every send on it waits.
    account_wide: bool = False


@dataclass(frozen=True, slots=True)
class Unhealthy:
    """The account cannot send (credentials refused): nothing more goes through it until fixed."""

    reason: str


Decision = Done | Again | Unhealthy


def parse_retry_after(value: str | None, ceiling_s: float) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), clipped to ``[0, ceiling_s]``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), ceiling_s)


class GatewayClient:
    """One gateway account: session, health, throttle and the retry loop of its sends."""

    def __init__(
        self,
        name: str,
        base_url: str,
        http: HttpSettings,
        *,
        headers: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.http = http
        #: The process's metrics (the connector passes its own on before ``open``).
        self.metrics: ConnectorMetrics = NoMetrics()
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._state = ClientState.NEW
        self._healthy = True
        self.unhealthy_reason = ""
        self._throttled_until = 0.0
        self._probe: Callable[[], Awaitable[bool]] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        # The outer deadline of one exchange: the connect and read timeouts fire first.
        self._total_s = http.connect_timeout_s + http.read_timeout_s + 2.0

    def count(self, event: str) -> None:
        self.metrics.event("gateway", self.name, event)

    # ---- lifecycle (the one place the state changes) ---------------------------------------

    @property
    def state(self) -> ClientState:
        return self._state

    def _set_state(self, state: ClientState) -> None:
        log.debug("gateway %s: %s → %s", self.name, self._state, state)
        self._state = state

    async def open(self) -> None:
        if self._state is not ClientState.NEW:
            return
        connector = aiohttp.TCPConnector(
            limit=self.http.pool_size, keepalive_timeout=self.http.keepalive_s, ttl_dns_cache=300
        )
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.http.connect_timeout_s, sock_read=self.http.read_timeout_s
        )
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=self._headers)
        self._set_state(ClientState.OPEN)
        self._report()

    async def close(self) -> None:
        if self._state is ClientState.CLOSED:
            return
        self._set_state(ClientState.CLOSED)
        if self._probe_task is not None:
            self._probe_task.cancel()
            await asyncio.gather(self._probe_task, return_exceptions=True)
            self._probe_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> GatewayClient:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---- health ----------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self._healthy

    def set_probe(self, probe: Callable[[], Awaitable[bool]]) -> None:
        """``probe()`` re-reads credentials and makes a cheap authenticated call; True = usable again."""
        self._probe = probe

    def mark_unhealthy(self, reason: str) -> None:
        if self._healthy:
            log.error("gateway account %s unhealthy, sending stops: %s", self.name, reason)
        self._healthy = False
        self.unhealthy_reason = reason
        self._report()
        if self._probe is not None and self._state is ClientState.OPEN and (
            self._probe_task is None or self._probe_task.done()
        ):
            self._probe_task = asyncio.create_task(self._probe_loop(), name=f"probe-{self.name}")

    def mark_healthy(self) -> None:
        if not self._healthy:
            log.warning("gateway account %s healthy again", self.name)
        self._healthy = True
        self.unhealthy_reason = ""
        self._report()

    def _report(self) -> None:
        """The account up (usable) or down, for the console's health page (one "session" per account)."""
        self.metrics.set_connections("gateway", self.name, up=1 if self._healthy else 0, configured=1)

    async def _probe_loop(self) -> None:
        assert self._probe is not None
        while not self._healthy and self._state is ClientState.OPEN:
            await asyncio.sleep(self.http.health_probe_s)
            try:
                ok = await self._probe()
            except Exception as exc:  # a probe failing is the expected case; keep probing
                log.info("gateway %s probe failed: %s", self.name, exc)
                ok = False
            if ok:
                self.mark_healthy()

    # ---- throttle and backoff --------------------------------------------------------------

    def throttle(self, delay_s: float) -> None:
        self._throttled_until = max(self._throttled_until, time.monotonic() + delay_s)

    def throttle_left(self) -> float:
        return max(0.0, self._throttled_until - time.monotonic())

    def backoff_s(self, retry_no: int) -> float:
        return Backoff(self.http.backoff_base_s, self.http.backoff_max_s).delay_s(retry_no, self._rng)

    # ---- one exchange ----------------------------------------------------------------------

    async def exchange(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """One request and its reply; raises :class:`NotSent` or :class:`MaybeSent`, nothing else."""
        session = self._session
        if session is None or self._state is not ClientState.OPEN:
            raise NotSent(f"gateway {self.name}: client is {self._state}")
        self.count("requests")
        try:
            async with asyncio.timeout(self._total_s):
                async with session.request(
                    method, self.base_url + path, json=json_body, headers=headers, params=params
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            self.count("not_sent")
            raise NotSent(f"gateway {self.name}: cannot connect ({type(exc).__name__})") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.count("unknown")
            raise MaybeSent(
                f"gateway {self.name}: no answer after the request was sent ({type(exc).__name__})"
            ) from None
        self.metrics.gateway_response(self.name, status)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        return HttpReply(
            status=status,
            data=data,
            retry_after_s=parse_retry_after(retry_after, self.http.max_retry_after_s),
            text=raw[:_TEXT_KEPT].decode("utf-8", "replace"),
        )

    # ---- the retry loop of one send --------------------------------------------------------

    async def run(self, attempt: Callable[[], Awaitable[Decision]]) -> SendResult:
        """Call ``attempt`` until it is done, with backoff on the safe failures.

        :class:`MaybeSent` from ``attempt`` propagates (the point of no return was passed).
        """
        deadline = time.monotonic() + self.http.retry_budget_s
        reason = "rate limited (Retry-After)"
        for retry_no in range(self.http.max_attempts):
            if not self._healthy:
                return self._hand_back(self.http.unhealthy_retry_s, f"account unhealthy: {self.unhealthy_reason}")
            wait = self.throttle_left()
            if wait > 0:
                # The waiters of one 429 do not all wake at once: spread them over a quarter of the wait.
                wait += self._rng.uniform(0.0, max(self.http.backoff_base_s, wait * 0.25))
                if time.monotonic() + wait > deadline:
                    return self._hand_back(wait, f"account throttled: {reason}")
                await asyncio.sleep(wait)
            try:
                decision = await attempt()
            except NotSent as exc:
                decision = Again(str(exc))
            if isinstance(decision, Done):
                return decision.result
            if isinstance(decision, Unhealthy):
                self.mark_unhealthy(decision.reason)
                return self._hand_back(self.http.unhealthy_retry_s, f"account unhealthy: {decision.reason}")
            reason = decision.reason
            delay = decision.delay_s if decision.delay_s is not None else self.backoff_s(retry_no)
            if decision.account_wide:
                self.count("throttled")
                self.metrics.throttled("gateway", self.name)
                self.throttle(delay)
            if retry_no == self.http.max_attempts - 1 or time.monotonic() + delay > deadline:
                return self._hand_back(delay, reason)
            self.count("retries")
            if not decision.account_wide:  # the account-wide wait happens at the top of the loop
                await asyncio.sleep(delay)
        return self._hand_back(self.backoff_s(self.http.max_attempts), reason)

    def _hand_back(self, delay_s: float, reason: str) -> Retry:
        self.count("handed_back")
        return Retry(delay_s=max(delay_s, self.http.backoff_base_s), reason=f"{self.name}: {reason}")
