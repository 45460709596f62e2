"""SMPP throughput: messages/s through ``SmppConnector`` to the SMSC simulator, and receipts/s back;
then the same channel through the whole engine.

    .venv/bin/python load/bench_smpp.py [--messages 20000] [--concurrency 200] [--binds 2]
                                        [--window 10] [--batch 500] [--skip-engine] [--json]
                                        [--profile] [--micro] [--smsc-port N [--smsc-http-port N]]

Connector run (the top-level figures):

* The simulator runs in its own process (``python -m simulators.smsc``: no throttling, no
  latency, a receipt for every message at once), so the figures are the connector's.
* ``--concurrency`` workers call ``send`` back to back (the core's pacing would hold them to the
  account's ``rate_per_s``; here nothing does), by default ten times the binds × window, so most
  of them wait for a window slot; all requests are built before the clock starts.
* Texts alternate between a Latin (GSM, 1 part) and a Cyrillic (UCS-2, 1 part) reminder.
* ``submit→resp`` is measured per PDU, from the write of the submit_sm to its submit_sm_resp
  (the bind's ``submit`` is wrapped), so it excludes the wait for a window slot.
* receipts/s: receipts the sink got, over the time from the first send to the last receipt.
* ``--micro`` times the codec paths per PDU (hand-encoded submit_sm against smpplib's, the
  submit_sm_resp read, a receipt through smpplib + the receipt parser); ``--profile`` runs the
  connector side under cProfile and prints the top functions.

Engine run (``"engine"`` in the JSON; ``--skip-engine`` leaves it out):

* ``--messages`` SMS tasks (``bench_core``'s lines: scenario soft_reminder, Europe/Moscow, one
  debtor each so caps never bite, the clock at noon Moscow on 2026-12-01) are loaded into a
  private Redis, the wave is started and ``engine.runner.Runner`` sends them with the connector
  ``volna run`` builds (``connectors.registry.build_connector``) for a ``[channels.sms]`` section
  pointing at a fresh simulator (``rate_per_s`` 1e6, so pacing's rate is never the limit; the
  target's concurrency is the account's default, 10 × binds × window, as in production).
* It runs in a child process (``--engine-child``), so its peak RSS and CPU are the engine
  process's alone; ``--profile`` profiles its dispatch phase too.
* soft_reminder's SMS renders to 139 Cyrillic characters: 3 UCS-2 parts, so every message is
  3 submit_sm and 3 receipts (``parts_per_message``; the attempt is final after the last part's
  receipt).
* messages/s: from the wave's start until every task is final; ``send_messages_per_s`` until the
  last submit_sm_resp; receipts/s: tasks final ``delivered`` over the start → the last of them;
  ``submit→resp`` as above; claim→result from the results stream (engine clock ms); CPU per
  message of the engine process (connector included) and of Redis; Redis round trips per message.
* Checked: every task has exactly one final result and it is ``delivered``; the simulator's
  ``GET /stats`` (before and after) counts each message once (unchecked with ``--smsc-port``
  unless ``--smsc-http-port`` names that simulator's stats port).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import timeit
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    RoundTrips,
    free_port,
    peak_rss_mb,
    percentile,
    read_finals,
    redis_url,
    require,
    top_functions,
)

#: The engine run's wave (bench_core's lines() name their tasks t0…, debtors d0…).
ENGINE_WAVE = "bench-sms"




@contextlib.contextmanager
def simulator(port: int, http_port: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stats = ["--http-port", str(http_port)] if http_port else []
    proc = subprocess.Popen([sys.executable, "-m", "simulators.smsc", "--port", str(port), "--log-level", "WARNING",
                             "--account", "bench:secret", *stats], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the SMSC simulator did not start")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class SubmitTimes:
    """submit_sm → submit_sm_resp per PDU (``SmppBind.submit`` wrapped while installed), and when the
    last answer came (``time.perf_counter()``)."""

    rtts_s: list[float] = field(default_factory=list)
    last_answer: float = 0.0

    @contextlib.contextmanager
    def installed(self) -> Iterator[SubmitTimes]:
        from connectors.smpp.bind import SmppBind

        original = SmppBind.submit

        def timed(bind: SmppBind, body: bytes) -> asyncio.Future[Any]:
            fut = original(bind, body)
            t0 = time.perf_counter()

            def answered(_: object) -> None:
                self.last_answer = time.perf_counter()
                self.rtts_s.append(self.last_answer - t0)

            fut.add_done_callback(answered)
            return fut

        SmppBind.submit = timed  # type: ignore[method-assign]
        try:
            yield self
        finally:
            SmppBind.submit = original  # type: ignore[method-assign]

    def clear(self) -> None:
        self.rtts_s.clear()
        self.last_answer = 0.0

    def p_ms(self, q: float) -> float:
        return percentile(self.rtts_s, q) * 1000


# ---- connector run --------------------------------------------------------------------------


async def run(port: int, n: int, concurrency: int, binds: int, window: int) -> dict[str, Any]:
    from connectors.base import Accepted, LateEvent, SendRequest
    from connectors.smpp import SmppConnector
    from engine.models import Attempt, Task
    from engine.outcomes import Channel

    conn = SmppConnector.from_config({"accounts": [{
        "name": "bench", "host": "127.0.0.1", "port": port, "system_id": "bench", "password": "secret",
        "binds": binds, "window": window, "rate_per_s": 1e6, "response_timeout_s": 30.0, "window_wait_s": 60.0,
    }]})
    templates = ["Uvazhaemyj abonent! Dolg za teplo {i} rub. Oplatite do 25 chisla.",
                 "Задолженность за водоснабжение: {i} руб. Оплатите до 25 числа."]
    requests = []
    for i in range(n + 500):
        task = Task(task_id=f"t{i}", wave_id="w", campaign_id="c", debtor_id=f"d{i}", channel=Channel.SMS,
                    phone=f"+7916{i % 10_000_000:07d}", scenario="b")
        requests.append(SendRequest(task=task, attempt=Attempt(task_id=task.task_id, wave_id="w", number=1,
                                                               channel=Channel.SMS),
                                    target="bench", text=templates[i % 2].format(i=i)))

    receipts = 0
    last_receipt = 0.0
    all_in = asyncio.Event()
    want_receipts = 0

    async def sink(event: Any) -> None:
        nonlocal receipts, last_receipt
        if isinstance(event, LateEvent) and event.final:
            receipts += 1
            last_receipt = time.perf_counter()
            if receipts >= want_receipts:
                all_in.set()

    conn.bind_events(sink)
    accepted = 0

    async def worker(queue: Iterator[SendRequest]) -> None:
        nonlocal accepted
        for req in queue:
            result = await conn.send(req)
            accepted += isinstance(result, Accepted)  # not `+= await …`: that reads before the await

    async def push(batch: list[SendRequest]) -> None:
        queue = iter(batch)
        await asyncio.gather(*(worker(queue) for _ in range(concurrency)))

    with SubmitTimes().installed() as submits:
        async with conn:
            await conn.wait_bound(10.0)
            want_receipts = 500
            await push(requests[n:])  # warm up
            await asyncio.wait_for(all_in.wait(), 30)
            submits.clear()
            accepted = receipts = 0
            all_in.clear()
            want_receipts = n
            cpu0, t0 = time.process_time(), time.perf_counter()
            await push(requests[:n])
            sent_s = time.perf_counter() - t0
            await asyncio.wait_for(all_in.wait(), 120)
            cpu = time.process_time() - cpu0
            stats = conn.stats.to_dict()
    return {
        "messages": n, "accepted": accepted, "messages_per_s": n / sent_s,
        "submit_resp_p50_ms": submits.p_ms(0.5), "submit_resp_p99_ms": submits.p_ms(0.99),
        "receipts": receipts, "receipts_per_s": receipts / (last_receipt - t0),
        "cpu_us_per_message": cpu / n * 1e6, "binds": binds, "window": window, "concurrency": concurrency,
        "throttled": stats["throttled"], "malformed_pdus": stats["malformed_pdus"],
    }


# ---- engine run -----------------------------------------------------------------------------


def sms_channel(port: int, binds: int, window: int) -> dict[str, Any]:
    """``[channels.sms]`` for the simulator: a rate far above what one process sends (pacing's rate
    must not be the limit); the target's concurrency stays the connector's default."""
    return {"connector": {"accounts": [{
        "name": "bench", "host": "127.0.0.1", "port": port, "system_id": "bench", "password": "secret",
        "binds": binds, "window": window, "rate_per_s": 1e6,
    }]}}


@dataclass
class SmscCounts:
    """What the simulator's ``GET /stats`` counted: whole messages per destination, parts, receipts."""

    destinations: Counter[str]
    parts: int
    receipts_sent: int

    def __sub__(self, before: SmscCounts) -> SmscCounts:
        return SmscCounts(self.destinations - before.destinations, self.parts - before.parts,
                          self.receipts_sent - before.receipts_sent)


async def smsc_counts(stats_url: str | None) -> SmscCounts | None:
    """None without a stats URL (a simulator of the caller's without one)."""
    if stats_url is None:
        return None
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.get(f"{stats_url}/stats") as resp:
            resp.raise_for_status()
            stats = await resp.json()
    return SmscCounts(Counter(stats["per_destination"]), stats["accepted_parts"], stats["receipts_sent"])


async def wait_final(redis: Any, wave_id: str, n: int, runner_job: asyncio.Task[None], timeout_s: float) -> None:
    from engine.keys import WaveKeys

    counts = WaveKeys(wave_id).counts
    async with asyncio.timeout(timeout_s):
        # Polled often: the end of the run is read from the results stream, this only stops it.
        while int(await redis.hget(counts, "final") or 0) < n:
            if runner_job.done():
                raise RuntimeError(f"the runner stopped before the wave was done: {runner_job.exception()!r}")
            await asyncio.sleep(0.05)


@dataclass
class Dispatch:
    """One run of the Runner over a started wave: when it began, what it cost."""

    t0: float  # time.perf_counter()
    t0_ms: int  # engine clock
    cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    round_trips: int = 0


async def dispatch(ctx: Any, connector: Any, n: int, profiler: cProfile.Profile | None) -> Dispatch:
    """Start the wave with the Runner up and bound; return once every task is final."""
    from bench_core import redis_cpu_s

    from engine.runner import Runner

    trips = RoundTrips()
    trips.install()
    runner = Runner(ctx, [connector])
    stop = asyncio.Event()
    job = asyncio.create_task(runner.run(stop))
    await asyncio.wait_for(runner.started.wait(), 30)
    await connector.wait_bound(10.0)
    redis_cpu0 = await redis_cpu_s(ctx.redis)
    trips.count = 0
    cpu0 = time.process_time()
    run = Dispatch(time.perf_counter(), ctx.clock.now_ms())
    if profiler:
        profiler.enable()
    await ctx.waves.change(ENGINE_WAVE, "start")
    await wait_final(ctx.redis, ENGINE_WAVE, n, job, timeout_s=120 + n / 50)
    if profiler:
        profiler.disable()
    run.cpu_s, run.round_trips = time.process_time() - cpu0, trips.count
    run.redis_cpu_s = await redis_cpu_s(ctx.redis) - redis_cpu0
    stop.set()
    await asyncio.wait_for(job, 60)
    return run


def receipts_resent(before: SmscCounts | None, after: SmscCounts | None, n: int) -> int | None:
    """Check the simulator took each of the n messages once; how many receipts it sent again (None:
    not checked)."""
    if before is None or after is None:
        return None
    got = after - before
    require(sum(got.destinations.values()) == n and set(got.destinations.values()) == {1},
            f"the simulator accepted {sum(got.destinations.values())} messages for {len(got.destinations)} "
            f"numbers (want {n}, once each)")
    # A receipt the engine answered with an error, or lost with its bind, is sent again.
    return got.receipts_sent - got.parts


#: The SMS of the engine run's scenario: soft_reminder's own (139 Cyrillic characters, 3 UCS-2
#: parts) or a short notice (one UCS-2 part), the two shapes collections SMS come in.
TEXTS = {
    "reminder": None,
    "short": "{creditor}: долг {amount:money}. Оплата: {pay_url}",
}


def scenarios_for(text: str, folder: Path) -> Path:
    """The shipped scenarios, with soft_reminder's SMS replaced when ``text`` says so."""
    import yaml

    if TEXTS[text] is None:
        return ROOT / "scenarios"
    folder.mkdir(parents=True, exist_ok=True)
    doc = yaml.safe_load((ROOT / "scenarios" / "soft_reminder.yaml").read_text(encoding="utf-8"))
    doc["messages"]["sms"] = TEXTS[text]
    (folder / "soft_reminder.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return folder


async def run_engine(port: int, stats_url: str | None, n: int, binds: int, window: int, batch: int,
                     profiler: cProfile.Profile | None, text: str = "reminder") -> dict[str, Any]:
    """The child process: n SMS tasks through intake, then Runner → SmppConnector → the simulator."""
    from bench_core import DAY, NOON_MSK, lines

    from connectors.registry import build_connector
    from engine.clock import ScaledClock
    from engine.context import Context
    from engine.intake import Intake
    from engine.outcomes import Channel
    from engine.redis_conn import make_redis
    from engine.settings import load_settings

    with redis_url() as url, tempfile.TemporaryDirectory(prefix="bench-smpp-") as tmp:
        scenarios = scenarios_for(text, Path(tmp))
        settings = load_settings(None, redis={"url": url}, scenarios_dir=str(scenarios),
                                 dispatcher={"batch_size": batch, "max_inflight": batch * 4},
                                 log={"level": "WARNING", "json": False},
                                 channels={"sms": sms_channel(port, binds, window)})
        redis = make_redis(settings.redis)
        try:
            ctx = Context.build(settings, ScaledClock(NOON_MSK), redis)
            await redis.flushdb()
            await ctx.waves.create(ENGINE_WAVE, "c1", DAY)
            report = await Intake(ctx).load(ENGINE_WAVE, lines(n))
            require(report.accepted == n, f"intake: {report.as_dict()}")
            sim_before = await smsc_counts(stats_url)
            with SubmitTimes().installed() as submits:
                run = await dispatch(ctx, build_connector(Channel.SMS, settings), n, profiler)  # as `volna run`
            finals = await read_finals(redis, ENGINE_WAVE)
            sim_after = await smsc_counts(stats_url)
        finally:
            await redis.aclose()
    finals.require_once(n, "delivered")
    resent = receipts_resent(sim_before, sim_after, n)
    return {
        "messages": n, "parts_per_message": len(submits.rtts_s) / n,
        "messages_per_s": n / ((finals.last_final_ms - run.t0_ms) / 1000),
        "send_messages_per_s": n / (submits.last_answer - run.t0),
        "receipts_per_s": finals.outcomes["delivered"] / ((finals.last_delivered_ms - run.t0_ms) / 1000),
        "submit_resp_p50_ms": submits.p_ms(0.5), "submit_resp_p99_ms": submits.p_ms(0.99),
        "claim_result_p50_ms": percentile(finals.claim_to_result_ms, 0.5),
        "claim_result_p99_ms": percentile(finals.claim_to_result_ms, 0.99),
        "peak_rss_mb": peak_rss_mb(), "engine_cpu_us_per_message": run.cpu_s / n * 1e6,
        "redis_cpu_us_per_message": run.redis_cpu_s / n * 1e6, "round_trips_per_message": run.round_trips / n,
        "text": text, "binds": binds, "window": window, "batch": batch, "simulator_checked": resent is not None,
        **({} if resent is None else {"receipts_resent": resent}),
    }


def engine_child(args: argparse.Namespace) -> None:
    """``--engine-child``: the engine run in this process; prints its profile (if any), then one JSON line."""
    profiler = cProfile.Profile() if args.profile else None
    stats_url = f"http://127.0.0.1:{args.smsc_http_port}" if args.smsc_http_port else None
    figures = asyncio.run(run_engine(args.smsc_port, stats_url, args.messages, args.binds, args.window, args.batch,
                                     profiler, args.text))
    if profiler:
        print(top_functions(profiler))
    print(json.dumps(figures))


def engine_figures(args: argparse.Namespace, text: str) -> tuple[dict[str, Any], str]:
    """Run the engine child against the given simulator or a fresh one; its figures and profile text."""
    port, http_port = (args.smsc_port, args.smsc_http_port) if args.smsc_port else (free_port(), free_port())
    child = [sys.executable, str(ROOT / "load" / "bench_smpp.py"), "--engine-child", "--smsc-port", str(port),
             "--messages", str(args.messages), "--binds", str(args.binds), "--window", str(args.window),
             "--batch", str(args.batch), "--text", text, *(["--smsc-http-port", str(http_port)] if http_port else []),
             *(["--profile"] if args.profile else [])]
    with contextlib.nullcontext() if args.smsc_port else simulator(port, http_port):
        proc = subprocess.run(child, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=300 + args.messages / 20)
    if proc.returncode != 0:
        raise RuntimeError(f"the engine run failed ({proc.returncode}); its errors are above")
    *profile, last = proc.stdout.rstrip("\n").split("\n")
    return json.loads(last), "\n".join(profile)




def micro() -> dict[str, float]:
    """Microseconds per operation of the codec paths."""
    import smpplib.smpp

    from connectors.smpp import pdu
    from connectors.smpp.delivery import decode_delivery, decode_delivery_smpplib
    from connectors.smpp.gsm import encode_text
    from connectors.smpp.receipt import receipt_from_delivery

    head = pdu.SubmitHead("", 5, 0, "Volna")
    head_bytes = head.encode()
    text = encode_text("Задолженность за водоснабжение: 1234 руб. Оплатите до 25 числа.")
    fields = {"esm_class": 0, "data_coding": text.data_coding, "short_message": text.octets}
    resp = pdu.encode_pdu(pdu.SUBMIT_SM_RESP, 7, b"1234567\x00")
    p = smpplib.smpp.make_pdu("deliver_sm", sequence=0, source_addr="79161234567", destination_addr="Volna",
                              esm_class=4, short_message=b"id:1234567 sub:001 dlvr:001 submit date:2403011200 "
                              b"done date:2403011201 stat:DELIVRD err:000 text:Zadolzhennost",
                              receipted_message_id="1234567", message_state=2)
    p.sequence = 9
    deliver_body = p.generate()[16:]
    count = 20000

    def per_op(fn: Any) -> float:
        return min(timeit.repeat(fn, number=count, repeat=3)) / count * 1e6

    return {
        "submit_sm_hand_us": per_op(lambda: pdu.encode_pdu(pdu.SUBMIT_SM, 7, pdu.encode_submit_sm_body(
            head_bytes, "79161234567", **fields))),  # type: ignore[arg-type]
        "submit_sm_smpplib_us": per_op(lambda: pdu.encode_submit_sm_smpplib(7, head, "79161234567", **fields)),
        "submit_sm_resp_hand_us": per_op(lambda: pdu.read_c_string(pdu.FrameDecoder().feed(resp)[0][3])),
        "submit_sm_resp_smpplib_us": per_op(lambda: smpplib.smpp.parse_pdu(resp, sequence=0).message_id),
        "encode_text_us": per_op(lambda: encode_text("Задолженность за водоснабжение: 1234 руб.")),
        "deliver_sm_hand_us": per_op(lambda: decode_delivery(pdu.DELIVER_SM, deliver_body)),
        "deliver_sm_smpplib_us": per_op(lambda: decode_delivery_smpplib(pdu.DELIVER_SM, deliver_body)),
        "receipt_parse_us": per_op(lambda: receipt_from_delivery(decode_delivery(pdu.DELIVER_SM, deliver_body))),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=200, help="sends in flight (default: 10 × binds × window)")
    p.add_argument("--binds", type=int, default=2)
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--batch", type=int, default=500, help="the engine run's dispatcher batch_size (max_inflight 4×)")
    p.add_argument("--skip-engine", action="store_true", help="leave out the run through the engine")
    p.add_argument("--text", choices=[*TEXTS, "both"], default="both",
                   help="the engine run's SMS: soft_reminder's (3 parts), a short one (1 part), or both runs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--profile", action="store_true", help="cProfile the connector side and the engine process")
    p.add_argument("--micro", action="store_true", help="also time the codec paths per PDU")
    p.add_argument("--smsc-port", type=int, help="use a simulator already running on this port (system_id "
                                                  "bench, password secret) instead of starting one")
    p.add_argument("--smsc-http-port", type=int, help="with --smsc-port: its GET /stats port, so the engine run "
                                                       "checks what the simulator accepted")
    p.add_argument("--engine-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.engine_child:
        engine_child(args)
        return
    port = args.smsc_port or free_port()
    profiler = cProfile.Profile() if args.profile else None
    with contextlib.nullcontext() if args.smsc_port else simulator(port):
        if profiler:
            profiler.enable()
        figures = asyncio.run(run(port, args.messages, args.concurrency, args.binds, args.window))
        if profiler:
            profiler.disable()
    figures["peak_rss_mb"] = peak_rss_mb()
    # Read before the engine run: the children's peak covers only the simulator so far.
    figures["simulator_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    engine_profile = ""
    if not args.skip_engine:
        for text in TEXTS if args.text == "both" else [args.text]:
            key = "engine" if text == "reminder" else f"engine_{text}"
            figures[key], profile = engine_figures(args, text)
            engine_profile += f"[{text}]\n{profile}\n" if profile else ""
    if args.micro:
        figures["micro"] = micro()
    if args.json:
        print(json.dumps({"bench": "smpp", **figures}))
    else:
        print_figures(figures)
    if profiler:
        print("connector side:\n" + top_functions(profiler))
    if engine_profile:
        print("engine process, from the wave's start until every task is final:\n" + engine_profile)


def print_figures(f: dict[str, Any]) -> None:
    print(f"smpp  {f['messages_per_s']:8.0f} messages/s  ({f['accepted']}/{f['messages']} accepted, "
          f"{f['binds']} binds × window {f['window']}, concurrency {f['concurrency']})")
    print(f"      submit→submit_sm_resp p50 {f['submit_resp_p50_ms']:.2f} ms, p99 {f['submit_resp_p99_ms']:.2f} ms")
    print(f"      {f['receipts_per_s']:8.0f} receipts/s ({f['receipts']} receipts)")
    print(f"      connector CPU {f['cpu_us_per_message']:.0f} µs per message (submit + receipt)")
    print(f"      peak RSS {f['peak_rss_mb']:.0f} MB (simulator {f['simulator_peak_rss_mb']:.0f} MB)")
    for name, value in f.get("micro", {}).items():
        print(f"      {name:28s} {value:7.2f} µs")
    for key in ("engine", "engine_short"):
        if key in f:
            print_engine(f[key])


def print_engine(e: dict[str, Any]) -> None:
    print(f"engine {e['messages_per_s']:7.0f} messages/s until every task is final ({e['messages']} SMS tasks, "
          f"{e['parts_per_message']:.0f} part(s) each, {e['binds']} binds × window {e['window']}; target ≥ 3000)")
    print(f"      {e['send_messages_per_s']:8.0f} messages/s until the last submit_sm_resp")
    print(f"      {e['receipts_per_s']:8.0f} receipts/s correlated (tasks final `delivered`)")
    print(f"      submit→submit_sm_resp p50 {e['submit_resp_p50_ms']:.2f} ms, p99 {e['submit_resp_p99_ms']:.2f} ms; "
          f"claim→result p50 {e['claim_result_p50_ms']:.0f} ms, p99 {e['claim_result_p99_ms']:.0f} ms")
    print(f"      CPU per message: engine process {e['engine_cpu_us_per_message']:.0f} µs, "
          f"Redis {e['redis_cpu_us_per_message']:.0f} µs; {e['round_trips_per_message']:.3f} Redis round trips")
    checked = (f"the simulator took each message once, {e['receipts_resent']} receipts sent again"
               if e["simulator_checked"] else "the simulator's counts not checked")
    print(f"      peak RSS {e['peak_rss_mb']:.0f} MB (engine process); {checked}")


if __name__ == "__main__":
    main()
