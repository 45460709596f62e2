"""A private PostgreSQL on a free port in a temporary folder (the tests, the demo, the benchmark).

``initdb`` and ``pg_ctl`` come from ``PATH`` or Debian's ``/usr/lib/postgresql/<version>/bin``
(the ``postgresql`` package puts them there). Not for production: there PostgreSQL is the
agency's own server (docs/archive.md).
"""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from engine.store.localredis import free_port


def pg_binary(name: str) -> str | None:
    """``initdb``, ``pg_ctl``, ``pg_dump``, …: on PATH, else the newest Debian server package's."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return candidates[-1] if candidates else None


class PostgresServer:
    """Start with :meth:`start`, stop with :meth:`stop`; :attr:`dsn` points at database ``volna``.

    ``durable=False`` turns fsync off (tests: a crash of the test machine loses a test's data,
    nothing else); the benchmark runs it durable, as production would.
    """

    def __init__(self, *, port: int | None = None, directory: Path | None = None, durable: bool = False,
                 database: str = "volna") -> None:
        initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("PostgreSQL's initdb/pg_ctl are not installed: apt-get install postgresql "
                               "(make test does it as root), or set VOLNA_TEST_PG_DSN to a server of yours")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.port = port or free_port()
        self.dir = directory or Path(tempfile.mkdtemp(prefix="volna-pg-"))
        self.durable = durable
        self.database = database
        # PostgreSQL refuses to run as root (make test and CI run as root): the server then runs as
        # the ``postgres`` account (Debian's package makes it), and root connects over the socket.
        self.run_as: list[str] = []
        self.user = getpass.getuser()
        if os.geteuid() == 0:
            account = "postgres" if _account_exists("postgres") else "nobody"
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root without runuser: cannot start a private PostgreSQL")
            self.run_as = [runuser, "-u", account, "--"]
            self.user = account
            shutil.chown(self.dir, account)
            self.dir.chmod(0o755)

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        return f"host={self.dir} port={self.port} user={self.user} dbname={database}"

    def start(self) -> PostgresServer:
        if not (self.data / "PG_VERSION").exists():
            subprocess.run([*self.run_as, self.initdb, "-D", str(self.data), "-U", self.user, "--auth=trust",
                            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses='' -c max_connections=60 "
                   "-c shared_buffers=128MB -c log_error_verbosity=terse -c log_min_error_statement=panic "
                   "-c log_min_messages=warning")
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run([*self.run_as, self.pg_ctl, "-D", str(self.data), "-o", options, "-l",
                        str(self.dir / "postgres.log"), "-w", "-t", "60", "start"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.create_database(self.database)
        return self

    def create_database(self, name: str) -> str:
        """Creates ``name`` (if missing) and returns its DSN."""
        psql = pg_binary("psql") or "psql"
        deadline = time.monotonic() + 20
        while True:
            done = subprocess.run([psql, "-X", "-q", "-d", self.dsn_for("postgres"), "-c",
                                   f'CREATE DATABASE "{name}"'], capture_output=True, text=True)
            if done.returncode == 0 or "already exists" in done.stderr:
                return self.dsn_for(name)
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot create database {name}: {done.stderr.strip()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self.run_as, self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _account_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
