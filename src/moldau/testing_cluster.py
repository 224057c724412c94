"""A real Moldau cluster for tests: one etcd and N broker processes on loopback, with fault injection.

    from moldau.testing import running_cluster

    with running_cluster(brokers=3) as cluster:
        producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
        ...
        leader = cluster.leader_of("orders", 0)
        cluster.kill(leader)          # SIGKILL: no flush, no goodbye; its lease expires
        cluster.restart(leader)       # same broker id, same data dir
        cluster.pause(2)              # SIGSTOP: alive but silent (a GC pause, a frozen VM)
        cluster.resume(2)
        with cluster.slowed(3, running=0.02, stopped=0.08):   # runs 20 % of the time
            ...

Brokers are real `moldau server` processes (a SIGKILL must not take the test down with it); etcd is the
`etcd` binary (Debian `etcd-server`). Nothing here is a mock: what your application sees is what it would
see against a cluster on three machines, minus the network.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from moldau.cluster.etcd_server import EtcdCluster, EtcdServer
from moldau.cluster.etcd_store import EtcdClusterStore

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until(condition: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)  # state in other processes: nothing to await


class ClusterBroker:
    """One `moldau server` process of the cluster; keeps its id, port and data dir across restarts."""

    def __init__(self, broker_id: int, data_dir: Path, metadata_store: str, overrides: dict[str, Any]) -> None:
        self.broker_id = broker_id
        self.data_dir = data_dir
        self.port = _free_port()
        self.sasl_port = _free_port()  # for a second listener: "{sasl_port}" in an override's value
        self.log_path = data_dir.parent / f"broker-{broker_id}.log"
        self.settings = {"node.id": broker_id, "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
                         "log.dirs": str(data_dir), "metadata.store": metadata_store}
        for key, value in overrides.items():
            self.settings[key] = value.replace("{port}", str(self.port)).replace(
                "{sasl_port}", str(self.sasl_port)).replace("{id}", str(broker_id)) if isinstance(value, str) \
                else value
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        args = [sys.executable, "-m", "moldau.cli.main", "server", "--log-level", "INFO"]
        for key, value in self.settings.items():
            args += ["--override", f"{key}={value}"]
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=dict(os.environ))

    def wait_listening(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until every listener accepts: the broker binds them one after another, so the first one
        accepting does not mean that a second (`{sasl_port}`) does yet."""
        ports = [int(port) for port in re.findall(r":(\d+)(?:,|$)", str(self.settings["listeners"]))]

        def listening() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"broker {self.broker_id} exited before listening; see {self.log_path}")
            try:
                for port in ports:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        pass
                return True
            except OSError:
                return False

        try:
            _wait_until(listening, timeout, f"broker {self.broker_id} to listen")
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)  # a paused process dies all the same, but say so
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)
        self.paused = False

    def stop(self) -> int:
        """SIGTERM: a controlled shutdown (its partitions move at once)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                return self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def pause(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RunningCluster:
    def __init__(self, etcd: EtcdServer | EtcdCluster, brokers: dict[int, ClusterBroker],
                 client_config: Mapping[str, str] | None = None) -> None:
        self.etcd = etcd
        self.brokers = brokers
        # Kafka client properties (security.protocol, ssl.ca.location, sasl.*) for a secured `{port}` listener.
        self.client_config = dict(client_config or {})

    @property
    def bootstrap_servers(self) -> str:
        """Every broker, running or not: clients find the live ones (as with a real cluster's bootstrap list)."""
        return ",".join(b.bootstrap_servers for b in self.brokers.values())

    @property
    def metadata_store(self) -> str:
        return str(self.etcd.url)

    def broker(self, broker_id: int) -> ClusterBroker:
        return self.brokers[broker_id]

    def controller_id(self) -> int | None:
        """The elected controller (None between one's death and the next election), read from etcd: clients
        are told a live broker instead, as KRaft brokers do."""
        return asyncio.run(EtcdClusterStore.active_controller(self.metadata_store))

    def kill(self, broker_id: int) -> None:
        self.brokers[broker_id].kill()

    def stop(self, broker_id: int) -> int:
        return self.brokers[broker_id].stop()

    def restart(self, broker_id: int, timeout: float = START_TIMEOUT_S) -> None:
        broker = self.brokers[broker_id]
        broker.kill()
        broker.start()
        broker.wait_listening(timeout)

    def pause(self, broker_id: int) -> None:
        self.brokers[broker_id].pause()

    def resume(self, broker_id: int) -> None:
        self.brokers[broker_id].resume()

    @contextmanager
    def slowed(self, broker_id: int, running: float = 0.02, stopped: float = 0.08) -> Iterator[None]:
        """Make a broker slow by stopping it `stopped` s out of every `running + stopped` s."""
        broker, done = self.brokers[broker_id], threading.Event()

        def cycle() -> None:
            while not done.wait(running):
                broker.pause()
                time.sleep(stopped)
                broker.resume()

        thread = threading.Thread(target=cycle, name=f"slow-broker-{broker_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            broker.resume()

    def _metadata(self, topics: list[str], broker: ClusterBroker) -> Any:
        """A Metadata response from `broker`, or None when it does not answer."""
        from moldau.client.client import Client
        from moldau.client.security import ClientSecurity

        security = ClientSecurity.from_properties(self.client_config) if self.client_config else None
        try:
            with Client(broker.bootstrap_servers, security=security) as client:
                return client.metadata(topics)
        except OSError:
            return None

    def describe(self, topic: str) -> dict[int, Any]:
        """Partition index -> Metadata partition entry (leader_id, leader_epoch, replica_nodes, isr_nodes), asked
        of the first live broker that answers."""
        for broker in self.brokers.values():
            if not broker.running or broker.paused:
                continue
            response = self._metadata([topic], broker)
            for entry in response.topics if response is not None else ():
                if entry.name == topic and entry.error_code == 0:
                    return {p.partition_index: p for p in entry.partitions}
        return {}

    def wait_for_brokers(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until every running broker's Metadata lists every running broker: all have registered in etcd
        (a broker listens before it registers), so a topic may be given all of them as replicas."""
        running = {b.broker_id for b in self.brokers.values() if b.running and not b.paused}

        def registered() -> bool:
            for broker_id in running:
                response = self._metadata([], self.brokers[broker_id])
                if response is None or {b.node_id for b in response.brokers} != running:
                    return False
            return True

        _wait_until(registered, timeout, f"brokers {sorted(running)} registered")

    def leader_of(self, topic: str, partition: int, timeout: float = 30.0) -> int:
        """The live leader of a partition, waiting for one to be elected."""
        def leader() -> tuple[int] | None:  # a tuple: broker 0 is a leader too
            entry = self.describe(topic).get(partition)
            if entry is None or entry.leader_id < 0 or not self.brokers[entry.leader_id].running:
                return None
            return (int(entry.leader_id),)

        found = _wait_until(leader, timeout, f"a leader of {topic}-{partition}")
        assert found is not None
        return found[0]

    def wait_for_isr(self, topic: str, size: int, timeout: float = 60.0) -> None:
        """Until every partition of `topic` has `size` in-sync replicas."""
        def full() -> bool:
            partitions = self.describe(topic)
            return bool(partitions) and all(len(p.isr_nodes) >= size for p in partitions.values())

        _wait_until(full, timeout, f"an ISR of {size} on every partition of {topic}")


@contextmanager
def running_cluster(brokers: int = 3, *, data_dir: str | Path | None = None,
                    client_config: Mapping[str, str] | None = None, etcd_members: int = 1,
                    **overrides: Any) -> Iterator[RunningCluster]:
    """etcd (`etcd_members` members: `cluster.etcd.members[i].kill()` loses one) and `brokers` broker processes
    (ids 1..n) on free loopback ports; stopped on exit.

    `overrides` are broker configs with `_` for `.` (e.g. `min_insync_replicas=2`); pass names with dots in
    `**{...}`. In a value, `{id}` is each broker's id (`broker_rack="rack-{id}"`), `{port}` and `{sasl_port}` its
    own ports, e.g. `listeners=
    "PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"`. When the `{port}` listener is
    secured, `client_config` holds the Kafka client properties (`security.protocol`, `ssl.ca.location`,
    `sasl.mechanism`, `sasl.username`, ...) that `describe`, `leader_of` and `wait_for_isr` connect with."""
    settings = {k if "." in k else k.replace("_", "."): v for k, v in overrides.items()}
    with ExitStack() as stack:
        root = Path(data_dir) if data_dir is not None else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="moldau-cluster-")))
        etcd: EtcdServer | EtcdCluster
        if etcd_members == 1:
            etcd = stack.enter_context(EtcdServer(root / "etcd"))
        else:
            etcd = stack.enter_context(EtcdCluster(root / "etcd", etcd_members))
        members = {i: ClusterBroker(i, root / f"broker-{i}", str(etcd.url), settings) for i in range(1, brokers + 1)}
        cluster = RunningCluster(etcd, members, client_config)
        for member in members.values():
            stack.callback(member.stop)
        for member in members.values():
            member.start()
        for member in members.values():
            member.wait_listening()
        cluster.wait_for_brokers()
        yield cluster
