"""A bound on requests served at once: one more is refused at the door, not queued.

A queue of waiting requests is memory an attacker (or a redelivering provider) controls;
refusing with ``Retry-After`` pushes the waiting back to the client, where it belongs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Admission:
    """``with admission.enter() as admitted:`` — ``admitted`` is False when ``limit`` are inside."""

    __slots__ = ("inside", "limit", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inside = 0
        self.refused = 0

    @contextmanager
    def enter(self) -> Iterator[bool]:
        if self.inside >= self.limit:
            self.refused += 1
            yield False
            return
        self.inside += 1
        try:
            yield True
        finally:
            self.inside -= 1
