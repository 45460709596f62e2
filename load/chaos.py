"""``make chaos``: a chaos run (or several) with a seed, printing the invariants' verdicts.

    .venv/bin/python load/chaos.py                      # a random seed, 20 000 tasks
    .venv/bin/python load/chaos.py --seed 1234          # replay that seed
    .venv/bin/python load/chaos.py --runs 5 --tasks 3000   # five seeds in a row (seed, seed+1, …)

Every run prints its seed, the faults it played, the verdicts and the command that replays
it; the exit code is 0 only when every run passed. The work directory (process logs, the
AOF, the SMS records) of a failed run is kept and printed.
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

DEFAULT_TASKS = 20_000


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
            p.add_argument(flag, dest=f.name, action="store_true", default=default)
            p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false")
        else:
            p.add_argument(flag, type=type(default), default=DEFAULT_TASKS if f.name == "tasks" else default)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    values = {f.name: getattr(args, f.name) for f in fields(Options) if f.name != "seed"}
    if values["duration_s"] == Options(seed=0).duration_s and values["tasks"] > 3000:
        values["duration_s"] = round(values["duration_s"] * values["tasks"] / 3000, 1)
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
