"""The one module of test helpers: brokers (in-process and as real processes), Kafka clients that are closed
whatever a test's outcome, topics, reading a topic back, and librdkafka group members.

Test modules import from here and copy nothing: a helper needed by two test files belongs here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PROCESS_START_TIMEOUT_S = 30.0
DEADLINE_S = 30  # the bound of any one wait on a client or broker in a test
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"broker process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)  # polling a port: there is no event to await across processes
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


class BrokerProcess:
    """`moldau server` as a real child process, on a free loopback port, with a given data dir."""

    def __init__(self, data_dir: Path, port: int | None = None, **overrides: object) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.overrides = {"listeners": f"PLAINTEXT://127.0.0.1:{self.port}", "log.dirs": str(data_dir)}
        self.overrides.update({k.replace("_", "."): str(v) for k, v in overrides.items()})
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"broker-{self.port}.log"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> BrokerProcess:
        args = [sys.executable, "-m", "moldau.cli.main", "server", "--log-level", "INFO"]
        for key, value in self.overrides.items():
            args += ["--override", f"{key}={value}"]
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=dict(os.environ))
        try:
            wait_for_port(self.port, PROCESS_START_TIMEOUT_S, self.process)
        except BaseException:
            self.kill()  # a broker that never listened must not outlive the test that started it
            raise
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no checkpoint, no clean-shutdown marker."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode if self.process else 0

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_until(condition: Callable[[], T], timeout: float = DEADLINE_S, what: str = "the condition") -> T:
    """Poll `condition` until it returns something truthy, and return that; raise TimeoutError naming `what`
    (and the last value) after `timeout` seconds. For state in another process or thread that offers nothing
    to await."""
    deadline = time.monotonic() + timeout
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
        time.sleep(0.05)


# -- clients --------------------------------------------------------------------------------------------


class Clients:
    """The Kafka clients a test opened, closed when it ends, whether it passed or failed, and before its
    broker stops: a failed test must leave no client behind retrying a broker that is gone."""

    def __init__(self) -> None:
        self._open: list[Any] = []

    def track(self, client: T) -> T:
        self._open.append(client)
        return client

    def close_all(self) -> None:
        while self._open:
            client = self._open.pop()
            with contextlib.suppress(Exception):  # already closed, or its broker is gone: nothing left to do
                _close(client)


def _close(client: Any) -> None:
    if isinstance(client, Producer):
        client.purge()  # close() flushes first, which waits for message.timeout.ms on a dead broker
        with warnings.catch_warnings():  # a fenced transactional producer warns that it cannot abort
            warnings.simplefilter("ignore", RuntimeWarning)
            client.close()
    elif type(client).__module__.startswith("kafka."):
        client.close(**({"autocommit": False} if hasattr(client, "commit") else {"timeout": 0}))
    elif hasattr(client, "close"):
        client.close()


clients = Clients()  # closed by the broker fixtures before their broker stops, and after every test


@contextmanager
def embedded_broker(data_dir: str | Path | None = None, **overrides: Any) -> Iterator[Any]:
    """`moldau.testing.running_broker`, closing the test's clients before the broker stops."""
    from moldau.testing import running_broker

    with running_broker(data_dir, **overrides) as embedded:
        try:
            yield embedded
        finally:
            clients.close_all()


def kafka_overrides(overrides: dict[str, object]) -> dict[str, object]:
    """Kafka's dotted config names as `running_broker` keyword arguments."""
    return {key.replace(".", "_"): value for key, value in overrides.items()}


@pytest.fixture
def broker():
    """An in-process broker with 3 default partitions on a free port and a temporary data dir."""
    with embedded_broker(num_partitions=3) as embedded:
        yield embedded


@pytest.fixture
def broker_process(tmp_path):
    """A real `moldau server` process; stopped (or killed) at the end of the test."""
    started: list[BrokerProcess] = []

    def start(data_dir: Path | None = None, **overrides: object) -> BrokerProcess:
        process = BrokerProcess(data_dir or tmp_path / "data", **overrides).start()
        started.append(process)
        return process

    try:
        yield start
    finally:
        clients.close_all()
        for process in started:
            process.stop()


def fetched_values(bootstrap: str, topic: str, partition: int = 0) -> list[bytes]:
    """Every record value of a partition, from its log start offset to its high watermark, through raw Fetch
    requests (moldau's own client), not librdkafka: a damaged batch served after a crash must fail the test,
    and librdkafka aborts the whole process on one."""
    from moldau.client.client import Client
    from moldau.protocol.records import decode_batch, iter_batches

    values: list[bytes] = []
    with Client(bootstrap) as client:
        end = client.list_offset(topic, partition, -1)
        offset = client.list_offset(topic, partition, -2)
        while offset < end:
            data = bytes(client.fetch(topic, partition, offset, max_wait_ms=0).records or b"")
            assert data, f"no data at offset {offset} below the high watermark {end}"
            for pos, header in iter_batches(data):
                for record in decode_batch(data[pos : pos + header.size_in_bytes]):
                    if record.offset >= offset:
                        values.append(record.value)
                offset = header.last_offset + 1
    return values


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


# Group tests run with short timers: Kafka's 3 s initial rebalance delay and 6 s minimum session timeout
# would make each rebalance scenario take many seconds. Few __consumer_offsets partitions keep startup quick.
GROUP_TEST_OVERRIDES = {
    "group.initial.rebalance.delay.ms": 100,
    "group.min.session.timeout.ms": 500,
    "offsets.topic.num.partitions": 5,
}


GROUP_PARTITIONS = 6


@pytest.fixture
def group_broker():
    """An in-process broker tuned for consumer-group tests (6 default partitions, fast rebalances)."""
    with embedded_broker(num_partitions=GROUP_PARTITIONS, **kafka_overrides(GROUP_TEST_OVERRIDES)) as b:
        yield b


# -- topics ---------------------------------------------------------------------------------------------


def create_topic(bootstrap: str, topic: str, partitions: int = 3, config: dict[str, str] | None = None) -> None:
    """CreateTopics through librdkafka's admin client; fails the test if the broker refuses."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                            config=config or {})])
    futures[topic].result(DEADLINE_S)


class Read(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def values_of(reads: Iterable[Read]) -> list[str]:
    return [r.value.decode() for r in reads if r.value is not None]


def read_all(bootstrap: str, topic: str, partitions: int = 1, *, isolation: str = "read_uncommitted",
             expected: int = 0, idle_s: float | None = None, timeout: float = DEADLINE_S) -> list[Read]:
    """Every record of `topic` from the beginning, in order per partition, read with librdkafka.

    Stops once at least `expected` records were read and then either every partition reached its end
    (`idle_s` None) or no record came for `idle_s` seconds (to see records that might still arrive, such as
    a transaction's once its markers are written). Fails after `timeout` seconds.
    """
    consumer = clients.track(Consumer({
        "bootstrap.servers": bootstrap, "group.id": unique_topic("reader"), "enable.auto.commit": False,
        "isolation.level": isolation, "enable.partition.eof": True}))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[Read] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while True:
            assert time.monotonic() < deadline, f"read {len(out)} of {expected}+ records of {topic} in time"
            msg = consumer.poll(0.2)
            if msg is not None and msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                at_end.add(msg.partition())
            elif msg is not None:
                out.append(Read(msg.partition(), msg.offset(), msg.key(), msg.value()))
                at_end.discard(msg.partition())
                quiet_since = time.monotonic()
            if len(out) >= expected and (
                    len(at_end) == partitions if idle_s is None else time.monotonic() - quiet_since >= idle_s):
                return out
    finally:
        consumer.close()


# -- consumer groups with librdkafka -------------------------------------------------------------------


def produce_values(bootstrap: str, topic: str, values: Iterable[int], partitions: int = GROUP_PARTITIONS) -> None:
    """Each value as a record of its own, value i on partition i % partitions."""
    producer = clients.track(Producer({"bootstrap.servers": bootstrap, "linger.ms": 5}))
    for i in values:
        producer.produce(topic, value=str(i).encode(), partition=i % partitions)
    assert producer.flush(DEADLINE_S) == 0


class Worker:
    """A group member that commits each message after processing it; `seen` records what it processed."""

    def __init__(self, c: Consumer, topic: str) -> None:
        self.c = clients.track(c)
        self.seen: list[int] = []
        c.subscribe([topic])

    def step(self) -> None:
        msg = self.c.poll(0.05)
        if msg is None or msg.error():
            return
        self.seen.append(int(msg.value()))
        self.c.commit(message=msg, asynchronous=False)

    def assigned(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}


def run_until(workers: list[Worker], done: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
    """Step every worker in turn until `done()`; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        for w in workers:
            w.step()


class AckedProducer:
    """confluent-kafka with idempotence and acks=all, producing numbered records ("v0", "v1", ...) from a thread
    until stopped, and keeping what was acknowledged: (partition, offset) -> value. For fault tests: whatever
    happens to the brokers meanwhile, every acknowledged record must be found at its offset afterwards."""

    def __init__(self, bootstrap: str, topic: str, partition: int | None = None) -> None:
        self.topic, self.partition = topic, partition
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": 120000, "retry.backoff.ms": 50, "retry.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 1000})
        self.acked: dict[tuple[int, int], bytes] = {}
        self.errors: list[str] = []
        self.fatal: list[str] = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="acked-producer", daemon=True)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            (self.fatal if err.fatal() else self.errors).append(str(err))
        else:
            self.acked[(msg.partition(), msg.offset())] = msg.value()

    def _run(self) -> None:
        where = {} if self.partition is None else {"partition": self.partition}
        while not self._stop.is_set():
            try:
                self.producer.produce(self.topic, value=f"v{self.sent}".encode(), on_delivery=self._delivered,
                                      **where)
                self.sent += 1
            except BufferError:
                self.producer.poll(0.05)
            self.producer.poll(0)
            if self.sent % 50 == 0:
                time.sleep(0.01)  # a steady stream, not a flood: fault tests are about failover, not throughput

    def start(self) -> AckedProducer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        remaining = self.producer.flush(120)
        assert remaining == 0, f"{remaining} records never acknowledged nor failed"
