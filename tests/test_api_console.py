"""The console's read endpoints over a real Redis and a running dispatcher: charts, look-up, health,
and the stop-list's search, import and removal with a note; phones masked for a viewer."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import redis.asyncio as aioredis

from connectors.smpp import SmppConnector
from engine.api.auth import create_token
from engine.calendar.clock import ScaledClock
from engine.domain.outcomes import Channel
from engine.store import keys
from simulators.smsc import Knobs, SmscSimulator
from tests.fakes import RecordingConnector
from tests.harness import context, final_count, load_wave, make_settings, running, task, wait_until
from tests.test_api_helpers import api_client
from tests.test_smpp_support import account

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


async def test_charts_lookup_and_health(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    rows = [task(n, wave="w1", debtor="D-7" if n < 2 else None) for n in range(20)]
    await load_wave(ctx, "w1", DAY, rows)
    viewer = await create_token(redis, "viewer", "viewer")
    async with running(ctx, [RecordingConnector(channel=Channel.SMS)]) as runner:
        await wait_until(lambda: _final(ctx, 20))
        assert runner is not None
        async with api_client(ctx, "manager") as api:
            charts = (await api.get("/api/v1/charts?day=2026-12-01")).body
            assert charts["waves"] == ["w1"]
            assert sum(sum(v) for v in charts["sends"].values()) == 20
            assert sum(charts["finals"]["sms"]) == 20
            assert charts["rate_kinds"] == {"sms": "delivery"}
            assert max(r for r in charts["rates"]["sms"] if r is not None) == 100.0
            assert sum(charts["outcomes"]["delivered"]) == 20
            [win] = charts["windows"]
            assert win["zone"] == "Europe/Moscow" and win["open_now"] and win["channel"] == "messages"
            assert (await api.get("/api/v1/charts?wave=w1")).body["minutes_ms"] == charts["minutes_ms"]
            assert (await api.get("/api/v1/charts?wave=nope")).status == 404

            found = (await api.get("/api/v1/lookup?debtor=D-7&day=2026-12-01")).body
            assert {t["task_id"] for t in found["tasks"]} == {"t0", "t1"}
            assert {t["outcome"] for t in found["tasks"]} == {"delivered"}
            msg = next(c for c in found["caps"] if c["cap_class"] == "message")
            assert (msg["day"], msg["week"], msg["month"]) == (2, 2, 2)
            assert found["phones"] == ["+79160000000", "+79160000001"] and not found["masked"]
            by_phone = (await api.get("/api/v1/lookup?phone=8 916 000-00-01")).body
            assert by_phone["debtors"] == ["D-7"]
            hidden = (await api.as_(viewer).get("/api/v1/lookup?phone=89160000001")).body
            assert hidden["masked"] and "+79160000001" not in str(hidden)
            assert (await api.get("/api/v1/lookup?debtor=a&phone=b")).status == 400

            health = (await api.get("/api/v1/health")).body
            [proc] = health["processes"]
            assert proc["targets"][0]["channel"] == "sms" and proc["targets"][0]["healthy"]
            assert health["redis"] and health["queues"] == []  # w1 is completed: no queue to watch

            # The stop-list: import with bad lines, search, remove with a note; a viewer sees masks.
            csv = "kind,value,reason\ndebtor,D-7,paid\nphone,+79160000005,refused\nphone,12,paid\nfax,x,paid\n"
            imported = await api.post("/api/v1/stoplist/import", data=csv.encode(),
                                      headers={"Content-Type": "text/csv"})
            assert imported.body["added"] == 2
            assert [r["line"] for r in imported.body["rejections"]] == [4, 5]
            assert (await api.get("/api/v1/stoplist?kind=phone&q=0005")).body["entries"][0]["value"] == "+79160000005"
            masked = (await api.as_(viewer).get("/api/v1/stoplist?kind=phone&q=0005")).body["entries"][0]["value"]
            assert masked != "+79160000005" and masked.endswith("05")
            assert (await api.as_(viewer).post("/api/v1/stoplist/import", data=csv.encode(),
                                               headers={"Content-Type": "text/csv"})).status == 403
            gone = await api.delete("/api/v1/stoplist/debtor/D-7?note=paid%20in%20full")
            assert gone.body["removed"]
            change = (await redis.xrevrange(keys.STOP_CHANGES, count=1))[0][1]
            assert change["op"] == "remove" and change["reason"] == "paid in full"


async def _final(ctx, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await final_count(ctx, "w1") >= n


async def test_health_shows_smpp_binds_throttling_and_a_dead_smsc(redis: aioredis.Redis, redis_url: str) -> None:
    """A real SMSC (the simulator) that takes 50 messages a second of the 200 asked: the health page shows
    both binds up and the throttling; once the SMSC is gone, the binds are down and the target unusable."""
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await load_wave(ctx, "w1", DAY, [task(n) for n in range(120)])
    sim = await SmscSimulator(Knobs(tps_limit=50, receipt_delay_min_s=0.01, receipt_delay_max_s=0.05)).start()
    try:
        conn = SmppConnector.from_config({"accounts": [account(sim.port, rate_per_s=200.0, binds=2)]})
        async with running(ctx, [conn]), api_client(ctx, "viewer") as api:
            await wait_until(lambda: _final(ctx, 120), timeout_s=30)

            async def report() -> dict[str, Any]:
                [proc] = (await api.get("/api/v1/health")).body["processes"]
                return dict(proc)

            async def throttled() -> bool:
                return bool((await report())["throttled"])

            await wait_until(throttled, timeout_s=10)
            proc = await report()
            [bind] = proc["sessions"]
            assert (bind["kind"], bind["up"], bind["configured"], bind["state"]) == ("smpp", 2, 2, "up")
            assert proc["throttled"][0]["kind"] == "smpp" and proc["throttled"][0]["total"] > 0
            await sim.stop()

            async def down() -> bool:
                return bool((await report())["sessions"][0]["state"] == "down")

            await wait_until(down, timeout_s=15)
    finally:
        await sim.stop()
