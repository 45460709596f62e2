"""AMI benchmark: what one dispatcher process sustains against the AMI simulator.

    .venv/bin/python load/bench_ami.py                     # parser, hot path, end to end (sim in its own process)
    .venv/bin/python load/bench_ami.py --calls 6000 --events on --burst 20   # parse VarSet/Newexten too
    .venv/bin/python load/bench_ami.py --json              # … and the figures as one JSON line (make bench)

1. **parser** — our :class:`connectors.ami.message.AmiParser` vs panoramisk's
   ``AMIProtocol.data_received`` (+ ``Message.from_line``) on Asterisk 22 capture bytes.
2. **hot path** — bytes → parser → session dispatch → call tracker → final outcome, per event,
   with 1 000 calls in flight; then a cProfile of the same run (top functions by own time).
3. **end to end** — the connector over TCP against ``python -m simulators.ami`` in another
   process, 1 000 calls kept in flight: Originates/s, AMI events/s received and handled,
   send→"queued" latency p50/p99, this process's CPU, and a check that every accepted call
   ended with exactly one final event. Run twice: with Python's default garbage-collector settings
   and "tuned" (``gc.freeze()`` after start-up, gen0 threshold 50 000). With 1 000 calls in flight
   the default collector runs ~15 times a second over the live calls, tasks and futures; on a
   busy machine its pauses (up to a few hundred ms) are what delays the "queued" answers, not the
   parser. The tuning belongs in the dispatcher's entry point, not in a library.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from connectors.ami import AmiConnector  # noqa: E402
from connectors.ami.calls import CallTracker, call_ids  # noqa: E402
from connectors.ami.message import AmiParser  # noqa: E402
from engine.metrics.registry import Metrics  # noqa: E402
from engine.port import Accepted, InboundEvent, LateEvent, Retry  # noqa: E402
from load._common import free_port, peak_rss_mb, percentile, process_cpu_s, process_peak_rss_mb  # noqa: E402
from tests.test_ami_support import config, request  # noqa: E402

TRANSCRIPTS = ROOT.parent / "shared" / "asterisk-22-transcripts"
CAPTURES = ("7000", "7001", "7002", "7003", "7004", "7005", "9999")


def _capture_stream(calls: int) -> tuple[bytes, list[tuple[str, str, str]]]:
    """``calls`` capture replays (ids renamed to Volna call ids), CRLF, as Asterisk sends them."""
    texts = {n: (TRANSCRIPTS / f"{n}.txt").read_text().split("\n", 1)[1].split("\n\n", 2)[2] for n in CAPTURES}
    parts, ids = [], []
    for i in range(calls):
        name = CAPTURES[i % len(CAPTURES)]
        cid, other, aid = call_ids(f"bench:t{i}:1")
        ids.append((cid, other, aid))
        text = texts[name].replace(f"oa-raw-{name}", aid).replace(f"raw-{name}-2", other)
        parts.append(text.replace(f"raw-{name}", cid).rstrip("\n") + "\n\n")
    return "".join(parts).replace("\n", "\r\n").encode(), ids


def _chunks(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def bench_parser(calls: int) -> dict[str, float]:
    data, _ = _capture_stream(calls)
    chunks = _chunks(data)
    t = time.perf_counter()
    parser = AmiParser(expect_banner=False)
    n = sum(len(parser.feed(c)) for c in chunks)
    ours = n / (time.perf_counter() - t)

    from panoramisk.ami_protocol import AMIProtocol

    class _Transport:
        def write(self, data: bytes) -> None: ...

    proto = AMIProtocol()
    proto.connection_made(_Transport())
    proto.version = "11.0.0"
    count = [0]
    proto.handle_message = lambda m: count.__setitem__(0, count[0] + 1)  # type: ignore[method-assign]
    t = time.perf_counter()
    for c in chunks:
        proto.data_received(c)
    theirs = count[0] / (time.perf_counter() - t)
    assert count[0] == n
    print(f"parser     {n} messages: ours {ours:,.0f} msg/s, panoramisk {theirs:,.0f} msg/s "
          f"(×{ours / theirs:.1f}, panoramisk timed without its handle_message: the pending-action lookup "
          f"and the fnmatch dispatch of every event)")
    return {"parser_msgs_per_s": ours, "panoramisk_parser_msgs_per_s": theirs}


def _hot_path(data: list[bytes], ids: list[tuple[str, str, str]]) -> tuple[int, int]:
    tracker = CallTracker(settle_s=0.0)
    for cid, other, aid in ids:
        tracker.register(cid, other, aid, now=0.0, deadline=1e9)
    parser = AmiParser(expect_banner=False)
    events = finals = 0
    for chunk in data:
        for msg in parser.feed(chunk):
            if "Event" in msg:
                events += 1
                if tracker.handle(msg, 1.0) is not None:
                    finals += 1
    finals += len(tracker.tick(2.0)[0])
    return events, finals


def bench_hot_path(calls: int) -> dict[str, float]:
    data, ids = _capture_stream(calls)
    chunks = _chunks(data)
    t = time.perf_counter()
    events, finals = _hot_path(chunks, ids)
    dt = time.perf_counter() - t
    assert finals == calls, (finals, calls)
    print(f"hot path   {events} events of {calls} calls → {finals} outcomes: {events / dt:,.0f} events/s "
          f"({dt / events * 1e6:.1f} µs/event: parse + correlate + classify)")
    prof = cProfile.Profile()
    prof.enable()
    _hot_path(chunks, ids)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(8)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip() and ("{" in ln or ".py" in ln)]
    print("           profile (own time):")
    for ln in lines[:8]:
        print("            ", ln.strip()[:110])
    return {"hot_path_events_per_s": events / dt, "hot_path_us_per_event": dt / events * 1e6}


async def bench_tcp_replay(calls: int) -> dict[str, float]:
    """A fake Asterisk writes ``calls`` capture replays as fast as TCP takes them; the connector's session
    parses, dispatches and correlates them and emits one final LateEvent per call to a sink."""
    data, ids = _capture_stream(calls)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        parser = AmiParser(expect_banner=False)
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                for msg in parser.feed(chunk):
                    aid = msg.get("ActionID", "")
                    if msg.get("Action") == "Challenge":
                        writer.write(f"Response: Success\r\nActionID: {aid}\r\nChallenge: 1\r\n\r\n".encode())
                    elif msg.get("Action") == "Login":
                        writer.write(f"Response: Success\r\nActionID: {aid}\r\n\r\n".encode())
                        started.set()
                        for i in range(0, len(data), 1 << 16):
                            writer.write(data[i : i + (1 << 16)])
                            await writer.drain()
                    else:
                        writer.write(f"Response: Success\r\nActionID: {aid}\r\n\r\n".encode())
        finally:
            writer.close()
            closed.set()

    started, closed = asyncio.Event(), asyncio.Event()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    conn = AmiConnector.from_config(config(server.sockets[0].getsockname()[1], settle_s=0.0))
    done = asyncio.Event()
    finals: list[LateEvent] = []

    async def sink(event: LateEvent | InboundEvent) -> None:
        if isinstance(event, LateEvent):
            finals.append(event)
            if len(finals) == calls:
                done.set()

    conn.bind_events(sink)
    tracker = conn._servers["ast1"].tracker
    loop = asyncio.get_running_loop()
    for cid, other, aid in ids:
        tracker.register(cid, other, aid, now=loop.time(), deadline=loop.time() + 3600)
    cpu0 = _cpu()
    async with conn:
        await asyncio.wait_for(started.wait(), 10)
        t0 = time.perf_counter()
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - t0
        events = conn.session("ast1").events
    await asyncio.wait_for(closed.wait(), 10)
    server.close()
    await server.wait_closed()
    cpu = _cpu() - cpu0
    print(f"over TCP   {events} events of {calls} calls → {len(finals)} LateEvents: {events / elapsed:,.0f} events/s "
          f"through one session (parse, dispatch, correlate, emit), {events / cpu:,.0f} events per CPU s "
          f"(the fake Asterisk's writes included)")
    return {"tcp_events_per_s": events / elapsed}








class _GcClock:
    """Wall time spent in the cyclic garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.runs, self.total_s, self.max_s, self._t = 0, 0.0, 0.0, 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
            return
        took = time.perf_counter() - self._t
        self.runs, self.total_s, self.max_s = self.runs + 1, self.total_s + took, max(self.max_s, took)


async def bench_end_to_end(calls: int, concurrency: int, events_mask: str, burst: int, talk_s: float,
                           gc_mode: str) -> dict[str, float]:
    if gc_mode == "tuned":  # what a dispatcher's entry point can do once it has started
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
    gc_clock = _GcClock()
    gc.callbacks.append(gc_clock)
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "simulators.ami", "--port", str(port), "--log-level", "WARNING",
         "--ring-min-s", str(talk_s / 4), "--ring-max-s", str(talk_s * 3 / 4),
         "--talk-min-s", str(talk_s / 2), "--talk-max-s", str(talk_s * 3 / 2),
         "--key-mix", "1:0.1,2:0.2,9:0.05", "--busy-share", "0.1", "--no-answer-share", "0.05",
         "--no-answer-s", str(talk_s / 2), "--event-burst", str(burst), "--shuffle", "true"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        await asyncio.wait_for(asyncio.to_thread(sim.stdout.readline), 20)
        cfg = config(port, events=events_mask, trunk={"max_concurrent": concurrency, "rate_per_s": 10_000},
                     settle_s=0.5, ring_timeout_s=5.0, action_timeout_s=10.0)
        conn = AmiConnector.from_config(cfg)
        metrics = Metrics(process=False)
        conn.metrics = metrics
        waiting: dict[str, asyncio.Future[LateEvent]] = {}
        finals: dict[str, int] = {}

        async def sink(event: LateEvent | InboundEvent) -> None:
            if isinstance(event, LateEvent):
                finals[event.correlation_id] = finals.get(event.correlation_id, 0) + 1
                fut = waiting.pop(event.correlation_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(event)

        conn.bind_events(sink)
        latencies: list[tuple[float, float]] = []  # (sent at, send→queued)
        slots = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()

        async def one(i: int) -> None:
            async with slots:
                req = request(i, wave="bench")
                while True:
                    t0 = time.perf_counter()
                    result = await conn.send(req)
                    if not isinstance(result, Retry):
                        break
                    await asyncio.sleep(0.05)
                latencies.append((t0, time.perf_counter() - t0))
                assert isinstance(result, Accepted), result
                fut = loop.create_future()
                waiting[result.correlation_id] = fut
                if result.correlation_id in finals:  # the final event came before we started waiting
                    return
                await asyncio.wait_for(fut, 60)

        async with conn:
            session = conn.session("ast1")
            ev0, cpu0, sim0, t0 = session.events, _cpu(), process_cpu_s(sim.pid), time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(calls)))
            elapsed, cpu, events = time.perf_counter() - t0, _cpu() - cpu0, session.events - ev0
            sim_cpu = process_cpu_s(sim.pid) - sim0
        assert len(finals) == calls and set(finals.values()) == {1}, "every call exactly one final event"
        print(f"end to end {calls} calls, {concurrency} in flight, Events: {events_mask}, burst {burst}, "
              f"GC {gc_mode}: "
              f"{calls / elapsed:,.0f} originates/s, {events / elapsed:,.0f} AMI events/s received and handled "
              f"({events} in {elapsed:.1f} s)")
        first = sorted(latencies)[concurrency - 1][0] if calls > concurrency else float("inf")
        steady = [d for at, d in latencies if at > first] or [d for _, d in latencies]
        burst_l = [d for at, d in latencies if at <= first]
        print(f"           send→queued p50 {percentile(steady, 0.5) * 1e3:.1f} ms, p99 "
              f"{percentile(steady, 0.99) * 1e3:.1f} ms in steady state (the opening burst of {len(burst_l)}: "
              f"p50 {percentile(burst_l, 0.5) * 1e3:.0f} ms, p99 {percentile(burst_l, 0.99) * 1e3:.0f} ms)")
        print(f"           CPU: this process {cpu:.1f} s ({cpu / elapsed:.0%} of one core; {cpu / calls * 1e3:.2f} ms "
              f"per call → {calls / max(cpu, 1e-9):,.0f} originates and {events / max(cpu, 1e-9):,.0f} events per "
              f"CPU s, all of the connector's work and the driver's included), "
              f"simulator {sim_cpu:.1f} s ({sim_cpu / elapsed:.0%}); "
              f"outcomes {dict(sorted((k[8:], v) for k, v in metrics.events('ami').items() if k[:8] == 'outcome:'))}")
        print(f"           GC ({gc_mode}): {gc_clock.runs} collections, {gc_clock.total_s:.2f} s, "
              f"longest {gc_clock.max_s * 1e3:.0f} ms")
        return {"calls": calls, "concurrency": concurrency, "originates_per_s": calls / elapsed,
                "events_per_s": events / elapsed, "send_p50_ms": percentile(steady, 0.5) * 1e3,
                "send_p99_ms": percentile(steady, 0.99) * 1e3, "cpu_ms_per_call": cpu / calls * 1e3,
                "gc_longest_ms": gc_clock.max_s * 1e3, "simulator_peak_rss_mb": process_peak_rss_mb(sim.pid)}
    finally:
        gc.callbacks.remove(gc_clock)
        if gc_mode == "tuned":
            gc.unfreeze()
            gc.set_threshold(700, 10, 10)
        sim.terminate()
        sim.wait(10)
        if sim.stdout is not None:
            sim.stdout.close()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=10000, help="end-to-end calls")
    p.add_argument("--concurrency", type=int, default=1000)
    p.add_argument("--events", default="call,user,system,agent", help="the connector's Login Events mask")
    p.add_argument("--burst", type=int, default=0, help="VarSet/Newexten per answered call (dialplan class)")
    # Short calls: with 1 000 in flight, Little's law caps originates/s at 1 000 / call length, so
    # long calls would measure the scenario, not the process (1.5 s talk → ~440 calls/s, whatever
    # the process could do).
    p.add_argument("--talk-s", type=float, default=0.2, help="mean talk time; ring time is half of it")
    p.add_argument("--gc", choices=["default", "tuned", "both"], default="both",
                   help="tuned = gc.freeze() after start and gen0 threshold 50 000 (see the module docstring)")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--json", action="store_true", help="also print the figures as one JSON object (last line)")
    args = p.parse_args()
    figures: dict[str, object] = {**bench_parser(3000), **bench_hot_path(3000),
                                  **asyncio.run(bench_tcp_replay(5000))}
    if not args.skip_e2e:
        for mode in (["default", "tuned"] if args.gc == "both" else [args.gc]):
            figures[f"e2e_gc_{mode}"] = asyncio.run(
                bench_end_to_end(args.calls, args.concurrency, args.events, args.burst, args.talk_s, mode))
    figures["peak_rss_mb"] = peak_rss_mb()
    if args.json:
        print(json.dumps({"bench": "ami", **figures}))


if __name__ == "__main__":
    main()
