"""What the durable point of no return costs: core tasks/s and SMS messages/s with it off, on with
a replica (``WAIT 1``), and on with the AOF (``WAITAOF 1 0``; Redis ≥ 7.2), the AOF ``everysec``.

    .venv/bin/python load/bench_durable.py [--tasks 50000] [--messages 10000] [--modes off,replica,aof]

Each mode gets fresh servers: a master (AOF on, ``everysec``) and, for ``replica``, its replica on
this machine. All modes use the same server binary: the machine's redis-server when it has
WAITAOF, else the Valkey 8 that ``ops/valkey-install.sh`` unpacks into a cache (the Redis 7.2
fork). The runs themselves are ``load/bench_core.py --json`` and ``load/bench_smpp.py --json
--skip-engine``-less (one-part SMS through the engine, the SMSC simulator, receipts correlated),
pointed at the master by ``REDIS_URL`` and told the mode by ``VOLNA_REDIS__DURABLE_*``.
Besides the rates it prints how many waits Redis served per task (``INFO commandstats``): one per
batch, not one per task.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from engine.store.localredis import RedisServer  # noqa: E402
from tests.redis_sentinel import newer_server, server_version  # noqa: E402

MODES = {
    "off": {},
    "replica": {"VOLNA_REDIS__DURABLE_REPLICAS": "1"},
    "aof": {"VOLNA_REDIS__DURABLE_AOF": "true"},
}


class Servers:
    def __init__(self, binary: str, mode: str, folder: Path) -> None:
        self.master = RedisServer(appendonly=True, appendfsync="everysec", binary=binary, directory=folder / "m")
        self.replica = RedisServer(appendonly=True, appendfsync="everysec", binary=binary, directory=folder / "r") \
            if mode == "replica" else None

    def __enter__(self) -> Servers:
        self.master.start()
        if self.replica is not None:
            self.replica.extra = ["--replicaof", "127.0.0.1", str(self.master.port)]
            self.replica.start()
            with redis.Redis(port=self.replica.port, decode_responses=True) as r:
                deadline = time.monotonic() + 30
                while r.info("replication").get("master_link_status") != "up":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the replica did not synchronise")
                    time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self.replica, self.master):
            if server is not None:
                server.cleanup()

    def waits(self) -> int:
        with redis.Redis(port=self.master.port, decode_responses=True) as r:
            stats = r.info("commandstats")
        return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("wait", "waitaof"))

    def reset_stats(self) -> None:
        with redis.Redis(port=self.master.port) as r:
            r.config_resetstat()


def _run(script: str, args: list[str], env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(ROOT / "load" / script), *args, "--json"], cwd=ROOT,
                          env={**os.environ, **env}, stdout=subprocess.PIPE, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} failed ({proc.returncode})")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure(binary: str, mode: str, tasks: int, messages: int) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": mode}
    with tempfile.TemporaryDirectory(prefix=f"bench-durable-{mode}-") as tmp:
        with Servers(binary, mode, Path(tmp) / "core") as servers:
            env = {"REDIS_URL": servers.master.url, **MODES[mode]}
            servers.reset_stats()
            core = _run("bench_core.py", ["--tasks", str(tasks)], env, 600 + tasks / 100)
            out["core_tasks_per_s"] = core["tasks_per_s"]
            out["core_p99_ms"] = core["p99_ms"]
            out["core_waits_per_task"] = servers.waits() / tasks
        with Servers(binary, mode, Path(tmp) / "sms") as servers:
            env = {"REDIS_URL": servers.master.url, **MODES[mode]}
            servers.reset_stats()
            sms = _run("bench_smpp.py", ["--messages", str(messages), "--text", "short"], env, 600 + messages / 20)
            engine = sms["engine_short"]
            out["sms_messages_per_s"] = engine["messages_per_s"]
            out["sms_claim_result_p99_ms"] = engine["claim_result_p99_ms"]
            out["sms_waits_per_message"] = servers.waits() / messages
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=50_000, help="core tasks per mode (default 50 000)")
    p.add_argument("--messages", type=int, default=10_000, help="SMS tasks per mode (default 10 000)")
    p.add_argument("--modes", default="off,replica,aof")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    binary = newer_server()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if binary is None:
        binary = "redis-server"
        if "aof" in modes:
            print("no server with WAITAOF here (Redis >= 7.2): the aof mode is left out", file=sys.stderr)
            modes.remove("aof")
    version = ".".join(map(str, server_version(binary)))
    rows = [measure(binary, mode, args.tasks, args.messages) for mode in modes]
    if args.json:
        print(json.dumps({"bench": "durable", "server": f"{Path(binary).name} {version}", "rows": rows}))
        return
    print(f"durable point of no return: {args.tasks} core tasks, {args.messages} one-part SMS per mode "
          f"({Path(binary).name} {version}, AOF everysec, replica on this machine)")
    print(f"  {'mode':8} {'core tasks/s':>13} {'p99 ms':>7} {'waits/task':>11} {'SMS msg/s':>10} {'p99 ms':>7} "
          f"{'waits/msg':>10}")
    for r in rows:
        print(f"  {r['mode']:8} {r['core_tasks_per_s']:13.0f} {r['core_p99_ms']:7.0f} {r['core_waits_per_task']:11.4f} "
              f"{r['sms_messages_per_s']:10.0f} {r['sms_claim_result_p99_ms']:7.0f} {r['sms_waits_per_message']:10.4f}")


if __name__ == "__main__":
    main()
