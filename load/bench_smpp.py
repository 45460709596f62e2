"""SMPP throughput: messages/s through ``SmppConnector`` to the SMSC simulator, and receipts/s back.

    .venv/bin/python load/bench_smpp.py [--messages 20000] [--concurrency 200] [--binds 2]
                                        [--window 10] [--json] [--profile] [--micro] [--smsc-port N]

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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import socket
import subprocess
import sys
import time
import timeit
from collections.abc import Iterator
from typing import Any

from _common import ROOT, peak_rss_mb, percentile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def simulator(port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "simulators.smsc", "--port", str(port), "--log-level", "WARNING",
                             "--account", "bench:secret"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
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


async def run(port: int, n: int, concurrency: int, binds: int, window: int) -> dict[str, Any]:
    from connectors.base import Accepted, LateEvent, SendRequest
    from connectors.smpp import SmppConnector
    from connectors.smpp.bind import SmppBind
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

    # submit → submit_sm_resp per PDU
    rtts: list[float] = []
    original = SmppBind.submit

    def timed(self: SmppBind, body: bytes) -> asyncio.Future[Any]:
        fut = original(self, body)
        t0 = time.perf_counter()
        fut.add_done_callback(lambda _: rtts.append(time.perf_counter() - t0))
        return fut

    SmppBind.submit = timed  # type: ignore[method-assign]

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

    async with conn:
        await conn.wait_bound(10.0)
        want_receipts = 500
        await push(requests[n:])  # warm up
        await asyncio.wait_for(all_in.wait(), 30)
        rtts.clear()
        accepted = receipts = 0
        all_in.clear()
        want_receipts = n
        cpu0, t0 = time.process_time(), time.perf_counter()
        await push(requests[:n])
        sent_s = time.perf_counter() - t0
        await asyncio.wait_for(all_in.wait(), 120)
        cpu = time.process_time() - cpu0
        stats = conn.stats.to_dict()
    SmppBind.submit = original  # type: ignore[method-assign]
    return {
        "messages": n, "accepted": accepted, "messages_per_s": n / sent_s,
        "submit_resp_p50_ms": percentile(rtts, 0.5) * 1000, "submit_resp_p99_ms": percentile(rtts, 0.99) * 1000,
        "receipts": receipts, "receipts_per_s": receipts / (last_receipt - t0),
        "cpu_us_per_message": cpu / n * 1e6, "binds": binds, "window": window, "concurrency": concurrency,
        "throttled": stats["throttled"], "malformed_pdus": stats["malformed_pdus"],
    }


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
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--profile", action="store_true", help="cProfile the connector side")
    p.add_argument("--micro", action="store_true", help="also time the codec paths per PDU")
    p.add_argument("--smsc-port", type=int, help="use a simulator already running on this port (system_id "
                                                  "bench, password secret) instead of starting one")
    args = p.parse_args()
    port = args.smsc_port or free_port()
    profiler = cProfile.Profile() if args.profile else None
    with contextlib.nullcontext() if args.smsc_port else simulator(port):
        if profiler:
            profiler.enable()
        figures = asyncio.run(run(port, args.messages, args.concurrency, args.binds, args.window))
        if profiler:
            profiler.disable()
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["simulator_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if args.micro:
        figures["micro"] = micro()
    if args.json:
        print(json.dumps({"bench": "smpp", **figures}))
    else:
        f = figures
        print(f"smpp  {f['messages_per_s']:8.0f} messages/s  ({f['accepted']}/{f['messages']} accepted, "
              f"{f['binds']} binds × window {f['window']}, concurrency {f['concurrency']})")
        print(f"      submit→submit_sm_resp p50 {f['submit_resp_p50_ms']:.2f} ms, p99 {f['submit_resp_p99_ms']:.2f} ms")
        print(f"      {f['receipts_per_s']:8.0f} receipts/s ({f['receipts']} receipts)")
        print(f"      connector CPU {f['cpu_us_per_message']:.0f} µs per message (submit + receipt)")
        print(f"      peak RSS {f['peak_rss_mb']:.0f} MB (simulator {f['simulator_peak_rss_mb']:.0f} MB)")
        if args.micro:
            for name, value in f["micro"].items():
                print(f"      {name:28s} {value:7.2f} µs")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main()
