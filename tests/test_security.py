"""What a caller can learn or slip past: tokens compared in constant time on their digests,
HMACs over the raw body, and no secret in logs, in ``volna wave status`` or in error messages.
(Refusals before a body is parsed: ``tests/test_limits.py`` and the webhook property tests.)"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from connectors.messengers.endpoint import WebhookSecrets, make_webhook_app
from engine.api import auth
from engine.api.auth import create_token
from engine.calendar.clock import ScaledClock
from engine.errors import ConfigError
from engine.store.connection import make_redis
from engine.store.localredis import RedisServer, free_port
from tests.harness import ROOT, context, load_wave, running, task
from tests.test_api_helpers import serving

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
SECRETS = WebhookSecrets(whatsapp_app_secrets=("app-secret",), whatsapp_verify_token="verify",
                         viber_token="cb-token", viber_hmac_secret="hmac-secret")




async def test_api_tokens_are_looked_up_by_digest_and_compared_in_constant_time(
    redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis holds only SHA-256 digests; a presented token is hashed, looked up by its digest and the
    stored digest compared with ``hmac.compare_digest`` — no comparison of the secret itself."""
    token = await create_token(redis, "viewer", "sec")
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert (await auth.authenticate(redis, f"Bearer {token}")) is not None
    assert compared == [(auth.digest(token).encode(), auth.digest(token).encode())]
    stored = await redis.hgetall("volna:tokens")
    assert token not in json.dumps(stored) and auth.digest(token) in stored
    assert await auth.authenticate(redis, f"Bearer {token[:-1]}x") is None


async def test_a_webhook_signature_covers_the_raw_bytes_not_the_json() -> None:
    """The same JSON written differently (spaces, key order) is another body: its old signature fails."""
    from connectors.messengers.webhooks import sign_sha256

    payload = {"message_status": "delivered", "request_id": "r1"}
    signed = json.dumps(payload).encode()
    same_json = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    events: list[Any] = []

    async def sink(event: Any) -> None:
        events.append(event)

    async with serving(make_webhook_app(sink, SECRETS)) as url, aiohttp.ClientSession() as session:
        for body, expected in ((same_json, 403), (signed, 200)):
            async with session.post(url + "/webhooks/viber", data=body, headers={
                    "Authorization": "cb-token", "X-Volna-Signature": sign_sha256("hmac-secret", signed)}) as resp:
                assert resp.status == expected
    assert len(events) == 1


SECRET_VALUES = ("s3cr3t-ami", "tok-wa-9f8e7d", "pw-viber-77", "app-sec-55", "hmac-sec-66", "cb-tok-44", "smpp4x",
                 "redispw")


def _secret_config(tmp_path: Path, redis_url: str, *, ami_port: int, smsc_port: int, gateway: str) -> Path:
    from tests.chaos.world import to_toml

    ami_secret = tmp_path / "ami-secret"
    ami_secret.write_text("s3cr3t-ami\n")
    config = {
        "scenarios_dir": str(ROOT / "scenarios"), "redis": {"url": redis_url}, "log": {"json": False},
        "channels": {
            "ivr": {"connector": {"servers": [{"name": "a1", "port": ami_port, "username": "volna",
                                               "secret_file": str(ami_secret), "auth": "plain", "trunks": [
                                                   {"name": "t1", "dial": "Local/{number}@x"}]}],
                                  "connect_timeout_s": 0.5, "reconnect_min_s": 0.05, "reconnect_max_s": 0.1}},
            "whatsapp": {"connector": {"base_url": gateway, "app_secret": "app-sec-55", "verify_token": "v",
                                       "http": {"health_probe_s": 0.1, "unhealthy_retry_s": 0.5},
                                       "accounts": [{"name": "wa", "phone_number_id": "1",
                                                     "access_token": "tok-wa-9f8e7d"}]}},
            "viber": {"connector": {"base_url": gateway, "callback_token": "cb-tok-44",
                                    "callback_hmac_secret": "hmac-sec-66",
                                    "http": {"health_probe_s": 0.1, "unhealthy_retry_s": 0.5},
                                    "accounts": [{"name": "vb", "username": "volna", "password": "pw-viber-77"}]}},
            "sms": {"connector": {"accounts": [{"name": "sm", "host": "127.0.0.1", "port": smsc_port,
                                                "system_id": "volna", "password": "smpp4x",
                                                "connect_timeout_s": 0.5, "reconnect_min_s": 0.05,
                                                "reconnect_max_s": 0.1}]}},
        },
    }
    path = tmp_path / "volna.toml"
    path.write_text(to_toml(config))
    path.chmod(0o600)
    return path


@pytest.mark.timeout(60)
async def test_no_secret_in_logs_status_or_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every connector started with credentials its peer refuses (AMI login, SMPP bind, WhatsApp token,
    Viber password), a dispatcher run, ``volna wave status`` through a Redis URL with a password, and
    config errors next to inline secrets: not one secret value in the logs, the output or the
    messages."""
    from connectors.registry import build_connector
    from engine.config.settings import load_settings
    from engine.domain.outcomes import Channel
    from simulators.ami import AmiSimulator
    from simulators.ami import Knobs as AmiKnobs
    from simulators.gateway import GatewaySimulator
    from simulators.smsc import Knobs as SmscKnobs
    from simulators.smsc import SmscSimulator

    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    # A Redis with a password (the URL carries it), as in production.
    server = RedisServer(port=free_port(), directory=tmp_path / "redis").start()
    admin = aioredis.from_url(server.url)
    await admin.config_set("requirepass", "redispw")  # (the helper's start-up PING does not AUTH)
    await admin.aclose()
    try:
        url = server.url.replace("redis://", "redis://:redispw@")
        async with AmiSimulator(AmiKnobs(secret="other")) as ami, GatewaySimulator() as gw, \
                SmscSimulator(SmscKnobs(accounts={"volna": "other"})) as smsc:
            config = _secret_config(tmp_path, url, ami_port=ami.port, smsc_port=smsc.port, gateway=gw.url)
            settings = load_settings(config)
            client = make_redis(settings.redis)
            try:
                ctx = context(settings, ScaledClock(NOON_MSK), client)
                rows = [task(n, channel=ch) for n, ch in enumerate(("ivr", "sms", "viber", "whatsapp"))]
                await load_wave(ctx, "w1", DAY, rows)
                connectors = [build_connector(ch, settings) for ch in Channel]
                async with running(ctx, connectors):
                    await asyncio.sleep(2.0)  # logins refused, sends retried, accounts probed
            finally:
                await client.aclose()
            env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
            for args in (["wave", "status", "w1"], ["wave", "status", "w1", "--json"], ["wave", "list"]):
                out = subprocess.run([sys.executable, "-m", "engine.cli.main", "--config", str(config), *args],
                                     cwd=ROOT, env=env, capture_output=True, timeout=30)
                assert out.returncode == 0, out.stderr[-500:]
                seen += [out.stdout.decode(), out.stderr.decode()]
    finally:
        server.cleanup()
    for broken in ({"servers": [{"name": "a", "username": "u", "secret": "s3cr3t-ami", "trunks": []}]},
                   {"accounts": [{"name": "wa", "phone_number_id": "x", "access_token": "tok-wa-9f8e7d"}]}):
        for channel in ("ivr", "whatsapp"):
            try:
                load_settings(None, channels={channel: {"connector": broken}})
                build_connector(Channel(channel), load_settings(None, channels={channel: {"connector": broken}}))
            except ConfigError as exc:
                seen.append(str(exc))
    seen += [r.getMessage() + (caplog.handler.format(r) if r.exc_info else "") for r in caplog.records]
    text = "\n".join(seen)
    # The refusals happened (and were logged), the status was printed.
    for said in ("Authentication failed", "ESME_RINVPASWD", "account wa unhealthy", "account vb unhealthy",
                 "wave w1"):
        assert said in text, said
    leaked = [s for s in SECRET_VALUES if s in text]
    assert not leaked, f"secrets in logs/output/errors: {leaked}"
