"""``bench_vs_kannel.py``'s Kannel run: bearerbox + smsbox (Debian's ``kannel``) on loopback ports,
``load/kannel/kannel.conf.in`` filled in, messages taken over smsbox's sendsms HTTP interface with
delivery reports called back to a small aiohttp receiver here."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT, free_port, process_cpu_s, require

KANNEL_DIR = ROOT / "load" / "kannel"
#: The SMPP account both runs bind with on the node SMSC.
SYSTEM_ID, PASSWORD = "kannel", "secret"


def kannel_binaries() -> tuple[str, str]:
    """bearerbox and smsbox (Debian installs them in /usr/sbin, often not on a user's PATH)."""
    found = []
    for name in ("bearerbox", "smsbox"):
        path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
        if path is None:
            raise RuntimeError(f"Kannel's {name} is not installed: run 'bash load/kannel/install.sh' as root "
                               "(make bench does), or 'apt-get install kannel'")
        found.append(path)
    return found[0], found[1]


@dataclass
class DlrSink:
    """Counts smsbox's delivery-report callbacks (``GET /dlr?id=N&s=%d``) by message and type."""

    per_id: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    last_ms: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        self.per_id[request.query.get("id", "")] += 1
        self.types[request.query.get("s", "")] += 1
        self.last_ms = time.time() * 1000
        self.changed.set()
        return web.Response(text="ok")

    @property
    def count(self) -> int:
        return sum(self.per_id.values())


@contextlib.asynccontextmanager
async def dlr_receiver(sink: DlrSink) -> AsyncIterator[int]:
    """An aiohttp server on a free loopback port for the callbacks; yields the port."""
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/dlr", sink.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield port
    finally:
        await runner.cleanup()


@dataclass
class Kannel:
    """bearerbox and smsbox of one run, with the ports they were given."""

    folder: Path
    smsc_port: int
    admin_port: int = field(default_factory=free_port)
    smsbox_port: int = field(default_factory=free_port)
    sendsms_port: int = field(default_factory=free_port)
    bearerbox: subprocess.Popen[bytes] | None = None
    smsbox: subprocess.Popen[bytes] | None = None

    def config(self, window: int, log_level: int = 2) -> Path:
        text = (KANNEL_DIR / "kannel.conf.in").read_text().format(
            dir=self.folder, log_level=log_level, smsc_port=self.smsc_port, system_id=SYSTEM_ID,
            password=PASSWORD, window=window, admin_port=self.admin_port, smsbox_port=self.smsbox_port,
            sendsms_port=self.sendsms_port)
        path = self.folder / "kannel.conf"
        path.write_text(text)
        return path

    @contextlib.contextmanager
    def running(self, window: int) -> Iterator[Kannel]:
        bearerbox, smsbox = kannel_binaries()
        conf = str(self.config(window))
        # Their own logs go to files (log-file, level 2 = warnings); stdout is their start-up chatter.
        out = open(self.folder / "boxes.out", "wb")
        try:
            self.bearerbox = subprocess.Popen([bearerbox, conf], stdout=out, stderr=subprocess.STDOUT)
            wait_port(self.smsbox_port, self.bearerbox, "bearerbox")
            self.smsbox = subprocess.Popen([smsbox, conf], stdout=out, stderr=subprocess.STDOUT)
            wait_port(self.sendsms_port, self.smsbox, "smsbox")
            yield self
        finally:
            for proc in (self.smsbox, self.bearerbox):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(10)
            out.close()

    def cpu_s(self) -> dict[str, float]:
        assert self.bearerbox is not None and self.smsbox is not None
        return {"bearerbox": process_cpu_s(self.bearerbox.pid), "smsbox": process_cpu_s(self.smsbox.pid)}

    def log_tail(self) -> str:
        out = []
        for name in ("boxes.out", "bearerbox.log", "smsbox.log", "smsc-1.log"):
            path = self.folder / name
            if path.exists():
                out.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(out)


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit {proc.poll()})")
        time.sleep(0.05)


async def feed(kannel: Kannel, n: int, text: str, dlr_port: int, concurrency: int) -> Counter[str]:
    """n sendsms requests (UCS-2, a delivery report on success and failure: dlr-mask 3), each to
    its own number; the answers by their status (``0`` accepted, ``3`` queued for later)."""
    import aiohttp

    answers: Counter[str] = Counter()
    url = f"http://127.0.0.1:{kannel.sendsms_port}/cgi-bin/sendsms"
    numbers = iter(range(n))

    async def worker(http: aiohttp.ClientSession) -> None:
        for i in numbers:
            params = {"username": "bench", "password": "bench", "to": phone(i), "text": text, "coding": "2",
                      "charset": "UTF-8", "dlr-mask": "3",
                      "dlr-url": f"http://127.0.0.1:{dlr_port}/dlr?id={i}&s=%d"}
            async with http.get(url, params=params) as resp:
                body = await resp.text()
            answers[body.split(":", 1)[0]] += 1
            require(body.startswith(("0:", "3:")), f"sendsms answered {resp.status} {body!r} for message {i}")

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return answers


def phone(i: int) -> str:
    """The i-th destination of a run (the same in both runs: +7916 and seven digits)."""
    return f"+7916{i:07d}"
