"""The independent SMSC (``tests/peers/node_smsc/smsc.js``, on node-smpp) in its own process.

    with NodeSmsc(receipt_delay_ms=50, throttle_rate=100) as smsc:   # or ``async with``
        ... connect an ESME to 127.0.0.1:smsc.port (account volna:secret) ...
        smsc.stats()["accepted_parts"]

``ensure_installed()`` runs ``npm ci`` in that folder when ``node_modules`` is missing or was
installed from another ``package-lock.json`` (a stamp holds the lock file's hash), under a file
lock so parallel test workers install once. Without ``node``/``npm`` it raises
:class:`NodeMissing` saying what to install (``ops/system-deps.sh`` installs Debian's ``nodejs``
and ``npm`` as root). The SMSC listens on free ports it picks itself (``--port 0``) and says
which on its first line of output, so two SMSCs never race for a port (``port=`` names one when
a client must be configured before the SMSC starts).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

HERE = Path(__file__).resolve().parent / "node_smsc"
SCRIPT = HERE / "smsc.js"
LOCK = HERE / "package-lock.json"
STAMP = HERE / "node_modules" / ".volna-lock-sha256"
#: node-smpp 0.5.1 needs nothing newer; Debian 12 ships 18, this machine 20.
MIN_NODE_MAJOR = 18


class NodeMissing(RuntimeError):
    """Node.js or npm is not installed (or too old): the independent SMSC cannot run."""


def node_binaries() -> tuple[str, str]:
    node, npm = shutil.which("node") or shutil.which("nodejs"), shutil.which("npm")
    if not node or not npm:
        raise NodeMissing("the independent SMSC (tests/peers/node_smsc) needs Node.js ≥ 18 and npm: "
                          "install them (Debian: 'apt-get install nodejs npm', which ops/system-deps.sh does "
                          f"as root); found node={node}, npm={npm}")
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    try:
        major = int(out.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_NODE_MAJOR:
        raise NodeMissing(f"the independent SMSC needs Node.js ≥ {MIN_NODE_MAJOR}; {node} is {out or 'unknown'}")
    return node, npm


def ensure_installed() -> str:
    """Install node-smpp into the SMSC's folder if needed; the ``node`` binary to run it with."""
    node, npm = node_binaries()
    want = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if _installed(want):
        return node
    with open(HERE / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing: wait for it
        if not _installed(want):
            proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"npm ci in {HERE} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
            STAMP.write_text(want + "\n")
    return node


def _installed(want: str) -> bool:
    try:
        return STAMP.read_text().strip() == want and (HERE / "node_modules" / "smpp" / "package.json").exists()
    except OSError:
        return False


class NodeSmsc:
    """One ``smsc.js`` process: :meth:`start` (or a ``with``/``async with`` block), :meth:`stats`,
    :meth:`stop`. The options are the script's flags (see its header)."""

    def __init__(self, *, accounts: dict[str, str] | None = None, receipt_delay_ms: float = 200,
                 throttle_rate: float = 0, throttle_share: float = 0, undeliv_share: float = 0,
                 reach_log: str | Path | None = None, keep_texts: bool = False, seed: int = 1,
                 receipt_retry_ms: float = 1000, submit_delay_ms: float = 0, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.accounts = accounts or {"volna": "secret"}
        self.host = host
        self.args = ["--host", host, "--receipt-delay-ms", str(receipt_delay_ms),
                     "--receipt-retry-ms", str(receipt_retry_ms), "--submit-delay-ms", str(submit_delay_ms),
                     "--throttle-rate", str(throttle_rate),
                     "--throttle-share", str(throttle_share), "--undeliv-share", str(undeliv_share),
                     "--seed", str(seed)]
        for system_id, password in self.accounts.items():
            self.args += ["--account", f"{system_id}:{password}"]
        if reach_log is not None:
            self.args += ["--reach-log", str(reach_log)]
        if keep_texts:
            self.args.append("--keep-texts")
        self.port = port  # 0: a free port it picks (and says which)
        self.http_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def stats_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def output(self) -> Path:
        """Its standard output: the listening line, then one stats line per SIGUSR2."""
        assert self._dir is not None, "not started"
        return Path(self._dir.name) / "stdout.jsonl"

    def start(self, timeout_s: float = 20.0) -> NodeSmsc:
        node = ensure_installed()
        self._dir = tempfile.TemporaryDirectory(prefix="node-smsc-")
        with open(self.output, "wb") as out, open(Path(self._dir.name) / "stderr.log", "wb") as err:
            self.proc = subprocess.Popen([node, str(SCRIPT), "--port", str(self.port), "--http-port", "0",
                                          *self.args],
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while True:
            first = self.output.read_text().split("\n", 1)
            if len(first) == 2:  # a whole first line
                ports = json.loads(first[0])["listening"]
                self.port, self.http_port = int(ports["smpp"]), int(ports["http"])
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                errors = (Path(self._dir.name) / "stderr.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"the independent SMSC did not start: {errors}")
            time.sleep(0.02)

    def stats(self, *, brief: bool = False) -> dict[str, Any]:
        """``GET /stats``: what it counted (see the script's ``newStats``); ``brief`` leaves out the
        per-destination counts (a large object once many numbers were sent to: poll with it)."""
        with urllib.request.urlopen(f"{self.stats_url}/stats{'?brief=1' if brief else ''}", timeout=10) as resp:
            stats: dict[str, Any] = json.loads(resp.read())
        return stats

    def signal_stats(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """The same counts through SIGUSR2 (one JSON line on its standard output)."""
        assert self.proc is not None, "not started"
        before = self.output.read_text().count("\n")
        self.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines = self.output.read_text().split("\n")
            if len(lines) - 1 > before:
                out: dict[str, Any] = json.loads(lines[before])
                return out
            time.sleep(0.02)
        raise TimeoutError("no stats line after SIGUSR2")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._dir is not None:
            with contextlib.suppress(OSError):
                self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> NodeSmsc:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> NodeSmsc:
        import asyncio

        return await asyncio.to_thread(self.start)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    async def astats(self, *, brief: bool = False) -> dict[str, Any]:
        import asyncio

        return await asyncio.to_thread(lambda: self.stats(brief=brief))


def available() -> bool:
    """Whether node and npm are there (tests skip without them, or fail under VOLNA_NO_SKIP=1)."""
    try:
        node_binaries()
    except NodeMissing:
        return False
    return True


if __name__ == "__main__":  # a quick look: python -m tests.peers.node_smsc
    with NodeSmsc() as smsc:
        print(f"node-smpp SMSC on {smsc.host}:{smsc.port}, stats {smsc.stats_url}/stats (pid {smsc.pid})")
        print(json.dumps(smsc.stats()))
