"""The shipped IVR scenarios through the whole engine: dispatcher → AMI connector → the Asterisk
simulator over TCP, playing what the compiled dialplan reports — identity, recording, a promise,
a prompt that fails to play, the operator offered only while an agent is free."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml

from connectors.ami import AmiConnector
from engine.calendar.clock import ScaledClock
from engine.context import Context
from engine.domain.outcomes import Outcome
from engine.intake.loader import Intake
from engine.metrics.registry import Metrics
from simulators.ami import AmiSimulator
from tests.harness import ROOT, context, lines_of, load_wave, make_settings, results, running, task, wait_until
from tests.test_ami_support import config, digits, fast_knobs, wait_for

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


def _ctx(redis: aioredis.Redis, redis_url: str, **settings: Any) -> Context:
    return context(make_settings(redis_url, **settings), ScaledClock(NOON_MSK), redis)


def _connector(sim: AmiSimulator) -> AmiConnector:
    conn = AmiConnector.from_config(config(sim.port, retry_delay_s=1.0))
    conn.metrics = Metrics(process=False)
    return conn


async def _finals(redis: aioredis.Redis, ctx: Context, n: int) -> dict[str, dict[str, Any]]:
    async def done() -> bool:
        return int((await ctx.waves.counts("w1")).get("final", 0)) >= n

    await wait_until(done, timeout_s=30)
    return {r["task_id"]: r for r in await results(redis, "w1") if r["kind"] == "result" and r["final"]}


async def test_identity_recording_and_promise_in_the_results(redis: aioredis.Redis, redis_url: str) -> None:
    """Acceptance 3 through the engine: the debtor confirms who they are, hears the amount and the
    date, keys in a promise; a third party ends ``wrong_party`` and uses none of the debtor's caps;
    every answered call names its recording."""
    promised = datetime.now(UTC).date() + timedelta(days=5)
    ddmm = f"{promised.day:02d}{promised.month:02d}"
    knobs = fast_knobs(keys_by_number={digits(1): "3"}, promise_by_number={digits(1): f"{ddmm}:1500"},
                       identity_by_number={digits(2): "wrong", digits(3): "none"}, talk_min_s=0.2, talk_max_s=0.3)
    async with AmiSimulator(knobs) as sim:
        ctx = _ctx(redis, redis_url)
        await load_wave(ctx, "w1", DAY, [task(i, channel="ivr") for i in (1, 2, 3, 4)])
        async with running(ctx, [_connector(sim)]):
            got = await _finals(redis, ctx, 4)
            caps_wrong = await ctx.caps.used("d2", "message", DAY)
            caps_right = await ctx.caps.used("d4", "message", DAY)
    promise = got["t1"]
    assert promise["outcome"] == Outcome.ANSWERED and promise["data"]["identity"] == "confirmed"
    assert promise["data"]["actions"] == ["promise_to_pay"]
    assert promise["data"]["promise"] == {"date": promised.isoformat(), "amount": 1500}
    assert promise["data"]["steps"] == ["greeting", "identity", "creditor", "amount", "due", "main"]
    assert promise["data"]["recording"] == "/var/spool/asterisk/monitor/volna/w1/t1-1.wav"
    assert (got["t2"]["outcome"], got["t2"]["data"]["identity"]) == (Outcome.WRONG_PARTY, "wrong")
    assert (got["t3"]["outcome"], got["t3"]["data"]["identity"]) == (Outcome.WRONG_PARTY, "none")
    assert got["t2"]["data"]["steps"] == ["greeting", "identity"]  # nothing about the debt after
    assert caps_wrong == (0, 0, 0) and caps_right == (1, 1, 1)
    assert got["t4"]["outcome"] == Outcome.ANSWERED and got["t4"]["data"]["recording"].endswith("/w1/t4-1.wav")


async def test_a_missing_prompt_is_in_the_result_and_counted(redis: aioredis.Redis, redis_url: str) -> None:
    """Acceptance 5: the simulated dialplan reports the amount's prompt as not played; the result
    says which prompt of which step, the call is ``answered_incomplete`` (the debtor did not hear
    the whole disclosure: the scenario retries it) and the prompt is counted."""
    knobs = fast_knobs(missing_prompts={"volna/your-debt-is": "amount", "volna/greeting-soft": "greeting"})
    async with AmiSimulator(knobs) as sim:
        ctx = _ctx(redis, redis_url)
        await load_wave(ctx, "w1", DAY, [task(1, channel="ivr")])
        conn = _connector(sim)
        async with running(ctx, [conn]):
            async def seen() -> bool:
                recs = [r for r in await results(redis, "w1") if r["kind"] == "result"]
                return bool(recs)

            await wait_until(seen, timeout_s=30)
    [rec] = [r for r in await results(redis, "w1") if r["kind"] == "result"]
    assert rec["outcome"] == Outcome.ANSWERED_INCOMPLETE and rec["final"] is False  # retried in an hour
    assert rec["data"]["prompt_failures"] == [{"step": "greeting", "prompt": "volna/greeting-soft"},
                                              {"step": "amount", "prompt": "volna/your-debt-is"}]
    failures = {s.labels["prompt"]: s.value for fam in conn.metrics.registry.collect()
                if fam.name == "volna_prompt_failures" for s in fam.samples if s.name.endswith("_total")}
    assert failures == {"volna/greeting-soft": 1.0, "volna/your-debt-is": 1.0}
    assert sim.stats.prompt_failures == 2


def _scenarios_with_reserve(tmp: Path, reserve: int) -> Path:
    raw = yaml.safe_load((ROOT / "scenarios" / "soft_reminder.yaml").read_text(encoding="utf-8"))
    raw["ivr"]["operator"]["reserve"] = reserve
    (tmp / "soft_reminder.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return tmp


async def test_press_1_only_while_an_agent_is_free(redis: aioredis.Redis, redis_url: str, tmp_path: Path) -> None:
    """Acceptance 7: with no agent free in the queue, a debtor who presses 1 was never offered the
    operator (the key is invalid, nobody is put through); once an agent is free, the next call
    offers it and the debtor reaches the agent."""
    knobs = fast_knobs(keys_by_number={digits(1): "1", digits(2): "1"}, talk_min_s=0.3, talk_max_s=0.4)
    async with AmiSimulator(knobs) as sim:
        sim.queues.configure("debt-operators", logged_in=3, available=0)
        ctx = _ctx(redis, redis_url, scenarios_dir=str(_scenarios_with_reserve(tmp_path, 0)))
        conn = _connector(sim)
        # A task for later keeps the wave running while the calls are loaded one by one.
        await load_wave(ctx, "w1", DAY, [task(99, channel="sms", not_before="2026-12-01T19:00:00+03:00")])
        async with running(ctx, [conn]):
            conn.watch_queue("debt-operators")
            await wait_for(lambda: (s := conn.queue_state("ast1", "debt-operators")) is not None and s.read_at >= 0)
            await Intake(ctx).load("w1", lines_of([task(1, channel="ivr")]))
            busy = await _finals(redis, ctx, 1)
            sim.queues.configure("debt-operators", available=1)  # an agent is free now
            await wait_for(lambda: conn.queue_state("ast1", "debt-operators").available == 1)  # type: ignore[union-attr]
            await Intake(ctx).load("w1", lines_of([task(2, channel="ivr")]))
            free = await _finals(redis, ctx, 2)
    not_offered, offered = busy["t1"]["data"], free["t2"]["data"]
    assert not_offered["operator_offer"] == "no_free_agent" and "operator_offered" not in not_offered
    assert "actions" not in not_offered and not_offered["dtmf"] == "11"  # identity, then the refused 1
    assert offered["operator_offer"] == "offered" and offered["operator_offered"] is True
    assert offered["actions"] == ["operator"] and offered["queue"]["result"] == "connected"
    operators = [(e["number"], e["kind"]) for e in sim.reach.events() if e["kind"] == "operator"]
    assert operators == [(digits(2), "operator")] and sim.stats.operator_offers == 1
