"""A real Postgres server for the connector tests: Debian's `postgresql`, initdb'd in a temporary directory and
run as an unprivileged user on a free loopback port. Tests skip with one line when it is not installed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.fixtures import free_port

START_TIMEOUT_S = 60


def pg_bin() -> Path | None:
    """The directory holding initdb/pg_ctl/postgres: PATH first, then the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("pg_ctl")
    if found and Path(found).resolve().with_name("initdb").exists():
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


class PostgresServer:
    def __init__(self, **settings: str) -> None:
        self.bin = pg_bin()
        self.port = free_port()
        self.settings = {"listen_addresses": "127.0.0.1", "fsync": "off", "synchronous_commit": "off",
                         "wal_level": "logical", "max_replication_slots": "10", "max_wal_senders": "10",
                         "shared_buffers": "128MB", **settings}
        self.tmp = Path(tempfile.mkdtemp(prefix="moldau-pg-"))
        self.data = self.tmp / "data"
        self.user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False)

    def start(self) -> PostgresServer:
        if self.bin is None:
            raise RuntimeError("no Postgres server binaries")
        if os.geteuid() == 0:
            self.user = "postgres" if _user_exists("postgres") else "nobody"
            owner = pwd.getpwnam(self.user)
            os.chown(self.tmp, owner.pw_uid, owner.pw_gid)
        init = self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                         "--no-sync")
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr}")
        options = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        started = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.tmp / "server.log"), "-w", "-t",
                            str(START_TIMEOUT_S), "-o", f"-p {self.port} -k {self.tmp} {options}", "start")
        if started.returncode:
            raise RuntimeError(f"pg_ctl start failed: {started.stderr}{self.log()}")
        return self

    def log(self) -> str:
        path = self.tmp / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.tmp, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="module")
def postgres():
    """A Postgres server for the test module (wal_level=logical for CDC)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[connect]')")
    if pg_bin() is None:
        pytest.skip("Postgres is not installed (scripts/test.sh installs Debian's postgresql)")
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(statement, params or None)
        return cur.fetchall() if cur.description else []
