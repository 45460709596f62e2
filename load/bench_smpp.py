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
  private Redis, the wave is started and ``engine.dispatch.runner.Runner`` sends them with the connector
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
import resource
import time
import timeit
from collections.abc import Iterator
from typing import Any

from _common import (
    free_port,
    peak_rss_mb,
    top_functions,
)
from _smpp_engine import TEXTS, engine_child, engine_figures, print_engine
from _smsc import SubmitTimes, simulator

# ---- connector run --------------------------------------------------------------------------


async def run(port: int, n: int, concurrency: int, binds: int, window: int) -> dict[str, Any]:
    from connectors.smpp import SmppConnector
    from engine.domain.models import Attempt, Task
    from engine.domain.outcomes import Channel
    from engine.metrics.registry import Metrics
    from engine.port import Accepted, LateEvent, SendRequest

    conn = SmppConnector.from_config({"accounts": [{
        "name": "bench", "host": "127.0.0.1", "port": port, "system_id": "bench", "password": "secret",
        "binds": binds, "window": window, "rate_per_s": 1e6, "response_timeout_s": 30.0, "window_wait_s": 60.0,
    }]})
    metrics = Metrics(process=False)
    conn.metrics = metrics
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
            stats = metrics.events("smpp")
    return {
        "messages": n, "accepted": accepted, "messages_per_s": n / sent_s,
        "submit_resp_p50_ms": submits.p_ms(0.5), "submit_resp_p99_ms": submits.p_ms(0.99),
        "receipts": receipts, "receipts_per_s": receipts / (last_receipt - t0),
        "cpu_us_per_message": cpu / n * 1e6, "binds": binds, "window": window, "concurrency": concurrency,
        "throttled": stats.get("throttled", 0), "malformed_pdus": stats.get("malformed_pdus", 0),
    }


# ---- engine run -----------------------------------------------------------------------------


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




if __name__ == "__main__":
    main()
