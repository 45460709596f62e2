"""A wave's status as the campaign manager sees it: counts, rate, ETA, zones and their windows."""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError

from engine.calendar.windows import WindowCalendar
from engine.domain.outcomes import Channel
from engine.store.keys import CHANNEL_ORDER, WaveKeys
from engine.store.schema import Counter, WaveCounts
from engine.waves.control import Waves


async def archive_lag(waves: Waves, wave_id: str, group: str) -> int:
    """Records of the wave's results stream the archive's consumer group does not hold yet."""
    stream = WaveKeys(wave_id).results
    try:
        groups = await waves.redis.xinfo_groups(stream)
    except ResponseError:
        return 0
    for g in groups:
        if str(g.get("name")) == group:
            lag = g.get("lag")
            return int(lag if lag is not None else await waves.redis.xlen(stream)) + int(g.get("pending") or 0)
    return int(await waves.redis.xlen(stream))


async def status_view(waves: Waves, wave_id: str, windows: WindowCalendar | None = None) -> dict[str, Any]:
    info = await waves.get(wave_id)
    counts = WaveCounts(await waves.counts(wave_id))
    now = waves.clock.now_ms()
    wk = WaveKeys(wave_id)
    pipe = waves.redis.pipeline(transaction=False)
    for ch in CHANNEL_ORDER:
        pipe.zcard(wk.queue(ch))
        pipe.zcount(wk.queue(ch), "-inf", now * 10 + 9)
    sizes = await pipe.execute()
    per_min = counts.per_minute(now)
    remaining = counts.get(Counter.QUEUED) + counts.get(Counter.LEASED)
    eta_s = None if per_min <= 0 else int(remaining / per_min * 60)
    zones = counts.zones()
    channels: dict[str, Any] = {}
    for i, ch in enumerate(CHANNEL_ORDER):
        total = counts.get(Counter.CHANNEL_TOTAL, channel=ch)
        if total or sizes[2 * i]:
            channels[ch.value] = {
                "total": total, "queued": sizes[2 * i], "eligible_now": sizes[2 * i + 1],
                "sent": counts.get(Counter.CHANNEL_SENT, channel=ch),
                "accepted": counts.get(Counter.CHANNEL_ACCEPTED, channel=ch),
                "outcomes": counts.channel_outcomes(ch),
            }
    zone_view = []
    for label, n in sorted(zones.items()):
        entry: dict[str, Any] = {"zone": label, "tasks": n}
        if windows is not None and not label.startswith("multi:"):
            # The wave's day in that zone; when it is over, the zone's next opening.
            win = windows.window_for_zones((label,), info.day, Channel.IVR, info.campaign_id)
            if win is None or now >= win[1]:
                state = windows.zone_states([label], now)[0]
                win = None if state.opens_at_ms is None or state.closes_at_ms is None else (
                    state.opens_at_ms, state.closes_at_ms)
            entry["open_now"] = bool(win and win[0] <= now < win[1])
            entry["opens_at_ms"] = win[0] if win else None
            entry["closes_at_ms"] = win[1] if win else None
        zone_view.append(entry)
    constrained = sum(n for label, n in zones.items() if label.startswith("multi:"))
    return {
        "wave_id": wave_id, "campaign_id": info.campaign_id, "day": info.day.isoformat(),
        "state": info.state.value, "now_ms": now,
        "counts": {
            "total": counts.get(Counter.TOTAL), "queued": counts.get(Counter.QUEUED),
            "in_flight": counts.get(Counter.LEASED), "final": counts.get(Counter.FINAL),
            "sent": counts.get(Counter.SENT), "late_events": counts.get(Counter.LATE),
            "inbound_calls": counts.get(Counter.INBOUND),
        },
        "outcomes": counts.outcomes(), "channels": channels,
        "rate_per_min": round(per_min, 1), "eta_s": eta_s,
        "zones": zone_view, "multi_zone_tasks": constrained,
        "history": {k: v for k, v in info.meta.items() if k.endswith(("_at", "_by")) and k != "pending_by"},
    }
