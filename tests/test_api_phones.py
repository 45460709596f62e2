"""Phones over HTTP (issue 14): deactivated numbers listed, one number shown, reactivation —
masked for roles that may not change the stop-list, refused to them, audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock
from engine.store import keys
from tests.harness import context, make_settings
from tests.test_api_helpers import api_client

NOON = int(datetime(2026, 12, 7, 9, 0, tzinfo=UTC).timestamp() * 1000)
PHONE = "+79161112233"


async def test_list_show_reactivate_with_roles_and_audit(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON), redis)
    ctx.directory.contacted(PHONE, "d7", "w1", "c1", NOON - 1000, "sms")
    await ctx.directory.drain()
    for n in (1, 2):
        await ctx.deactivations.strike(PHONE, "smpp", f"w1:t{n}:1", NOON)
    async with api_client(ctx, "viewer") as viewer:
        listed = await viewer.get("/api/v1/phones")
        assert listed.status == 200 and [p["phone"] for p in listed.body["phones"]] == ["+7916***2233"]
        shown = await viewer.get("/api/v1/phones/8 916 111-22-33")
        assert shown.status == 200 and shown.body["phone"] == "+7916***2233" and shown.body["debtor_id"] == "d7"
        assert shown.body["deactivated"]["family"] == "smpp" and len(shown.body["strikes"]["smpp"]) == 2
        assert shown.body["last_contact"]["channel"] == "sms"
        assert (await viewer.get("/api/v1/phones/nonsense")).status == 400
        refused = await viewer.post(f"/api/v1/phones/{PHONE}/reactivate", json_body={"reason": "confirmed"})
        assert refused.status == 403
    async with api_client(ctx, "manager") as manager:
        assert (await manager.get("/api/v1/phones", params={"reason": "smpp"})).body["phones"][0]["phone"] == PHONE
        assert (await manager.get("/api/v1/phones", params={"reason": "q850"})).body["phones"] == []
        assert (await manager.get("/api/v1/phones", params={"since": "yesterday"})).status == 400
        assert (await manager.post(f"/api/v1/phones/{PHONE}/reactivate", json_body={"reason": ""})).status == 400
        done = await manager.post(f"/api/v1/phones/{PHONE}/reactivate", json_body={"reason": "confirmed by phone"})
        assert done.status == 200 and done.body == {"phone": PHONE, "was_deactivated": True}
        assert (await manager.get("/api/v1/phones")).body["phones"] == []
    audit = [f for _, f in await redis.xrange(keys.AUDIT) if f["what"] == "phones.reactivate" and f["status"] == "200"]
    assert len(audit) == 1 and audit[0]["who"] == "test-manager" and audit[0]["target"] == "phone:+7916***2233"
    assert json.loads(audit[0]["detail"])["reason"] == "confirmed by phone"
    assert await ctx.deactivations.get(PHONE, NOON) is None
