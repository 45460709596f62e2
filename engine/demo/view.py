"""Live progress of the demo's waves in the terminal (rich), or plain lines."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from engine.context import Context
from engine.waves.status import status_view


class Progress:
    def __init__(self, ctx: Context, wave_ids: list[str], *, live: bool = True) -> None:
        self.ctx = ctx
        self.wave_ids = wave_ids
        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=2) if live else None
        self._last: dict[str, tuple[float, int]] = {}

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.live is not None:
            self.live.__exit__(exc_type, exc, tb)

    async def refresh(self) -> None:
        views = [await status_view(self.ctx.waves, w, self.ctx.windows) for w in self.wave_ids]
        if self.live is None:
            for v in views:
                c = v["counts"]
                print(f"{v['wave_id']}: {v['state']}, final {c['final']}/{c['total']}, "
                      f"sent {c['sent']}, rate {v['rate_per_min']}/min", flush=True)
            return
        self.live.update(self._table(views))

    def _table(self, views: list[dict[str, Any]]) -> Table:
        table = Table(title=f"Volna demo — engine time {self.ctx.clock.now().strftime('%H:%M:%S')} UTC")
        for col in ("wave", "state", "done", "sent/s", "outcomes", "zones open", "ETA"):
            table.add_column(col)
        now = time.monotonic()
        for v in views:
            c = v["counts"]
            last_t, last_sent = self._last.get(v["wave_id"], (now, c["sent"]))
            rate = (c["sent"] - last_sent) / (now - last_t) if now > last_t else 0.0
            self._last[v["wave_id"]] = (now, c["sent"])
            top = sorted(v["outcomes"].items(), key=lambda kv: -kv[1])[:4]
            open_zones = sum(1 for z in v["zones"] if z.get("open_now"))
            eta = "-" if v["eta_s"] is None else f"{v['eta_s'] // 60}m{v['eta_s'] % 60:02d}s"
            table.add_row(v["wave_id"], v["state"], f"{c['final']}/{c['total']}", f"{rate:.0f}",
                          ", ".join(f"{k} {n}" for k, n in top), f"{open_zones}/{len(v['zones'])}", eta)
        return table
