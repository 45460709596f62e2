"""The SMSC simulator in its own process, and submit_sm → submit_sm_resp timing: shared by
``bench_smpp.py``'s connector run and its engine run (``_smpp_engine.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from _common import (
    ROOT,
    percentile,
)


@contextlib.contextmanager
def simulator(port: int, http_port: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stats = ["--http-port", str(http_port)] if http_port else []
    proc = subprocess.Popen([sys.executable, "-m", "simulators.smsc", "--port", str(port), "--log-level", "WARNING",
                             "--account", "bench:secret", *stats], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the SMSC simulator did not start")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


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
