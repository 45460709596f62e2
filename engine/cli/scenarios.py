"""``volna scenarios check|compile|prompts``: scenarios checked (schema and the law), their IVR
part compiled to dialplan, and the sound files they need listed, checked and synthesized.

* ``check`` — every ``scenarios/*.yaml``: a schema error (the file and the key), then what the
  law does not allow (:mod:`engine.domain.compliance`: the file and the step or template); exit 2.
* ``compile [--out DIR]`` — the same checks, then ``extensions_volna.conf`` (and a sample
  ``manager.conf``).
* ``prompts [--sounds DIR] [--synth DIR] [--force] [--json]`` — every prompt file the scenarios
  need (prompt lists, every file a prompt variable allows, the digit, unit and date files of
  amounts, accounts and dates), which scenarios need it and what it says; with ``--sounds``,
  which are missing from that Asterisk sounds directory (exit 3 when any is); with ``--synth``,
  placeholders for all of them (espeak-ng + sox, 8 kHz mono WAV) under ``DIR/<language>/``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.cli.common import Subparsers
from engine.config.settings import Settings
from engine.domain.scenarios import Scenario
from engine.errors import ConfigError


async def cmd_scenarios(args: argparse.Namespace, settings: Settings) -> int:
    from engine.config.scenario_files import lawful_scenarios

    directory = Path(args.dir or settings.scenarios_dir)
    if not directory.is_dir():  # noqa: ASYNC240 (CLI: nothing else runs on this loop)
        raise ConfigError(f"{directory}: no such folder of scenarios")
    scenarios = lawful_scenarios(directory)
    if args.action == "check":
        for name, sc in scenarios.items():
            print(f"{name}: ok ({sc.title})")
        return 0
    if args.action == "prompts":
        return await _prompts(args, scenarios)
    from connectors.ami.dialplan import write_dialplan

    paths = write_dialplan(scenarios, Path(args.out))
    for path in paths:
        print(f"wrote {path}")
    return 0


@dataclass
class _Need:
    language: str
    prompt: str
    text: str
    scenarios: list[str] = field(default_factory=list)


async def _prompts(args: argparse.Namespace, scenarios: dict[str, Scenario]) -> int:
    from engine.cli import sounds
    from engine.domain.ivr import required_prompts

    need: dict[tuple[str, str], _Need] = {}
    for name, scenario in scenarios.items():
        if scenario.ivr is None:
            continue
        lang = scenario.ivr.language
        for prompt, text in required_prompts(scenario.ivr).items():
            entry = need.setdefault((lang, prompt), _Need(lang, prompt, text))
            entry.text = entry.text or text
            entry.scenarios.append(name)
    rows = [need[k] for k in sorted(need)]
    if args.synth:
        out = Path(args.synth)
        written = 0
        for lang in sorted({r.language for r in rows}):
            texts = {r.prompt: r.text for r in rows if r.language == lang}
            written += len(await sounds.synthesize(out, lang, texts, force=args.force))
        print(f"synthesized {written} prompts into {out} ({len(rows) - written} already there)")
    absent = [r for r in rows if sounds.present(Path(args.sounds), r.language, r.prompt) is None] \
        if args.sounds else []
    if args.json:
        missing = [r.prompt for r in absent] if args.sounds else None
        print(json.dumps({"prompts": [asdict(r) for r in rows], "missing": missing}, ensure_ascii=False, indent=2))
    elif args.sounds:
        print(f"{len(rows) - len(absent)} of {len(rows)} prompts present in {args.sounds}; missing {len(absent)}:")
        for r in absent:
            print(f"  {r.language}/{r.prompt}  ({', '.join(r.scenarios)})  {r.text}")
    elif not args.synth:
        for r in rows:
            print(f"{r.language}/{r.prompt}\t{','.join(r.scenarios)}\t{r.text}")
    return 3 if absent else 0


def add(sub: Subparsers) -> None:
    sc = sub.add_parser("scenarios", help="check scenarios; compile their IVR part to dialplan; list their prompts")
    scsub = sc.add_subparsers(dest="action", required=True)
    scsub.add_parser("check", help="schema and legal checks (exit 2 when any fails)").add_argument("--dir")
    comp = scsub.add_parser("compile", help="the checks, then extensions_volna.conf")
    comp.add_argument("--dir")
    comp.add_argument("--out", default="ops/asterisk")
    pr = scsub.add_parser("prompts", help="the sound files the scenarios need; missing ones; placeholders")
    pr.add_argument("--dir")
    pr.add_argument("--sounds", help="an Asterisk sounds directory: list what is missing from it (exit 3 if any)")
    pr.add_argument("--synth", metavar="DIR", help="write placeholder prompts (espeak-ng + sox) under DIR/<language>/")
    pr.add_argument("--force", action="store_true", help="with --synth: replace files already there")
    pr.add_argument("--json", action="store_true", help="print JSON")
    sc.set_defaults(handler=cmd_scenarios)
