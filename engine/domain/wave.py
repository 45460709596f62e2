"""A wave's states and the manager's actions between them (pure; :mod:`engine.waves.control`
applies them in Redis)."""

from __future__ import annotations

from enum import StrEnum


class WaveState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"

    @property
    def finished(self) -> bool:
        """No attempt of the wave will be made any more."""
        return self in (WaveState.STOPPED, WaveState.COMPLETED)


#: Allowed transitions: action → (from states, to state).
TRANSITIONS: dict[str, tuple[tuple[WaveState, ...], WaveState]] = {
    "start": ((WaveState.CREATED,), WaveState.RUNNING),
    "pause": ((WaveState.RUNNING,), WaveState.PAUSED),
    "resume": ((WaveState.PAUSED,), WaveState.RUNNING),
    "stop": ((WaveState.CREATED, WaveState.RUNNING, WaveState.PAUSED), WaveState.STOPPED),
    "complete": ((WaveState.RUNNING,), WaveState.COMPLETED),
}
