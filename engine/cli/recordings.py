"""``volna recordings prune [--dir DIR] [--dry-run]``: call recordings past their retention deleted.

Asterisk records every answered call (``MixMonitor``, the scenario's ``record``) into its
monitor directory, ``volna/<wave>/<task>-<attempt>.wav``; each result names its file
(``data.recording``). They follow the interaction log's rule: kept
``retention.interaction_log_days`` (3 years by default) from their last change — this command
refuses a value below the legal 3 years — then deleted, with the directories left empty. Run it
daily (a systemd timer or cron) on a host that mounts the store; ``docs/ivr.md`` says how to
mount and back it up.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable
from pathlib import Path

from engine.cli.common import Subparsers
from engine.config.settings import LEGAL_RETENTION_DAYS, Settings
from engine.errors import ConfigError


def expired(files: Iterable[tuple[Path, float]], now_s: float, retention_days: int) -> list[Path]:
    """The files whose last change (``mtime``, epoch seconds) is older than the retention."""
    cutoff = now_s - retention_days * 86400
    return sorted(path for path, mtime in files if mtime < cutoff)


def _walk(root: Path) -> list[tuple[Path, float]]:
    out = []
    for base, _, names in os.walk(root):
        for name in names:
            path = Path(base) / name
            try:
                out.append((path, path.stat().st_mtime))
            except OSError:
                continue  # gone meanwhile
    return out


def prune(store: Path, retention_days: int, *, dry_run: bool = False, now_s: float | None = None) -> list[Path]:
    """Delete (or with ``dry_run`` only list) the recordings under ``store`` past the retention,
    then the directories left empty; returns the files."""
    old = expired(_walk(store), time.time() if now_s is None else now_s, retention_days)
    if dry_run:
        return old
    for path in old:
        path.unlink(missing_ok=True)
    for base, dirs, files in sorted(os.walk(store, topdown=False), reverse=True):
        if Path(base) != store and not dirs and not files:
            try:
                Path(base).rmdir()
            except OSError:
                continue  # a recording arrived meanwhile
    return old


async def cmd_recordings(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    root = Path(args.dir) if args.dir else settings.recordings.dir
    store = root / "volna"
    if not await asyncio.to_thread(store.is_dir):
        raise ConfigError(f"{store}: no such directory (recordings.dir is the recordings' root as mounted here)")
    days = settings.retention.interaction_log_days
    if days < LEGAL_RETENTION_DAYS:
        raise ConfigError(f"retention.interaction_log_days = {days}: call recordings are kept at least "
                          f"{LEGAL_RETENTION_DAYS} days (3 years, Minjust order No. 134); nothing deleted")
    old = await asyncio.to_thread(prune, store, days, dry_run=args.dry_run)
    if args.dry_run:
        for path in old:
            print(path)
        print(f"{len(old)} recordings older than {days} days (dry run: nothing deleted)")
    else:
        print(f"deleted {len(old)} recordings older than {days} days from {store}")
    return 0


def add(sub: Subparsers) -> None:
    rec = sub.add_parser("recordings", help="call recordings: delete those past their retention")
    rsub = rec.add_subparsers(dest="action", required=True)
    prune = rsub.add_parser("prune", help="delete recordings older than retention.interaction_log_days (3 years)")
    prune.add_argument("--dir", help="the recordings' root (default: recordings.dir)")
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    rec.set_defaults(handler=cmd_recordings)
