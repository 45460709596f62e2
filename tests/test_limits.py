"""Limits that protect the service, one test per limit (the security checks are in
``tests/test_security.py``).

Request bodies (webhooks and API: 413 before the body is read), task lines (64 KiB), a slow
webhook sink (503 after ``sink_timeout_s``), slow clients (408 after ``body_read_timeout_s``),
concurrent webhook requests and uploads (429), the upload rate (paced), in-memory queues (the
dispatcher's ``max_inflight`` from ``claim_ahead_s``; the SMPP window), and Redis at ``maxmemory``
with ``noeviction``.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from connectors.messengers.endpoint import WebhookSecrets, make_webhook_app
from engine.api.app import ApiOptions
from engine.api.auth import create_token
from engine.calendar.clock import ScaledClock
from engine.context import Context
from engine.errors import StoreFull
from engine.intake.lines import MAX_LINE_BYTES
from engine.intake.loader import Intake
from engine.metrics.registry import Metrics
from engine.store.connection import make_redis
from engine.store.localredis import RedisServer, free_port
from tests.fakes import RecordingConnector
from tests.harness import context, final_count, lines_of, load_wave, make_settings, running, task, wait_until
from tests.test_api_helpers import api_client, serving
from tests.test_webhooks import webhook_count

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
SECRETS = WebhookSecrets(whatsapp_app_secrets=("app-secret",), whatsapp_verify_token="verify",
                         viber_token="cb-token", viber_hmac_secret="hmac-secret")


async def _nothing(_: Any) -> None:
    return None


async def _raw_request(port: int, head: bytes, body: bytes = b"", wait_s: float = 5.0) -> tuple[bytes, float]:
    """Write ``head`` (and ``body``), then read what the server answers within ``wait_s`` (b"" if
    nothing came); (answer, seconds it took)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(head + body)
        await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.read(4096), wait_s)
        except TimeoutError:
            answer = b""
        return answer, time.monotonic() - started
    finally:
        writer.close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# ---- request bodies ------------------------------------------------------------------------------


async def test_a_webhook_body_announced_too_big_is_refused_before_it_is_sent() -> None:
    """``Content-Length`` over ``max_body_bytes``: 413 at once, while the client has sent no body
    at all (nothing is read, nothing buffered); the connection is closed rather than drained."""
    app = make_webhook_app(_nothing, SECRETS, max_body_bytes=256 * 1024)
    async with serving(app) as url:
        head = (b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-Hub-Signature-256: sha256=00\r\nContent-Length: 50000000\r\n\r\n")
        answer, _ = await _raw_request(_port(url), head)
    assert answer.startswith(b"HTTP/1.1 413")  # answered without a byte of the body sent


async def test_an_api_body_announced_too_big_is_refused_before_it_is_sent(redis: aioredis.Redis,
                                                                         redis_url: str) -> None:
    """The same for the API's JSON bodies (``api.max_body_bytes``) and uploads (``max_upload_bytes``);
    without a valid token the answer is 401, also before any body is read."""
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    token = await create_token(redis, "admin", "limits")
    options = ApiOptions(max_body_bytes=4096, max_upload_bytes=64 * 1024)
    async with api_client(ctx, options=options) as api:
        port = _port(api.base)
        for path, ctype in (("/api/v1/campaigns", "application/json"), ("/api/v1/waves/w1/tasks",
                                                                         "application/x-ndjson")):
            head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: {ctype}\r\nContent-Length: 50000000\r\n\r\n").encode()
            answer, _ = await _raw_request(port, head)
            assert answer.startswith(b"HTTP/1.1 413"), (path, answer[:200])
        anonymous = (b"POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 50000000\r\n\r\n")
        answer, _ = await _raw_request(port, anonymous)
        assert answer.startswith(b"HTTP/1.1 401")
        # Not JSON: 415 before the body is read.
        plain = (f"POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                 f"Content-Type: text/plain\r\nContent-Length: 3000\r\n\r\n").encode()
        answer, _ = await _raw_request(port, plain)
        assert answer.startswith(b"HTTP/1.1 415")


# ---- task lines ----------------------------------------------------------------------------------


async def test_a_line_over_64_kib_is_rejected_with_its_number_and_the_rest_loads(redis: aioredis.Redis,
                                                                                 redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    long_task = task(2, vars={"note": "x" * MAX_LINE_BYTES})
    report = await Intake(ctx).load("w1", lines_of([task(1), long_task, task(3)]))
    assert (report.accepted, report.rejected) == (2, 1)
    assert report.rejections[0].line_no == 2
    assert report.rejections[0].reason == f"line is longer than {MAX_LINE_BYTES} bytes"
    assert MAX_LINE_BYTES == 64 * 1024


# ---- slow sinks and slow clients -----------------------------------------------------------------


async def test_a_webhook_whose_sink_hangs_is_answered_503_in_time() -> None:
    """Recording a webhook waits at most ``sink_timeout_s``; then 503 (the provider redelivers) and the
    endpoint keeps serving."""
    async def hanging(_: Any) -> None:
        await asyncio.sleep(3600)

    from connectors.messengers.webhooks import sign_sha256

    app = make_webhook_app(hanging, SECRETS, sink_timeout_s=0.3)
    body = json.dumps({"message_status": "delivered", "request_id": "r1"}).encode()
    headers = {"Authorization": "cb-token", "X-Volna-Signature": sign_sha256("hmac-secret", body),
               "Content-Type": "application/json"}
    async with serving(app) as url, aiohttp.ClientSession() as session:
        started = time.monotonic()
        answers = await asyncio.gather(*(session.post(url + "/webhooks/viber", data=body, headers=headers)
                                         for _ in range(5)))
        assert [a.status for a in answers] == [503] * 5 and time.monotonic() - started < 3.0
        for a in answers:
            a.release()


@pytest.mark.timeout(60)
async def test_a_client_that_stalls_its_body_is_cut_off(redis: aioredis.Redis, redis_url: str) -> None:
    """A client sends the headers and a few bytes of the announced body, then nothing (slowloris):
    the webhook endpoint and the API's JSON bodies answer 408 after ``body_read_timeout_s`` and
    close the connection; an upload that stops sending answers 408 with the counts of the whole
    lines it loaded. The servers keep serving. (Stalled *headers* never reach a handler: aiohttp
    cannot bound them; docs/reliability.md says to put a proxy with ``client_header_timeout`` in front.)"""
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    token = await create_token(redis, "admin", "limits")
    metrics = Metrics(process=False)
    hooks = make_webhook_app(_nothing, SECRETS, body_read_timeout_s=0.5, metrics=metrics)
    lines = b"".join(json.dumps(task(n)).encode() + b"\n" for n in range(3))
    async with serving(hooks) as hook_url, api_client(ctx, options=ApiOptions(body_read_timeout_s=0.5)) as api:
        stalls = [
            (_port(hook_url), b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=00\r\n"
                              b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"entry\""),
            (_port(api.base), f"POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                              f"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"cam".encode()),
            (_port(api.base), f"POST /api/v1/waves/w1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                              f"Content-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n".encode()
                              + lines + b'{"task_id": "t-half'),
        ]
        answers = await asyncio.gather(*(_raw_request(port, data, wait_s=20.0) for port, data in stalls))
        for answer, _ in answers:
            assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
        upload = json.loads(answers[2][0].split(b"\r\n\r\n", 1)[1])
        assert (upload["accepted"], upload["lines"]) == (3, 3) and "nothing arrived" in upload["error"]
        assert webhook_count(metrics, "stalled", "whatsapp") == 1
        # Still serving.
        view = await api.get("/api/v1/waves/w1")
        assert view.status == 200 and view.body["counts"]["total"] == 3, view.body


async def test_webhook_requests_beyond_max_concurrent_are_refused_at_once() -> None:
    """``max_concurrent`` requests inside (here their sink hangs): one more is answered 429 with
    ``Retry-After`` without waiting, and counted; once they leave, requests are served again."""
    from connectors.messengers.webhooks import sign_sha256

    release = asyncio.Event()
    entered: list[Any] = []
    events: list[Any] = []

    async def slow(event: Any) -> None:
        entered.append(event)
        await release.wait()
        events.append(event)

    metrics = Metrics(process=False)
    app = make_webhook_app(slow, SECRETS, max_concurrent=2, metrics=metrics)
    body = json.dumps({"message_status": "delivered", "request_id": "r1"}).encode()
    headers = {"Authorization": "cb-token", "X-Volna-Signature": sign_sha256("hmac-secret", body),
               "Content-Type": "application/json"}
    async with serving(app) as url, aiohttp.ClientSession() as session:
        held = [asyncio.create_task(session.post(url + "/webhooks/viber", data=body, headers=headers))
                for _ in range(2)]
        await wait_until(lambda: _true(len(entered) == 2), timeout_s=10)
        async with session.post(url + "/webhooks/viber", data=body, headers=headers) as refused:
            assert refused.status == 429 and refused.headers["Retry-After"] == "1"
        release.set()
        assert [(await t).status for t in held] == [200, 200]
        async with session.post(url + "/webhooks/viber", data=body, headers=headers) as again:
            assert again.status == 200
    assert (webhook_count(metrics, "overloaded", "viber"), webhook_count(metrics, "accepted", "viber"), len(events)) \
        == (1, 3, 3)


async def test_uploads_beyond_max_concurrent_are_refused_and_each_is_paced(redis: aioredis.Redis,
                                                                          redis_url: str) -> None:
    """``max_concurrent_uploads`` uploads are being read: one more is answered 429 with
    ``Retry-After`` and loads nothing; an upload is read at ``upload_lines_per_s`` at most (the
    client is slowed, nothing is refused), so a bulk load cannot starve the dispatchers."""
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    options = ApiOptions(max_concurrent_uploads=1, upload_lines_per_s=1000.0)
    body = b"".join(json.dumps(task(n)).encode() + b"\n" for n in range(2000))
    async with api_client(ctx, options=options) as api:
        started = time.monotonic()
        first = asyncio.create_task(api.post("/api/v1/waves/w1/tasks", data=body,
                                             headers={"Content-Type": "application/x-ndjson"}))
        await wait_until(lambda: _loaded_some(ctx), timeout_s=10)
        refused = await api.post("/api/v1/waves/w1/tasks", data=b'{"x": 1}\n',
                                 headers={"Content-Type": "application/x-ndjson"})
        assert refused.status == 429 and refused.headers["Retry-After"] == "5"
        assert "uploads are being loaded" in refused.body["error"]
        answer = await first
        assert answer.status == 200 and answer.body["accepted"] == 2000, answer.body
        # 2 000 lines at 1 000 lines/s cannot be read in less than about 2 s (a lower bound: the pace
        # is a sleep, so a slow machine only makes it longer).
        assert time.monotonic() - started >= 1.8


async def _true(value: bool) -> bool:
    return value


async def _loaded_some(ctx: Context) -> bool:
    return int((await ctx.waves.counts("w1")).get("total", 0)) > 0


# ---- in-memory queues ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_a_dispatcher_holds_at_most_max_inflight_from_claim_ahead(redis: aioredis.Redis, redis_url: str) -> None:
    """A slow gateway must not make a process hoard the queue: a channel loop keeps at most
    ``min(max_inflight, max(batch_size, rate × claim_ahead_s))`` attempts between claim and result
    (here max(20, 50 × 1.0) = 50), however many tasks wait."""
    settings = make_settings(redis_url, dispatcher={"batch_size": 20, "claim_ahead_s": 1.0, "max_inflight": 2000})
    ctx = context(settings, ScaledClock(NOON_MSK), redis)
    await load_wave(ctx, "w1", DAY, [task(n) for n in range(400)])
    connector = RecordingConnector(rate_per_s=50, max_concurrent=10_000, delay_s=0.5)
    high = 0
    async with running(ctx, [connector]) as runner:
        assert runner.loops[0].max_inflight == 50
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            high = max(high, len(runner.loops[0].inflight.jobs), int((await ctx.waves.counts("w1")).get("leased", 0)))
            await asyncio.sleep(0.02)
    assert 20 <= high <= 50


async def test_the_smpp_window_bounds_outstanding_submits() -> None:
    """``window`` submit_sm per bind stay unanswered at most: an SMSC that answers slowly and refuses
    anything past its own window of 3 (ESME_RMSGQFUL) never has to refuse a client configured with
    3 — and does refuse one configured with 6 (so the check would see a broken window)."""
    from simulators.smsc import Knobs
    from tests.test_smpp_support import request
    from tests.test_smpp_support import running as smpp_running

    for window, refused in ((3, False), (6, True)):
        knobs = Knobs(window=3, submit_latency_min_s=0.1, submit_latency_max_s=0.1, receipts=False)
        async with smpp_running(knobs, window=window, binds=1, rate_per_s=1000.0,
                                throttle={"retry_min_s": 0.01, "retry_max_s": 0.05}) as (sim, conn, _):
            results = await asyncio.gather(*(conn.send(request(i, f"window test {i}")) for i in range(24)))
            assert all(type(r).__name__ == "Accepted" for r in results), results
            assert (sim.stats.queue_full > 0) is refused, sim.stats.queue_full
            assert sim.stats.messages == 24


# ---- Redis full ----------------------------------------------------------------------------------


async def _fill_until_refused(ctx: Context) -> tuple[int, BaseException | None]:
    loaded, error = 0, None
    try:
        for start in range(0, 200_000, 500):
            report = await Intake(ctx).load("w1", lines_of([task(start + i) for i in range(500)]))
            loaded += report.accepted
    except Exception as exc:
        error = exc
    return loaded, error


@pytest.fixture
async def full_redis(tmp_path: Path) -> Any:
    server = RedisServer(port=free_port(), directory=tmp_path / "redis", extra=["--maxmemory", "2mb"]).start()
    client = make_redis(make_settings(server.url).redis)
    try:
        ctx = context(make_settings(server.url), ScaledClock(NOON_MSK), client)
        await ctx.waves.create("w1", "c1", DAY)
        yield ctx
    finally:
        await client.aclose()
        server.cleanup()


@pytest.mark.timeout(60)
async def test_redis_full_loses_nothing_already_queued(full_redis: Context) -> None:
    """At ``maxmemory`` with ``noeviction`` a batch of the intake is refused whole (the script is denied
    at its first write, before it changed anything): every task loaded before is still queued, the
    counters agree, and once memory is freed the wave runs them all."""
    ctx = full_redis
    loaded, error = await _fill_until_refused(ctx)
    assert error is not None and loaded > 0
    counts = await ctx.waves.counts("w1")
    from engine.store.keys import WaveKeys

    wk = WaveKeys("w1")
    assert counts["total"] == counts["queued"] == loaded == await ctx.redis.hlen(wk.tasks) \
        == await ctx.redis.zcard(wk.queue("sms"))
    await ctx.redis.config_set("maxmemory", "0")  # the operator adds memory
    await ctx.waves.change("w1", "start")
    async with running(ctx, [RecordingConnector()]):
        await wait_until(lambda: _all_final(ctx, loaded), timeout_s=40)


async def _all_final(ctx: Context, n: int) -> bool:
    return await final_count(ctx, "w1") >= n


@pytest.mark.timeout(60)
async def test_redis_full_makes_intake_fail_with_a_clear_error(full_redis: Context) -> None:
    """``redis.exceptions.OutOfMemoryError`` used to leak out of the intake (a traceback from
    ``volna load``, a 500 from the API). Now it is our ``StoreFull`` (an ``IntakeError``): it says
    Redis is full, how much was loaded and from which line nothing was written."""
    loaded, error = await _fill_until_refused(full_redis)
    assert isinstance(error, StoreFull), repr(error)
    assert "out of memory" in str(error).lower() and "0 tasks loaded, stopped at line 1," in str(error)
    assert loaded > 0
