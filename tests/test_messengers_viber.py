"""The Viber connector (Route Mobile adapter) against the gateway simulator over real sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connectors.messengers import ViberConnector
from connectors.messengers.routemobile import RouteMobileAdapter
from engine.domain.outcomes import Channel, Outcome
from engine.errors import ConfigError, ConnectorError
from engine.port import Accepted, Final, Retry
from simulators.gateway import GatewaySimulator, Knobs
from tests.test_messengers_support import phone, request, viber_config

VB = Channel.VIBER


def _adapter(conn: ViberConnector) -> RouteMobileAdapter:
    adapter = conn.adapters["viber-test"]
    assert isinstance(adapter, RouteMobileAdapter)
    return adapter


def test_unknown_partner_is_a_config_error() -> None:
    raw = viber_config("http://127.0.0.1:1")
    raw["partner"] = "nobody"
    with pytest.raises(ConfigError, match="partner"):
        ViberConnector.from_config(raw, resend_unconfirmed=False)


async def test_one_login_many_sends() -> None:
    async with GatewaySimulator() as sim, ViberConnector.from_config(viber_config(sim.url)) as conn:
        assert [(t.name, t.rate_per_s) for t in conn.targets()] == [("viber-test", 50.0)]
        results = await asyncio.gather(*(conn.send(request(n, VB, "viber-test")) for n in range(20)))
        assert all(isinstance(r, Accepted) for r in results)
        assert len({r.correlation_id for r in results if isinstance(r, Accepted)}) == 20
        assert sim.stats.logins == 1
        assert sim.stats.accepted_total("viber") == 20 and sim.stats.accepted_twice("viber") == []


async def test_expired_jwt_logs_in_again_and_sends_once() -> None:
    async with GatewaySimulator() as sim:
        conn = ViberConnector.from_config(viber_config(sim.url))
        await conn.open()
        assert isinstance(await conn.send(request(1, VB, "viber-test")), Accepted)
        _adapter(conn)._token_at -= 60  # not "fresh" any more
        sim.viber.expire_tokens()
        assert isinstance(await conn.send(request(2, VB, "viber-test")), Accepted)
        assert sim.stats.logins == 2 and sim.stats.unauthorized["viber"] == 1
        assert sim.stats.accepted["viber"][phone(2).lstrip("+")] == 1
        await conn.close()


async def test_refused_login_marks_unhealthy_until_the_password_file_is_fixed(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("wrong")
    async with GatewaySimulator() as sim:
        raw = viber_config(sim.url)
        del raw["accounts"][0]["password"]
        raw["accounts"][0]["password_file"] = str(secret)
        async with ViberConnector.from_config(raw) as conn:
            result = await conn.send(request(1, VB, "viber-test"))
            assert isinstance(result, Retry) and "login refused" in result.reason
            assert not conn.healthy("viber-test")
            assert sim.stats.requests["viber"] == 0
            secret.write_text("sim-password\n")
            async with asyncio.timeout(5):
                while not conn.healthy("viber-test"):
                    await asyncio.sleep(0.02)
            assert isinstance(await conn.send(request(1, VB, "viber-test")), Accepted)


async def test_invalid_phone_and_long_text() -> None:
    async with GatewaySimulator() as sim, ViberConnector.from_config(viber_config(sim.url)) as conn:
        bad = request(1, VB, "viber-test")
        bad = type(bad)(task=bad.task.model_copy(update={"phone": "+1234567"}), attempt=bad.attempt,
                        target=bad.target, text=bad.text, scenario=bad.scenario)
        result = await conn.send(bad)
        assert result == Final(Outcome.INVALID_NUMBER, provider_code="400",
                               provider_text="phone - Please provide valid phone no.")
        long = await conn.send(request(2, VB, "viber-test", text="я" * 1001))
        assert isinstance(long, Final) and long.outcome is Outcome.ERROR
        assert sim.stats.requests["viber"] == 1


async def test_429_storm_and_5xx_burst_accept_each_message_once() -> None:
    knobs = Knobs(rate_limit_per_s=300.0, rate_burst=10.0, retry_after_s=0.05)
    async with GatewaySimulator(knobs) as sim:
        sim.burst("viber", 15, 500)
        async with ViberConnector.from_config(viber_config(sim.url, max_attempts=4, retry_budget_s=0.5)) as conn:
            pending, rounds = list(range(100)), 0
            while pending:
                rounds += 1
                results = await asyncio.gather(*(conn.send(request(n, VB, "viber-test")) for n in pending))
                assert all(isinstance(r, Accepted | Retry) for r in results)
                pending = [n for n, r in zip(pending, results, strict=True) if isinstance(r, Retry)]
                await asyncio.sleep(0.05 if pending else 0)
        assert sim.stats.throttled["viber"] > 10 and sim.stats.server_errors["viber"] == 15
        assert sim.stats.accepted_total("viber") == 100 and sim.stats.accepted_twice("viber") == []


async def test_lost_answer_is_unknown_not_resent() -> None:
    async with GatewaySimulator(Knobs(hang_share=1.0, hang_s=0.4)) as sim:
        async with ViberConnector.from_config(viber_config(sim.url, read_timeout_s=0.2)) as conn:
            with pytest.raises(ConnectorError):
                await conn.send(request(1, VB, "viber-test"))
        assert sim.stats.requests["viber"] == 1 and sim.stats.accepted_total("viber") == 1
