"""What the three simulators share: ``--reach-log`` on every command line, and no engine import."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import simulators.ami.cli as ami_cli
import simulators.gateway.__main__ as gateway_cli
import simulators.smsc.cli as smsc_cli
from simulators.ami import Knobs as AmiKnobs
from simulators.gateway import Knobs as GatewayKnobs

ROOT = Path(__file__).resolve().parent.parent


def test_every_simulator_takes_reach_log_on_its_command_line() -> None:
    args = ami_cli._parser().parse_args(["--reach-log", "ami.jsonl", "--unallocated-numbers", "79000000007",
                                         "--queue-by-context", "volna-pre_court=debt-operators-court"])
    ami = AmiKnobs(**{f.name: getattr(args, f.name) for f in dataclasses.fields(AmiKnobs)})
    assert (ami.reach_log, ami.unallocated(), ami.queue_for("volna-pre_court"), ami.queue_for("other")) == \
        ("ami.jsonl", frozenset({"79000000007"}), "debt-operators-court", "debt-operators")
    smsc = smsc_cli.knobs_from_args(smsc_cli.build_parser().parse_args(["--reach-log", "sms.jsonl",
                                                                        "--mo-parts-routing", "round_robin"]))
    assert (smsc.reach_log, smsc.mo_parts_routing) == ("sms.jsonl", "round_robin")
    args = gateway_cli._parser().parse_args(["--reach-log", "gw.jsonl", "--wa-phone-number-id", "4242"])
    gateway = GatewayKnobs(**{f.name: getattr(args, f.name) for f in dataclasses.fields(GatewayKnobs)})
    assert (gateway.reach_log, gateway.wa_phone_number_id) == ("gw.jsonl", "4242")


def test_no_simulator_module_imports_engine_or_connectors() -> None:
    modules = ["simulators.reach", "simulators.control", "simulators.ami", "simulators.ami.http",
               "simulators.ami.inbound", "simulators.ami.queues", "simulators.smsc", "simulators.smsc.http",
               "simulators.smsc.mo", "simulators.gateway"]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('engine', 'connectors'))\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
