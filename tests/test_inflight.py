"""A loop's work tasks (engine/dispatch/inflight.py): a cancel waits while an answer is recorded."""

from __future__ import annotations

import asyncio

import pytest

from engine.dispatch.inflight import WorkTask, protected


async def test_a_cancel_during_a_protected_block_is_delivered_when_it_ends() -> None:
    steps: list[str] = []

    async def work() -> None:
        steps.append("waiting on the peer")
        await asyncio.sleep(0.01)
        with protected():
            steps.append("recording")
            await asyncio.sleep(0.05)  # the cancel arrives here
            steps.append("recorded")
        await asyncio.sleep(10)
        steps.append("never")

    task = WorkTask(work())
    await asyncio.sleep(0.03)
    assert task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["waiting on the peer", "recording", "recorded"]


async def test_outside_a_protected_block_a_cancel_is_at_once() -> None:
    async def work() -> None:
        await asyncio.sleep(10)

    task = WorkTask(work())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
