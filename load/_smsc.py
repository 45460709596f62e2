"""The SMSC simulator in its own process, and submit_sm → submit_sm_resp timing: shared by
``bench_smpp.py``'s connector run and its engine run (``_smpp_engine.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from _common import (
    percentile,
    process,
)


def simulator(port: int, http_port: int | None = None) -> contextlib.AbstractContextManager[None]:
    """``python -m simulators.smsc`` on ``port`` (account bench:secret; ``GET /stats`` on ``http_port``)."""
    stats = ["--http-port", str(http_port)] if http_port else []
    return process(["-m", "simulators.smsc", "--port", str(port), "--log-level", "WARNING",
                    "--account", "bench:secret", *stats], port)


@dataclass
class SubmitTimes:
    """submit_sm → submit_sm_resp per PDU (``SmppBind.submit`` wrapped while installed), and when the
    last answer came (``time.perf_counter()``)."""

    rtts_s: list[float] = field(default_factory=list)
    last_answer: float = 0.0

    @contextlib.contextmanager
    def installed(self) -> Iterator[SubmitTimes]:
        from connectors.smpp.bind import SmppBind

        original = SmppBind.submit

        def timed(bind: SmppBind, body: bytes) -> asyncio.Future[Any]:
            fut = original(bind, body)
            t0 = time.perf_counter()

            def answered(_: object) -> None:
                self.last_answer = time.perf_counter()
                self.rtts_s.append(self.last_answer - t0)

            fut.add_done_callback(answered)
            return fut

        SmppBind.submit = timed  # type: ignore[method-assign]
        try:
            yield self
        finally:
            SmppBind.submit = original  # type: ignore[method-assign]

    def clear(self) -> None:
        self.rtts_s.clear()
        self.last_answer = 0.0

    def p_ms(self, q: float) -> float:
        return percentile(self.rtts_s, q) * 1000
