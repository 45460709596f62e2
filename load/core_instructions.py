"""Instructions per task of the core's dispatch, counted by callgrind: a figure that does not move
with the machine's load, for comparing two versions of the code (timing on a shared 2-core
machine varies by ±15 % from run to run).

    .venv/bin/python load/core_instructions.py [--tasks 10000] [--checkout DIR] [--redis]

``--checkout``: another checkout to measure with the same method (``git worktree add /tmp/old
57cc02a``), run with this virtualenv. Runs ``bench_core``'s own run under ``valgrind --tool=callgrind``
(about 50 times slower: 10 000 tasks take 3 minutes), the collector set as ``volna run`` sets it,
and counts the instructions between the bench's two CPU marks (the dispatch, not the intake).
``--redis``: Redis's instructions per task instead, the engine's side run as usual against a
private ``redis-server`` under callgrind, counted only while the dispatch runs (the scripts'
cost: Redis's CPU per task in ``bench_core`` moves with the machine as the engine's does).
Needs valgrind (``apt install valgrind``). Not named ``bench_*``: ``make bench`` would run it, and
it takes minutes per version.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def inner(checkout: Path, tasks: int) -> None:
    """Inside valgrind: dump the profile at each of the bench's CPU marks."""
    sys.path[:0] = [str(checkout), str(checkout / "load")]
    import engine.context  # noqa: F401  (start-up imports before the freeze, as in volna run)

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    marks = iter(("start", "end"))
    process_time = time.process_time

    def mark() -> float:
        subprocess.run(["callgrind_control", "-d", next(marks, "after"), str(os.getpid())], capture_output=True)
        return process_time()

    time.process_time = mark
    import bench_core  # the checkout's own

    asyncio.run(bench_core.run(tasks, 500))


def inner_redis(checkout: Path, tasks: int, redis_pid: int) -> None:
    """Outside valgrind, against the server under it: instrument the server during the dispatch."""
    sys.path[:0] = [str(checkout), str(checkout / "load")]
    switches = iter(("on", "off"))
    process_time = time.process_time

    def mark() -> float:
        switch = next(switches, None)
        if switch is not None:
            subprocess.run(["callgrind_control", "-i", switch, str(redis_pid)], capture_output=True)
        return process_time()

    time.process_time = mark
    import bench_core  # the checkout's own

    asyncio.run(bench_core.run(tasks, 500))


def redis_instructions(checkout: Path, tasks: int, tmp: str) -> int:
    """Runs the bench against a redis-server under callgrind; its instructions while dispatching."""
    sys.path.insert(0, str(HERE.parent))
    from engine.store.localredis import free_port

    port = free_port()
    server = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                               f"--callgrind-out-file={tmp}/redis.out",
                               "redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                break
            time.sleep(0.2)
        run = subprocess.run([sys.executable, __file__, "--inner-redis", str(server.pid), "--tasks", str(tasks),
                              "--checkout", str(checkout)], capture_output=True, text=True,
                             env={**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}"})
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"the run against Redis under valgrind failed ({run.returncode}): {last}")
    finally:
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
        server.wait(60)
    text = Path(f"{tmp}/redis.out").read_text(errors="replace")
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("totals:"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--checkout", type=Path, default=HERE.parent)
    p.add_argument("--redis", action="store_true", help="count Redis's instructions, not the engine's")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--inner-redis", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inner:
        inner(args.checkout.resolve(), args.tasks)
        return 0
    if args.inner_redis:
        inner_redis(args.checkout.resolve(), args.tasks, args.inner_redis)
        return 0
    if args.tasks < 1:
        print(f"core_instructions: --tasks must be at least 1 (got {args.tasks})", file=sys.stderr)
        return 2
    if not (args.checkout / "load" / "bench_core.py").is_file():
        print(f"core_instructions: {args.checkout} is not a Volna checkout (no load/bench_core.py)", file=sys.stderr)
        return 2
    if shutil.which("valgrind") is None:
        print("core_instructions: valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    if args.redis and shutil.which("redis-server") is None:
        print("core_instructions: redis-server is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        if args.redis:
            try:
                total = redis_instructions(args.checkout.resolve(), args.tasks, tmp)
            except RuntimeError as exc:
                print(f"core_instructions: {exc}", file=sys.stderr)
                return 1
            print(f"core dispatch, Redis: {total / args.tasks:,.0f} instructions per task "
                  f"({args.tasks} tasks, {args.checkout})")
            return 0
        run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", sys.executable,
                              __file__, "--inner", "--tasks", str(args.tasks), "--checkout", str(args.checkout)],
                             capture_output=True, text=True)
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"core_instructions: the run under valgrind failed ({run.returncode}): {last}", file=sys.stderr)
            return 1
        for dump in Path(tmp).glob("cg.out*"):
            text = dump.read_text(errors="replace")
            if "Trigger: dump end" in text:
                total = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("totals:"))
                print(f"core dispatch: {total / args.tasks:,.0f} instructions per task "
                      f"({args.tasks} tasks, {args.checkout})")
                return 0
    print("core_instructions: no dump at the end of the dispatch", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
