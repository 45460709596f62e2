"""``make bench``: run every ``load/bench_*.py`` with ``--json`` and print one table.

    .venv/bin/python load/bench_all.py [--quick]

``--quick`` passes each script smaller sizes (see QUICK) for a fast look; docs/benchmarks.md's
table comes from a full run.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUICK = {
    "bench_charts.py": ["--records", "50000"],
    "bench_core.py": ["--tasks", "20000"],
    "bench_messengers.py": ["--messages", "1000", "--webhooks", "5000"],
    "bench_smpp.py": ["--messages", "5000"],
    "bench_ami.py": ["--calls", "2000"],
    "bench_inbound.py": ["--replies", "100", "--calls", "1000"],
    "bench_vs_kannel.py": ["--messages", "2000", "--runs", "1"],
    "bench_plan.py": ["--debtors", "50000"],
}


def flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "bench":
                continue
            flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, bool):
        out.append((prefix, str(value)))
    elif isinstance(value, int | float):
        if isinstance(value, float):
            out.append((prefix, f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"))
        else:
            out.append((prefix, f"{value:,}"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    rows: list[tuple[str, str, str]] = []
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if script.name == "bench_all.py":
            continue
        extra = QUICK.get(script.name, []) if args.quick else []
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script), "--json", *extra], capture_output=True, text=True,
                              timeout=1800, cwd=HERE)
        took = time.perf_counter() - t0
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            failed.append(script.name)
            print(f"{script.name} failed ({proc.returncode}):\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        figures: list[tuple[str, str]] = []
        flatten("", json.loads(lines[-1]), figures)
        name = script.stem.removeprefix("bench_")
        rows.extend((name, key, value) for key, value in figures)
        rows.append((name, "run_seconds", f"{took:,.0f}"))
    width = max((len(f"{b}.{k}") for b, k, _ in rows), default=10)
    print(f"Volna benchmarks — {platform.node()}, {platform.machine()}, "
          f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'figure':{width}s}  value")
    for bench, key, value in rows:
        print(f"{bench + '.' + key:{width}s}  {value:>14s}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
