"""``volna report --chart FILE``: the period day by day — actions per channel (stacked bars) and
the reach rate (debtors reached ÷ contacted, a line on its own axis) — drawn with matplotlib's
Agg backend (no display needed); PNG or SVG by the file's extension."""

from __future__ import annotations

from pathlib import Path

from engine.archive.report import Daily, Period
from engine.errors import VolnaError

COLOURS = {"ivr": "#1f77b4", "sms": "#ff7f0e", "viber": "#7e57c2", "whatsapp": "#2ca02c"}


def draw(daily: Daily, period: Period, out: Path, *, title: str = "") -> Path:
    suffix = out.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise VolnaError(f"--chart {out}: the file must end in .png or .svg")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    fig: Figure = plt.figure(figsize=(12, 5), dpi=100)
    try:
        ax = fig.add_subplot(1, 1, 1)
        x = list(range(len(daily.days)))
        bottom = [0] * len(x)
        for channel, values in daily.actions.items():
            if any(values):
                ax.bar(x, values, bottom=bottom, label=channel, color=COLOURS.get(channel))
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_ylabel("actions")
        ax.set_xticks(x)
        ax.set_xticklabels([d.strftime("%d") for d in daily.days], fontsize=8)
        ax.set_xlabel(f"day ({period})")
        rate = ax.twinx()
        rate.plot(x, [float("nan") if r is None else r * 100 for r in daily.reach_rate], color="black", marker="o",
                  markersize=3, label="reach rate")
        rate.set_ylabel("debtors reached, % of contacted")
        rate.set_ylim(0, 100)
        handles, labels = ax.get_legend_handles_labels()
        h2, l2 = rate.get_legend_handles_labels()
        ax.legend(handles + h2, labels + l2, loc="upper left", fontsize=8)
        ax.set_title(title or f"Volna: actions per channel and reach rate, {period}")
        fig.tight_layout()
        try:
            fig.savefig(out, format=suffix[1:])
        except OSError as exc:
            raise VolnaError(f"--chart {out}: cannot write ({exc.strerror})") from None
    finally:
        plt.close(fig)
    return out
