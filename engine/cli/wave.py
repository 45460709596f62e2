"""``volna wave create|start|pause|resume|stop|status|list``: the manager's lever."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.argparsing import day_arg
from engine.cli.common import Subparsers, add_by, by, with_context
from engine.config.settings import Settings
from engine.context import Context
from engine.waves.status import archive_lag, status_view


async def cmd_wave(args: argparse.Namespace, settings: Settings) -> int:
    async def body(ctx: Context) -> int:
        waves = ctx.waves
        if args.action == "create":
            info = await waves.create(args.wave, args.campaign, args.day, by=by(args))
            print(f"wave {info.wave_id} created for {info.day} ({info.state})")
            closed = waves.closed_today(info.day, info.campaign_id)
            if closed:
                print(f"warning: the window of {info.day} has already closed in {len(closed)} zone(s): "
                      + ", ".join(closed), file=sys.stderr)
        elif args.action == "list":
            for wave_id in await waves.list():
                info = await waves.get(wave_id)
                print(f"{wave_id}\t{info.campaign_id}\t{info.day}\t{info.state}")
        elif args.action == "status":
            view = await status_view(waves, args.wave, ctx.windows)
            # A finished wave leaves Redis only once the archive holds all of it (engine.archive.purge).
            view["archive_lag"] = await archive_lag(waves, args.wave, ctx.settings.archive.group)
            print(json.dumps(view, ensure_ascii=False, indent=2) if args.json else render_status(view))
        else:
            state = await waves.change(args.wave, args.action, by=by(args))
            print(f"wave {args.wave}: {state}")
        return 0

    return await with_context(settings, body)


def render_status(view: dict[str, Any]) -> str:
    c = view["counts"]
    lines = [
        f"wave {view['wave_id']} ({view['campaign_id']}, {view['day']}): {view['state']}",
        f"  tasks {c['total']}: queued {c['queued']}, in flight {c['in_flight']}, final {c['final']}",
        f"  rate {view['rate_per_min']}/min, ETA "
        + (f"{view['eta_s'] // 60} min" if view["eta_s"] is not None else "-"),
    ]
    if view["outcomes"]:
        lines.append("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(view["outcomes"].items())))
    for ch, info in view["channels"].items():
        lines.append(f"  {ch}: total {info['total']}, queued {info['queued']} (eligible now {info['eligible_now']}),"
                     f" sent {info['sent']}")
    if view["zones"]:
        open_zones = [z["zone"] for z in view["zones"] if z.get("open_now")]
        closed = [z["zone"] for z in view["zones"] if not z.get("open_now") and not z["zone"].startswith("multi:")]
        lines.append("  windows open now: " + (", ".join(open_zones) or "none"))
        if closed:
            lines.append("  windows closed: " + ", ".join(closed))
    if view.get("archive_lag"):
        lines.append(f"  archive: {view['archive_lag']} records not yet archived"
                     + (" (kept in Redis until they are)" if view["state"] in ("completed", "stopped") else ""))
    if view["multi_zone_tasks"]:
        lines.append(f"  tasks constrained to the intersection of several zones: {view['multi_zone_tasks']}")
    return "\n".join(lines)


def add(sub: Subparsers) -> None:
    wave = sub.add_parser("wave", help="create, start, pause, resume, stop a wave; its status")
    wsub = wave.add_subparsers(dest="action", required=True)
    create = wsub.add_parser("create")
    create.add_argument("wave")
    create.add_argument("--campaign", required=True)
    create.add_argument("--day", required=True, type=day_arg, help="the debtors' local calendar day, YYYY-MM-DD")
    add_by(create)
    for action in ("start", "pause", "resume", "stop"):
        act = wsub.add_parser(action)
        act.add_argument("wave")
        add_by(act)
    status = wsub.add_parser("status")
    status.add_argument("wave")
    status.add_argument("--json", action="store_true")
    wsub.add_parser("list")
    add_by(wave)
    wave.set_defaults(handler=cmd_wave)
