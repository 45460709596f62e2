"""``make chaos``: a chaos run (or several) with a seed, printing the invariants' verdicts.

    .venv/bin/python load/chaos.py                      # a random seed, 20 000 tasks
    .venv/bin/python load/chaos.py --seed 1234          # replay that seed
    .venv/bin/python load/chaos.py --runs 5 --tasks 3000   # five seeds in a row (seed, seed+1, …)
    .venv/bin/python load/chaos.py --failover --runs 5  # Redis Sentinel: the master is killed mid-wave

Every run prints its seed, the faults it played, the verdicts and the command that replays
it; the exit code is 0 only when every run passed. The work directory of a failed run (each
process's log, the AOF, the generated config) is kept and its path printed. The faults and the
verdicts are described in docs/reliability.md, section "Reliability: chaos runs, bad input, limits".
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.chaos.plan import Options  # noqa: E402
from tests.chaos.run import run_chaos  # noqa: E402

HELP = {
    "tasks": "tasks in the wave (default 20 000)",
    "processes": "dispatcher processes (default 2)",
    "appendfsync": "everysec or always (default: the seed picks)",
    "duration_s": "seconds the wave would take without faults; the faults spread over them (default tasks/120)",
    "kills": "SIGKILL dispatchers at random moments (default on)",
    "redis_restarts": "Redis restarts mid-wave (default 1)",
    "ami_drops": "AMI connections dropped with calls up (default 2)",
    "gateway_bursts": "bursts of 429/500/503 from the gateway (default 4)",
    "smsc_faults": "SMSC sessions dropped or garbage PDUs sent (default 3)",
    "clock_jump": "the clock jumps across a window boundary (default on)",
    "jump_min": "engine minutes the clock jumps (default 10)",
    "failover": "master failover: a master, its replica and three sentinels, the durable point of no return on; "
                "each Redis fault kills the master (default off)",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="load/chaos.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, help="the run's seed (default: random)")
    p.add_argument("--runs", type=int, default=1, help="consecutive seeds to run (default 1)")
    p.add_argument("--keep", action="store_true", help="keep the work directory of passing runs too")
    p.add_argument("--timeout", type=float, help="seconds before a run that has not finished is judged")
    defaults = Options(seed=0)
    for f in fields(Options):
        if f.name == "seed":
            continue
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, dest=f.name, action="store_true", default=default, help=HELP.get(f.name))
            p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false")
        else:
            p.add_argument(flag, type=type(default), default=default, help=HELP.get(f.name))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    values = {f.name: getattr(args, f.name) for f in fields(Options) if f.name != "seed"}
    failed = []
    for seed in range(first, first + args.runs):
        report = asyncio.run(run_chaos(Options(seed=seed, **values), keep=args.keep, timeout_s=args.timeout))
        print(report.text(), flush=True)
        if not report.ok:
            failed.append(seed)
    if args.runs > 1:
        print(f"{args.runs - len(failed)}/{args.runs} runs passed" + (f"; failed seeds: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
