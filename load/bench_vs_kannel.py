"""Volna against Kannel, side by side, on an SMSC neither of them (nor we) wrote.

    .venv/bin/python load/bench_vs_kannel.py [--messages 20000] [--runs 3] [--parts 1|3]
                                             [--kannel-feed prefill|live] [--json] [--keep]

The SMSC is node-smpp's server (``tests/peers/node_smsc``: a receipt 200 ms after each submit
that asks for one, round-robin over the client's binds; no throttling), fresh for every run.
Both clients bind twice (transceiver) with 10 submits outstanding per bind, and send the same
UCS-2 Cyrillic text (one part, or three with ``--parts 3``) to ``--messages`` distinct numbers.

* **Kannel** (Debian's bearerbox + smsbox, ``load/kannel/kannel.conf.in``: two SMPP groups of one
  ``smsc-id``, ``max-pending-submits`` 10, internal DLR storage, no store file) takes the messages
  over smsbox's sendsms HTTP interface (``coding=2``, ``dlr-mask=3``, a ``dlr-url`` to an aiohttp
  receiver in this process that counts the callbacks). ``--kannel-feed prefill`` (default): the
  messages are queued while the SMSC is not up yet, then it starts, as a wave loaded the night
  before; ``live``: fed while the SMSC is up (Kannel's CPU then includes the HTTP intake).
* **Volna** runs as a user runs it: a private redis-server (no AOF, as Kannel has no store), a
  ``volna.toml`` with ``[channels.sms]``, ``volna load`` of a task file, ``volna run --channels sms``
  in its own process, ``volna wave start``.
* Measured at the SMSC: messages/s (and parts/s) from the first submit_sm accepted to the last;
  end to end: from the first accepted to the last outcome recorded (Kannel: the last DLR callback
  here; Volna: the last receipt answered, which it does once the result is in Redis); receipts
  the SMSC sent; CPU per message of every process involved, from ``/proc/<pid>/stat`` before the
  first submit and after the last outcome (Kannel: bearerbox, smsbox; Volna: ``volna run``,
  redis-server; the SMSC's too, for reference). Intake is left out on both sides by default
  (Kannel's sendsms requests are answered before the SMSC starts; ``volna load`` runs before the
  wave starts).
* Runs alternate K, V, K, V, …; the medians of each side and the ratio Volna / Kannel.
* Checked: the SMSC took every message once, whole (``per_destination``: each number once;
  ``parts_per_message``; no duplicate part); Kannel called back one ``delivered`` report per
  message; Volna's every task ended ``delivered`` once (``volna wave status --json``, ``volna
  results export``). A failed check prints what it saw and exits 1.

Kannel asks for a receipt on one part of a long message, Volna on each (it reports a multipart
message delivered when all its parts are): with ``--parts 3`` the SMSC sends Volna three times
the receipts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import free_port, process_cpu_s, require
from _kannel import PASSWORD, SYSTEM_ID, DlrSink, Kannel, dlr_receiver, feed, kannel_binaries, phone
from _volna_wave import WAVE, VolnaCli, check_results, write_config, write_scenarios, write_tasks

#: The texts both send: a short notice (one UCS-2 part, ≤ 70 characters) and a reminder of three
#: UCS-2 parts (135–201 characters; both split at 67 with an 8-bit reference).
TEXTS = {
    1: "Мосэнергосбыт: долг 12 345,67 ₽, л/с 7701-123456. Тел. 8-800-100-0000",
    3: ("Мосэнергосбыт: по лицевому счёту 7701-123456 задолженность 12 345,67 ₽. Оплатите до 10.12, "
        "чтобы избежать пени. Оплата онлайн: https://pay.example/7701 Тел. 8-800-100-0000"),
}
BINDS, WINDOW, RECEIPT_DELAY_MS = 2, 10, 200


def node_smsc(system_id: str, port: int = 0) -> Any:
    from tests.peers.node_smsc import NodeSmsc

    return NodeSmsc(accounts={system_id: PASSWORD}, receipt_delay_ms=RECEIPT_DELAY_MS, port=port)


def smsc_figures(stats: dict[str, Any], n: int, parts: int) -> dict[str, Any]:
    """Check the SMSC took each message once, whole; its rates."""
    per_destination = stats["per_destination"]
    require(len(per_destination) == n and set(per_destination.values()) == {1},
            f"the SMSC took {sum(per_destination.values())} messages for {len(per_destination)} numbers "
            f"(want {n}, once each)")
    require(stats["accepted_parts"] == n * parts and stats["parts_per_message"] == {str(parts): n}
            and stats["duplicate_parts"] == 0 and stats["incomplete"] == 0,
            f"the SMSC took {stats['accepted_parts']} parts, messages by parts {stats['parts_per_message']}, "
            f"{stats['duplicate_parts']} duplicate, {stats['incomplete']} incomplete (want {n} × {parts} parts)")
    send_s = (stats["last_accept_ms"] - stats["first_accept_ms"]) / 1000
    return {"messages": n, "parts": parts, "accepted_parts": stats["accepted_parts"], "send_s": send_s,
            "messages_per_s": n / send_s, "parts_per_s": stats["accepted_parts"] / send_s,
            "receipts_sent": stats["receipts_sent"], "receipts_on_other_bind": stats["receipts_on_other_session"],
            "throttled": stats["throttled"]}


def per_message_us(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    out = {name: (after[name] - before[name]) / n * 1e6 for name in before}
    out["total"] = sum(v for k, v in out.items() if k != "smsc")
    return out


async def wait_for(predicate: Any, timeout_s: float, what: str, alive: Any = None, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(poll_s)


# ---- Kannel --------------------------------------------------------------------------------


async def kannel_run(n: int, parts: int, folder: Path, feed_mode: str, concurrency: int) -> dict[str, Any]:
    sink = DlrSink()
    smsc_port = free_port()
    kannel = Kannel(folder, smsc_port)
    smsc = node_smsc(SYSTEM_ID, smsc_port)
    timeout_s = 120 + n / 50
    async with dlr_receiver(sink) as dlr_port:
        with kannel.running(WINDOW):
            try:
                answers = None
                if feed_mode == "prefill":
                    answers = await feed(kannel, n, TEXTS[parts], dlr_port, concurrency)
                await asyncio.to_thread(smsc.start)
                if feed_mode == "live":
                    await wait_for(lambda: _bound(smsc, BINDS), 30, "Kannel's binds")
                before = {**kannel.cpu_s(), "smsc": process_cpu_s(smsc.pid)}
                t0 = time.perf_counter()
                if feed_mode == "live":
                    answers = await feed(kannel, n, TEXTS[parts], dlr_port, concurrency)

                async def all_reported() -> bool:
                    return sink.count >= n

                def alive() -> None:
                    for name, proc in (("bearerbox", kannel.bearerbox), ("smsbox", kannel.smsbox)):
                        if proc is not None and proc.poll() is not None:
                            raise RuntimeError(f"{name} exited {proc.returncode}")

                await wait_for(all_reported, timeout_s, f"{n} delivery reports (have {sink.count})", alive)
                wall_s = time.perf_counter() - t0
                after = {**kannel.cpu_s(), "smsc": process_cpu_s(smsc.pid)}
                await asyncio.sleep(0.3)  # a report more than one per message would show now
                stats = await asyncio.to_thread(smsc.stats)
            except BaseException:
                print(kannel.log_tail(), file=sys.stderr)
                raise
            finally:
                await asyncio.to_thread(smsc.stop)
    figures = smsc_figures(stats, n, parts)
    require(len(sink.per_id) == n and set(sink.per_id.values()) == {1} and dict(sink.types) == {"1": n},
            f"DLR callbacks: {sink.count} for {len(sink.per_id)} messages, types {dict(sink.types)} "
            f"(want one type-1 'delivered' report for each of {n})")
    figures.update({
        "system": "kannel", "feed": feed_mode, "sendsms_answers": dict(answers or {}),
        "dlr_callbacks": sink.count, "wall_s": wall_s,
        "end_to_end_per_s": n / ((sink.last_ms - stats["first_accept_ms"]) / 1000),
        "cpu_us_per_message": per_message_us(before, after, n),
    })
    return figures


async def _bound(smsc: Any, binds: int) -> bool:
    return int((await smsc.astats(brief=True))["bound_now"]) >= binds


# ---- Volna ---------------------------------------------------------------------------------


async def volna_run(n: int, parts: int, folder: Path, profile: Path | None = None,
                    processes: int = 1, dispatcher: dict[str, Any] | None = None) -> dict[str, Any]:
    """``processes`` dispatchers share the SMSC's binds: each opens ``BINDS // processes`` of
    them, so the SMSC sees the same binds and windows whatever the count."""
    from engine.store.localredis import RedisServer

    redis = RedisServer(directory=folder / "redis").start()
    smsc = node_smsc("volna")
    dispatchers: list[subprocess.Popen[bytes]] = []
    profiler: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.to_thread(smsc.start)
        cli = VolnaCli(write_config(folder, redis.url, smsc.port, BINDS // processes, WINDOW, "volna", PASSWORD,
                                   dispatcher))
        write_scenarios(folder, TEXTS[parts])
        tasks = write_tasks(folder, n, phone)
        cli("wave", "create", WAVE, "--campaign", "bench", "--day", "2026-12-01")
        loaded = cli("load", str(tasks), "--wave", WAVE)
        require(f"accepted {n}," in loaded, f"volna load: {loaded.strip()}")
        logs = [folder / f"volna-run-{i + 1}.log" for i in range(processes)]
        dispatchers = [cli.start_dispatcher(log) for log in logs]
        profiler = start_profiler(dispatchers[0].pid, profile) if profile is not None else None

        def alive() -> None:
            for proc, log in zip(dispatchers, logs, strict=True):
                if proc.poll() is not None:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"volna run exited {proc.returncode}:\n{tail}")

        def cpu() -> dict[str, float]:
            return {"volna_run": sum(process_cpu_s(p.pid) for p in dispatchers),
                    "redis": process_cpu_s(redis.proc.pid), "smsc": process_cpu_s(smsc.pid)}  # type: ignore[union-attr]

        await wait_for(lambda: _bound(smsc, BINDS), 30, "volna run's binds", alive)
        before = cpu()
        redis_before = await redis_traffic(redis.url)
        t0 = time.perf_counter()
        cli("wave", "start", WAVE)
        want = n * parts

        async def all_recorded() -> bool:
            # brief: the per-destination counts would cost both the SMSC and this process far
            # more than the run's own work on these two cores
            stats = await smsc.astats(brief=True)
            return int(stats["receipts_acked"]) >= want

        await wait_for(all_recorded, 120 + n / 50, f"{want} receipts answered", alive, poll_s=0.05)
        wall_s = time.perf_counter() - t0
        after = cpu()
        redis_after = await redis_traffic(redis.url)
        stats = await asyncio.to_thread(smsc.stats)
        checked = await asyncio.to_thread(check_results, cli, folder, n)
    finally:
        if profiler is not None:
            stop_profiler(profiler)
        for proc in dispatchers:
            if proc.poll() is None:
                proc.terminate()
        for proc in dispatchers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        await asyncio.to_thread(smsc.stop)
        redis.stop()
    figures = smsc_figures(stats, n, parts)
    figures.update({
        "system": "volna", "processes": processes, "wall_s": wall_s, "wave": checked,
        "end_to_end_per_s": n / ((stats["last_ack_ms"] - stats["first_accept_ms"]) / 1000),
        "cpu_us_per_message": per_message_us(before, after, n),
        "redis_per_message": {k: round((redis_after.get(k, 0) - redis_before.get(k, 0)) / n, 2)
                              for k in redis_after if redis_after.get(k, 0) != redis_before.get(k, 0)},
    })
    return figures


async def redis_traffic(url: str) -> dict[str, float]:
    """What Volna asked of Redis so far: calls per command, bytes in and out, and the round trips
    that carried them (``total_commands_processed`` counts a pipeline's commands one by one; the
    connections' reads are the round trips: ``io_threaded_reads_processed`` is off, so take
    ``total_net_input_bytes`` and the call counts)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        stats = await client.info("commandstats")
        net = await client.info("stats")
    finally:
        await client.aclose()
    out = {name.removeprefix("cmdstat_"): float(v["calls"]) for name, v in stats.items()}
    out["bytes_in"] = float(net["total_net_input_bytes"])
    out["bytes_out"] = float(net["total_net_output_bytes"])
    return out


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``volna run`` (``--profile``: where the dispatcher's time goes under this
    very load); a flame graph, or speedscope JSON when ``out`` ends in ``.json``."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    fmt = "speedscope" if out.suffix == ".json" else "flamegraph"
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "250", "--format", fmt,
                             "--output", str(out), "--nonblocking"], stdout=subprocess.DEVNULL)


def stop_profiler(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


# ---- the runs --------------------------------------------------------------------------------


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("messages_per_s", "parts_per_s", "end_to_end_per_s", "send_s", "receipts_sent")
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["cpu_us_per_message"] = {p: statistics.median(r["cpu_us_per_message"][p] for r in runs)
                                 for p in runs[0]["cpu_us_per_message"]}
    return out


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    kannel = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "kannel"], capture_output=True, text=True)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True)
    return {"nproc": int(subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or 0),
            "cpu": model, "python": platform.python_version(), "kannel": kannel.stdout.strip(),
            "node": node.stdout.strip(), "date": time.strftime("%Y-%m-%d %H:%M")}


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    kannel_runs: list[dict[str, Any]] = []
    volna_runs: list[dict[str, Any]] = []
    tmp = tempfile.mkdtemp(prefix="bench-vs-kannel-")
    try:
        for i in range(args.runs):
            for system, runs in (("kannel", kannel_runs), ("volna", volna_runs)):
                if system not in args.systems:
                    continue
                folder = Path(tmp) / f"{system}-{i + 1}"
                folder.mkdir()
                if system == "kannel":
                    figures = await kannel_run(args.messages, args.parts, folder, args.kannel_feed, args.concurrency)
                else:
                    profile = args.profile.with_name(f"{args.profile.stem}-{i + 1}{args.profile.suffix}") \
                        if args.profile is not None else None
                    figures = await volna_run(args.messages, args.parts, folder, profile, args.processes,
                                              dict(args.dispatcher))
                runs.append(figures)
                if not args.json:
                    print_run(i + 1, figures)
    finally:
        if args.keep:
            print(f"work folders kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if not (kannel_runs and volna_runs):
        return {"bench": "vs_kannel", "messages": args.messages, "parts": args.parts, "runs": args.runs,
                "kannel_runs": kannel_runs, "volna_runs": volna_runs, "machine": machine()}
    kannel, volna = medians(kannel_runs), medians(volna_runs)
    return {
        "bench": "vs_kannel", "messages": args.messages, "parts": args.parts, "runs": args.runs,
        "binds": BINDS, "window": WINDOW, "receipt_delay_ms": RECEIPT_DELAY_MS, "kannel_feed": args.kannel_feed,
        "kannel": kannel, "volna": volna,
        "ratio_volna_to_kannel": volna["messages_per_s"] / kannel["messages_per_s"],
        "ratio_end_to_end": volna["end_to_end_per_s"] / kannel["end_to_end_per_s"],
        "machine": machine(), "kannel_runs": kannel_runs, "volna_runs": volna_runs,
    }


def setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def print_run(i: int, f: dict[str, Any]) -> None:
    cpu = ", ".join(f"{k} {v:.0f}" for k, v in f["cpu_us_per_message"].items())
    print(f"run {i} {f['system']:6s} {f['messages_per_s']:7.0f} messages/s ({f['parts_per_s']:.0f} parts/s) at the "
          f"SMSC; end to end {f['end_to_end_per_s']:.0f}/s; receipts {f['receipts_sent']}; CPU µs/message: {cpu}",
          flush=True)
    if "redis_per_message" in f:
        print("       Redis per message: " + ", ".join(f"{k} {v:g}" for k, v in sorted(f["redis_per_message"].items())),
              flush=True)


def print_summary(r: dict[str, Any]) -> None:
    m = r["machine"]
    if "kannel" not in r:
        return  # one side only (--systems): its runs are printed
    print(f"\n{r['messages']} messages of {r['parts']} UCS-2 part(s), {r['binds']} binds × window {r['window']}, "
          f"receipts after {r['receipt_delay_ms']} ms; medians of {r['runs']} runs (Kannel fed: {r['kannel_feed']})")
    print(f"{m['date']}, {m['nproc']} × {m['cpu']}, Kannel {m['kannel']}, node {m['node']}, Python {m['python']}")
    print(f"{'':8s} {'messages/s':>11s} {'parts/s':>9s} {'end-to-end/s':>13s} {'receipts':>9s}  CPU µs per message")
    for name in ("kannel", "volna"):
        f = r[name]
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in f["cpu_us_per_message"].items())
        print(f"{name:8s} {f['messages_per_s']:11.0f} {f['parts_per_s']:9.0f} {f['end_to_end_per_s']:13.0f} "
              f"{f['receipts_sent']:9.0f}  {cpu}")
    print(f"Volna / Kannel: {r['ratio_volna_to_kannel']:.2f} (messages/s at the SMSC), "
          f"{r['ratio_end_to_end']:.2f} (end to end)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--runs", type=int, default=3, help="runs of each, alternating Kannel and Volna")
    p.add_argument("--parts", type=int, choices=sorted(TEXTS), default=1, help="UCS-2 parts per message")
    p.add_argument("--kannel-feed", choices=["prefill", "live"], default="prefill",
                   help="queue Kannel's messages before the SMSC starts (default), or feed them while it runs")
    p.add_argument("--concurrency", type=int, default=50, help="sendsms requests in flight to Kannel")
    p.add_argument("--processes", type=int, choices=[1, 2], default=1,
                   help="volna run processes; they share the same 2 binds (one each with 2)")
    p.add_argument("--dispatcher", type=setting, action="append", default=[], metavar="KEY=VALUE",
                   help="a [dispatcher] setting for the volna runs, e.g. batch_size=50 (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--keep", action="store_true", help="keep the runs' folders (configs, logs)")
    p.add_argument("--systems", type=lambda s: set(s.split(",")), default={"kannel", "volna"},
                   help="kannel,volna (default both; one alone prints its runs without a ratio)")
    p.add_argument("--profile", type=Path, help="py-spy record of each volna run into this file (-1, -2, … "
                   "added; .svg flame graph or .json speedscope)")
    args = p.parse_args()
    try:
        kannel_binaries()
        from tests.peers.node_smsc import node_binaries

        node_binaries()
        result = asyncio.run(run_all(args))
    except (AssertionError, RuntimeError, TimeoutError) as e:
        print(f"bench_vs_kannel: FAILED: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
