"""Tokens and roles: 401 without a valid token, 403 for the wrong role, every change in the audit stream."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from typing import Any

import redis.asyncio as aioredis

from engine.api.auth import authenticate, create_token, digest, list_tokens, revoke_token
from engine.calendar.clock import ScaledClock
from engine.store import keys
from tests.harness import ROOT, context, make_settings, task
from tests.test_api_helpers import api_client, tokens

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


async def audit_records(redis: aioredis.Redis) -> list[dict[str, str]]:
    return [fields for _, fields in await redis.xrange(keys.AUDIT)]


async def test_viewer_cannot_control_and_missing_or_bad_tokens_are_401(redis: aioredis.Redis, redis_url: str
                                                                        ) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    t = await tokens(redis, "viewer", "manager")
    async with api_client(ctx, "admin") as api:
        viewer, manager = api.as_(t["viewer"]), api.as_(t["manager"])
        for action in ("start", "stop", "pause", "resume"):
            reply = await viewer.post(f"/api/v1/waves/w1/{action}")
            assert reply.status == 403 and "viewer" in reply.body["error"]
        assert (await viewer.get("/api/v1/waves/w1")).status == 200  # viewers read
        assert (await api.as_(None).post("/api/v1/waves/w1/start")).status == 401
        assert (await api.as_(None).get("/api/v1/waves/w1")).status == 401
        bad = await api.as_("vln_" + "x" * 40).post("/api/v1/waves/w1/start")
        assert bad.status == 401 and bad.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await api.post("/api/v1/waves/w1/start", headers={"Authorization": "Basic Zm9vOmJhcg=="})
                ).status == 401
        raw = await api.session.post(api.base + "/api/v1/waves/w1/start", headers={"Authorization": "Bearer"})
        assert raw.status == 401
        raw.release()
        assert (await ctx.waves.get("w1")).state == "created"

        assert (await manager.post("/api/v1/waves/w1/start")).body["state"] == "running"
        assert (await manager.post("/api/v1/waves/w1/pause")).body["state"] == "paused"
        assert (await manager.post("/api/v1/waves/w1/resume")).body["state"] == "running"
        stopped = await manager.post("/api/v1/waves/w1/stop")
        assert stopped.status == 200 and stopped.body == {"wave_id": "w1", "action": "stop", "state": "stopped",
                                                          "by": "test-manager"}
    info = await ctx.waves.get("w1")
    assert info.meta["running_by"] == "test-manager" and info.meta["stopped_by"] == "test-manager"

    records = await audit_records(redis)
    ok = [(r["who"], r["what"], r["target"]) for r in records if r["status"] == "200"]
    assert ok == [("test-manager", f"wave.{a}", "w1") for a in ("start", "pause", "resume", "stop")]
    for r in records:
        assert r["from"] == "127.0.0.1" and r["when"].endswith("+00:00") and r["method"].startswith("POST ")
    refused = [(r["who"], r["status"]) for r in records if r["status"] != "200"]
    assert refused == [("test-viewer", "403")] * 4 + [("anonymous", "401")] * 4


async def test_roles(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    t = await tokens(redis, "viewer", "planner", "manager", "admin")
    line = json.dumps(task(1)) + "\n"
    async with api_client(ctx, "admin") as api:
        async def status(role: str, method: str, path: str, **kw: Any) -> int:
            return (await api.as_(t[role]).call(method, path, **kw)).status

        upload = {"data": line, "headers": {"Content-Type": "application/x-ndjson"}}
        stop_entry = {"json_body": {"kind": "debtor", "value": "D-1", "reason": "paid"}}
        # (method, path, kwargs) → roles that may
        matrix: list[tuple[str, str, dict[str, Any], set[str]]] = [
            ("GET", "/api/v1/waves", {}, {"viewer", "planner", "manager", "admin"}),
            ("GET", "/api/v1/results?wave=w1", {}, {"viewer", "planner", "manager", "admin"}),
            ("POST", "/api/v1/waves/w1/tasks", upload, {"planner", "manager", "admin"}),
            ("POST", "/api/v1/stoplist", stop_entry, {"manager", "admin"}),
            ("GET", "/api/v1/tokens", {}, {"admin"}),
            ("GET", "/api/v1/audit", {}, {"admin"}),
        ]
        for method, path, kw, allowed in matrix:
            for role in ("viewer", "planner", "manager", "admin"):
                code = await status(role, method, path, **kw)
                assert (code < 300) == (role in allowed), (method, path, role, code)
                assert code in (200, 201, 403), (method, path, role, code)
        for i, role in enumerate(("viewer", "planner", "manager", "admin")):
            reply = await api.as_(t[role]).post("/api/v1/waves", json_body={"wave_id": f"x{i}", "campaign_id": "c1",
                                                                           "day": "2026-12-01"})
            assert (reply.status == 201) == (role != "viewer")
        me = await api.as_(t["planner"]).get("/api/v1/whoami")
        assert me.body["role"] == "planner" and "upload" in me.body["permissions"] and me.body["now_ms"] >= NOON_MSK


async def test_tokens_are_stored_hashed_and_revocable(redis: aioredis.Redis, redis_url: str) -> None:
    token = await create_token(redis, "manager", "Ivanova")
    stored = await redis.hgetall(keys.TOKENS)
    assert token not in json.dumps(stored) and list(stored) == [digest(token)]
    who = await authenticate(redis, f"Bearer {token}")
    assert who is not None and (who.name, who.role) == ("Ivanova", "manager")
    assert await authenticate(redis, f"bearer  {token} ") is not None
    assert await authenticate(redis, f"Bearer {token[:-1]}") is None
    assert await authenticate(redis, token) is None
    [info] = await list_tokens(redis)
    assert await revoke_token(redis, info.token_id)
    assert await authenticate(redis, f"Bearer {token}") is None


async def test_token_admin_api(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    async with api_client(ctx, "admin") as api:
        made = await api.post("/api/v1/tokens", json_body={"role": "viewer", "name": "wallboard"})
        assert made.status == 201 and made.body["token"].startswith("vln_")
        assert (await api.as_(made.body["token"]).get("/api/v1/whoami")).body["name"] == "wallboard"
        listed = await api.get("/api/v1/tokens")
        assert {t["name"] for t in listed.body["tokens"]} == {"test-admin", "wallboard"}
        assert made.body["token"] not in json.dumps(listed.body)
        assert (await api.post("/api/v1/tokens", json_body={"role": "root", "name": "x"})).status == 400
        assert (await api.delete(f"/api/v1/tokens/{made.body['token_id']}")).status == 200
        assert (await api.as_(made.body["token"]).get("/api/v1/whoami")).status == 401
        assert (await api.delete(f"/api/v1/tokens/{made.body['token_id']}")).status == 404
        me = (await api.get("/api/v1/whoami")).body
        own = await api.delete(f"/api/v1/tokens/{me['token_id']}")
        assert own.status == 409 and "another admin token" in own.body["error"]
        audit = await api.get("/api/v1/audit")
        whats = [(r["what"], r["status"]) for r in audit.body["records"]]
        assert ("token.create", 201) in whats and ("token.revoke", 200) in whats
        assert made.body["token"] not in json.dumps(audit.body)


def test_token_cli(redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    made = subprocess.run([sys.executable, "-m", "engine.cli.main", "token", "create", "--role", "planner",
                           "--name", "nightly"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("vln_") and "not shown again" in made.stderr
    listed = subprocess.run([sys.executable, "-m", "engine.cli.main", "token", "list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0 and "planner\tnightly" in listed.stdout and token not in listed.stdout
    bad = subprocess.run([sys.executable, "-m", "engine.cli.main", "token", "create", "--role", "root", "--name", "x"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2
