"""Campaigns, waves, uploads and the stop-list over HTTP: answers, limits, errors."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import aiohttp
import redis.asyncio as aioredis

from engine.api.app import ApiOptions, make_app
from engine.calendar.clock import ScaledClock
from engine.config.settings import RedisSettings
from engine.context import Context
from engine.domain.outcomes import Channel
from engine.store.connection import make_redis
from tests.fakes import RecordingConnector
from tests.harness import context, final_count, load_wave, make_settings, running, task, wait_until
from tests.test_api_helpers import api_client, serving

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
NDJSON = {"Content-Type": "application/x-ndjson"}


def jsonl(*rows: object) -> bytes:
    return b"".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)).encode() + b"\n" for r in rows)


async def test_campaigns_and_waves(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    async with api_client(ctx, "manager") as api:
        made = await api.post("/api/v1/campaigns", json_body={"campaign_id": "c1", "title": "Мосэнергосбыт"})
        assert made.status == 201 and made.body["created_by"] == "test-manager"
        assert (await api.post("/api/v1/campaigns", json_body={"campaign_id": "c1"})).status == 409
        wave = await api.post("/api/v1/waves", json_body={"wave_id": "w1", "campaign_id": "c1", "day": "2026-12-01"})
        assert wave.status == 201 and wave.body["state"] == "created" and wave.body["actions"] == ["start", "stop"]
        assert wave.body["history"]["created_by"] == "test-manager"
        await api.post("/api/v1/waves", json_body={"wave_id": "w2", "campaign_id": "c2", "day": "2026-12-02"})
        dup = await api.post("/api/v1/waves", json_body={"wave_id": "w1", "campaign_id": "c1", "day": "2026-12-01"})
        assert dup.status == 409 and "already exists" in dup.body["error"]

        listed = await api.get("/api/v1/waves", params={"day": "2026-12-01"})
        assert [w["wave_id"] for w in listed.body["waves"]] == ["w1"]
        assert [w["wave_id"] for w in (await api.get("/api/v1/waves")).body["waves"]] == ["w1", "w2"]
        assert [w["wave_id"] for w in (await api.get("/api/v1/waves", params={"campaign": "c2"})).body["waves"]
                ] == ["w2"]
        assert (await api.get("/api/v1/waves", params={"day": "tomorrow"})).status == 400
        campaign = await api.get("/api/v1/campaigns/c1")
        assert campaign.body["title"] == "Мосэнергосбыт" and [w["wave_id"] for w in campaign.body["waves"]] == ["w1"]
        assert {c["campaign_id"] for c in (await api.get("/api/v1/campaigns")).body["campaigns"]} == {"c1", "c2"}
        assert (await api.get("/api/v1/campaigns/nope")).status == 404

        assert (await api.get("/api/v1/waves/nope")).status == 404
        assert (await api.post("/api/v1/waves/nope/start")).status == 404
        assert (await api.post("/api/v1/waves/w1/pause")).body == {
            "error": "cannot pause wave 'w1': it is created"}
        assert (await api.post("/api/v1/waves/w1/start")).status == 200
        assert (await api.post("/api/v1/waves/w1/start")).status == 409
        assert (await api.post("/api/v1/waves/w1/launch")).status == 404


async def test_json_bodies_are_capped_and_checked(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    async with api_client(ctx, "manager", options=ApiOptions(max_body_bytes=2048)) as api:
        bad = await api.post("/api/v1/waves", data=b'{"wave_id": "w1", ', headers={"Content-Type": "application/json"})
        assert bad.status == 400 and bad.body["error"].startswith("malformed JSON: ") and "column" in bad.body["error"]
        assert (await api.post("/api/v1/waves", data=b"[1]", headers={"Content-Type": "application/json"})
                ).body == {"error": "the body must be a JSON object"}
        invalid = await api.post("/api/v1/waves", json_body={"wave_id": "w{1}", "campaign_id": "c1", "day": "x"})
        assert invalid.status == 400 and "wave_id" in invalid.body["error"] and "day" in invalid.body["error"]
        extra = await api.post("/api/v1/waves", json_body={"wave_id": "w1", "campaign_id": "c", "day": "2026-12-01",
                                                           "evil": 1})
        assert extra.status == 400 and "evil" in extra.body["error"]
        big = await api.post("/api/v1/waves", json_body={"wave_id": "w1", "campaign_id": "c1", "day": "2026-12-01",
                                                         "pad": "x" * 5000})
        assert big.status == 413 and "2048" in big.body["error"]

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 1000

        chunked = await api.post("/api/v1/waves", data=chunks(), headers={"Content-Type": "application/json"})
        assert chunked.status == 413
        assert (await api.post("/api/v1/waves", data=b"wave_id=w1", headers={
            "Content-Type": "application/x-www-form-urlencoded"})).status == 415
        assert (await api.get("/api/v1/nothing-here")).status == 404
        wrong = await api.call("PUT", "/api/v1/waves")
        assert wrong.status == 405 and "GET" in wrong.headers["Allow"] and "error" in wrong.body


async def test_upload_jsonl_and_csv(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    async with api_client(ctx, "planner") as api:
        body = jsonl(task(1), task(2), "{not json", task(3, phone="12"), task(1), "", task(4))
        up = await api.post("/api/v1/waves/w1/tasks", data=body, headers=NDJSON)
        assert up.status == 200, up.body
        assert {k: up.body[k] for k in ("accepted", "already_loaded", "rejected", "lines", "format")} == {
            "accepted": 3, "already_loaded": 1, "rejected": 2, "lines": 7, "format": "jsonl"}
        assert [r["line"] for r in up.body["rejections"]] == [3, 4]
        assert up.body["rejections"][0]["reason"].startswith("malformed JSON")
        assert "phone" in up.body["rejections"][1]["reason"] and not up.body["rejections_truncated"]
        again = await api.post("/api/v1/waves/w1/tasks", data=body, headers=NDJSON)
        assert again.body["accepted"] == 0 and again.body["already_loaded"] == 4

        csv_body = ("task_id,debtor_id,channel,phone,tz,scenario,var_creditor,var_account,var_amount,var_due_date,"
                    "var_pay_url,var_address,var_phone_back\n"
                    "c1,D1,sms,8 916 123-45-67,Europe/Moscow,soft_reminder,МЭС,ЛС1,100.5,10.12.2026,"
                    "https://pay.example/x,ул. Ленина,88001234567\n"
                    "c2,D2,fax,8 916 123-45-68,Europe/Moscow,soft_reminder,МЭС,ЛС2,1,10.12.2026,https://p,x,8800\n")
        up = await api.post("/api/v1/waves/w1/tasks", data=csv_body.encode(), headers={"Content-Type": "text/csv"})
        assert (up.body["accepted"], up.body["rejected"], up.body["format"]) == (1, 1, "csv")
        assert up.body["rejections"][0]["line"] == 3 and "channel" in up.body["rejections"][0]["reason"]
        # ?format= wins over the Content-Type; gzip is undone on the way in
        up = await api.post("/api/v1/waves/w1/tasks", params={"format": "jsonl"}, data=gzip.compress(jsonl(task(9))),
                            headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
        assert up.status == 200 and up.body["accepted"] == 1
        assert (await api.post("/api/v1/waves/w1/tasks", data=b"{}", headers={"Content-Type": "text/plain"})
                ).status == 415
        assert (await api.post("/api/v1/waves/w1/tasks", params={"format": "xml"}, data=b"x")).status == 400
        assert (await api.post("/api/v1/waves/nope/tasks", data=jsonl(task(1)), headers=NDJSON)).status == 404
    assert (await ctx.waves.counts("w1"))["total"] == 5


async def test_upload_rejections_are_capped_and_phones_masked(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    async with api_client(ctx, "planner", options=ApiOptions(rejections_listed=10)) as api:
        rows = [task(n, channel="telegram") for n in range(50)] + [task(100, wave_id="other")]
        up = await api.post("/api/v1/waves/w1/tasks", data=jsonl(*rows), headers=NDJSON)
        assert up.body["rejected"] == 51 and len(up.body["rejections"]) == 10 and up.body["rejections_truncated"]
        long_line = json.dumps(task(7, vars={"pad": "x" * 70_000}))
        up = await api.post("/api/v1/waves/w1/tasks", data=jsonl(long_line, task(8)), headers=NDJSON)
        assert (up.body["accepted"], up.body["rejected"], up.body["lines"]) == (1, 1, 2)
        assert "longer than" in up.body["rejections"][0]["reason"]


async def test_upload_limit(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    async with api_client(ctx, "planner", options=ApiOptions(max_upload_bytes=4096)) as api:
        whole = jsonl(*(task(n) for n in range(40)))
        assert (await api.post("/api/v1/waves/w1/tasks", data=whole, headers=NDJSON)).status == 413

        async def stream() -> AsyncIterator[bytes]:
            for n in range(40):
                yield jsonl(task(n))

        cut = await api.post("/api/v1/waves/w1/tasks", data=stream(), headers=NDJSON)
        assert cut.status == 413 and 0 < cut.body["accepted"] < 40 and cut.body["accepted"] == cut.body["lines"]
        assert (await ctx.waves.counts("w1"))["total"] == cut.body["accepted"]


async def test_upload_refused_for_a_stopped_wave(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    await ctx.waves.change("w1", "stop")
    async with api_client(ctx, "planner") as api:
        up = await api.post("/api/v1/waves/w1/tasks", data=jsonl(task(1)), headers=NDJSON)
        assert up.status == 409 and "stopped" in up.body["error"]


async def test_wave_view_while_running(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await load_wave(ctx, "w1", DAY, [task(n) for n in range(60)] + [task(100 + n, tz="Asia/Kamchatka")
                                                                     for n in range(5)])
    async with api_client(ctx, "viewer") as api:
        async with running(ctx, [RecordingConnector(channel=Channel.SMS)]):
            await wait_until(lambda: _final(ctx, 65))
            await wait_until(lambda: _completed(ctx))
        view = (await api.get("/api/v1/waves/w1")).body
    assert view["counts"]["total"] == 65 and view["outcomes"] == {"delivered": 60, "window_missed": 5}
    assert view["channels"]["sms"]["rate_per_min"] == 65.0 and view["rate_per_min"] > 0
    zones = {z["zone"]: z for z in view["zones"]}
    # 12:00 in Moscow is 21:00 in Kamchatka: its day's window is over, the next opens tomorrow 08:00
    assert zones["Europe/Moscow"]["open_now"] and zones["Europe/Moscow"]["tasks"] == 60
    kamchatka = zones["Asia/Kamchatka"]
    assert not kamchatka["open_now"] and kamchatka["opens_at_ms"] == NOON_MSK + 11 * 3600_000
    assert view["history"]["running_at"] >= NOON_MSK and view["history"]["running_by"] == "cli"
    assert view["state"] == "completed" and view["actions"] == []


async def _completed(ctx: Context) -> bool:
    return (await ctx.waves.get("w1")).state == "completed"


async def _final(ctx: Context, n: int) -> bool:
    return await final_count(ctx, "w1") >= n


async def test_stoplist(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    async with api_client(ctx, "manager") as api:
        added = await api.post("/api/v1/stoplist", json_body={"kind": "phone", "value": "8 916 123-45-67",
                                                              "reason": "wrong_number"})
        assert added.status == 201 and added.body["value"] == "+79161234567" and added.body["by"] == "test-manager"
        await api.post("/api/v1/stoplist", json_body={"kind": "debtor", "value": "D-77-1", "reason": "refused"})
        got = await api.get("/api/v1/stoplist/phone/+79161234567")
        assert got.status == 200 and got.body["reason"] == "wrong_number"
        assert (await api.get("/api/v1/stoplist/phone/89161234567")).status == 200
        assert (await api.get("/api/v1/stoplist/debtor/D-77-2")).status == 404
        bad = await api.post("/api/v1/stoplist", json_body={"kind": "phone", "value": "12345", "reason": "paid"})
        assert bad.status == 400 and "12345" not in json.dumps(bad.body)
        bad = await api.post("/api/v1/stoplist", json_body={"kind": "debtor", "value": "D", "reason": "angry"})
        assert bad.status == 400 and "reason" in bad.body["error"]
        page = await api.get("/api/v1/stoplist", params={"kind": "debtor"})
        assert [e["value"] for e in page.body["entries"]] == ["D-77-1"] and page.body["next"] is None
        assert (await api.delete("/api/v1/stoplist/phone/8 916 123-45-67")).body["removed"] is True
        assert (await api.delete("/api/v1/stoplist/phone/+79161234567")).status == 404
        assert (await ctx.stoplist.get("debtor", "D-77-1")) is not None
    audit = [fields for _, fields in await redis.xrange("volna:audit")]
    targets = [(a["what"], a["target"], a["status"]) for a in audit]
    assert ("stoplist.add", "phone:+7916***4567", "201") in targets
    assert ("stoplist.remove", "phone:+7916***4567", "200") in targets
    assert "+79161234567" not in json.dumps(audit)


async def test_health_and_readiness(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    bound = {"ok": True}

    async def smpp_bound() -> bool:
        return bound["ok"]

    async with api_client(ctx, "viewer", readiness={"smpp": smpp_bound}) as api:
        anon = api.as_(None)
        assert (await anon.get("/healthz")).body == {"status": "ok"}
        assert (await anon.get("/readyz")).body == {"ready": True, "checks": {"redis": True, "smpp": True}}
        bound["ok"] = False
        not_ready = await anon.get("/readyz")
        assert not_ready.status == 503 and not_ready.body["checks"] == {"redis": True, "smpp": False}
        assert (await anon.get("/api/v1/openapi.json")).body["openapi"].startswith("3.")
        ui = await anon.get("/ui/")
        assert ui.status == 200 and "default-src 'self'" in ui.headers["Content-Security-Policy"]


async def test_readiness_when_redis_is_gone(redis_url: str) -> None:
    dead = make_redis(RedisSettings(url="redis://127.0.0.1:1/0"), socket_connect_timeout=0.2)
    try:
        ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), dead)
        async with serving(make_app(ctx)) as base, aiohttp.ClientSession() as session:
            async with session.get(base + "/readyz") as resp:
                assert resp.status == 503 and (await resp.json())["checks"]["redis"] is False
            async with session.get(base + "/healthz") as resp:
                assert resp.status == 200
            async with session.get(base + "/api/v1/waves", headers={"Authorization": "Bearer vln_" + "a" * 40}) as r:
                assert r.status == 503 and "Redis" in (await r.json())["error"]
    finally:
        await dead.aclose()
