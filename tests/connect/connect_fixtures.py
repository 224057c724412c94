"""Helpers shared by the Connect tests: fast worker settings, waiting for a condition, reading a topic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import confluent_kafka

from tests.fixtures import wait_until

# Short timers so scenarios finish quickly on a loaded 2-core machine; Kafka's defaults are minutes.
FAST_WORKER = {"offset.flush.interval.ms": "200", "task.shutdown.graceful.timeout.ms": "10000"}


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@contextmanager
def _reading(bootstrap: str, topic: str, timeout: float, **settings: Any) -> Iterator[tuple[Any, list[int]]]:
    """A consumer assigned every partition of `topic` from the beginning (no group join delay)."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "connect-test-reader",
                                         "enable.auto.commit": False, **settings})
    try:
        partitions = wait_until(lambda: consumer.list_topics(topic, timeout=5).topics[topic].partitions,
                                timeout, f"topic {topic}")
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                         for p in sorted(partitions)])
        yield consumer, sorted(partitions)
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[confluent_kafka.Message]:
    """Up to `count` records from every partition of `topic`."""
    messages: list[confluent_kafka.Message] = []
    deadline = time.monotonic() + timeout
    with _reading(bootstrap, topic, timeout, **{"enable.partition.eof": False}) as (consumer, _):
        while len(messages) < count and time.monotonic() < deadline:
            for m in consumer.consume(count - len(messages), 0.2):
                if m.error() is None:
                    messages.append(m)
    return messages


def read_to_end(bootstrap: str, topic: str, timeout: float = 60.0) -> list[confluent_kafka.Message]:
    """Every committed record of every partition of `topic`, read until each partition's end (librdkafka's
    partition EOF at the last stable offset): exact and quick, where asking `read_topic` for one record more
    than exists waits out its whole timeout."""
    messages: list[confluent_kafka.Message] = []
    deadline = time.monotonic() + timeout
    with _reading(bootstrap, topic, timeout, **{"enable.partition.eof": True,
                                                "isolation.level": "read_committed"}) as (consumer, partitions):
        unfinished = set(partitions)
        while unfinished:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(unfinished)} not read to the end in {timeout} s")
            for m in consumer.consume(10000, 0.2):
                error = m.error()
                if error is None:
                    messages.append(m)
                elif error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    unfinished.discard(m.partition())
    return messages


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]], **kwargs: Any) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for key, value in records:
        producer.produce(topic, key=key, value=value, **kwargs)
    assert producer.flush(30) == 0


def create_topic(bootstrap: str, topic: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})])[topic].result(30)
    return topic


def rest(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One call to a Connect REST API: (HTTP status, parsed JSON body or None)."""
    from moldau.cli.connect import request

    return request(url, method, path, body)


class WorkerProcess:
    """`moldau connect start worker.properties` as a real child process on a free port."""

    def __init__(self, tmp_path: Any, name: str, props: dict[str, str]) -> None:
        from tests.fixtures import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker_id = f"127.0.0.1:{self.port}"
        self.config = tmp_path / f"{name}.properties"
        self.config.write_text("".join(f"{k}={v}\n" for k, v in {
            **props, "listeners": f"http://127.0.0.1:{self.port}"}.items()))
        self.log_path = tmp_path / f"{name}.log"
        self.process: Any = None

    def start(self) -> WorkerProcess:
        import subprocess
        import sys

        from tests.fixtures import wait_for_port

        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen([sys.executable, "-m", "moldau.cli.main", "connect", "start",
                                             str(self.config)], stdout=log_file, stderr=subprocess.STDOUT)
        wait_for_port(self.port, 60, self.process)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except Exception:  # noqa: BLE001 - a hung worker is killed rather than leaked
                self.kill()


def distributed_props(bootstrap: str, group: str) -> dict[str, str]:
    """A connect-distributed.properties for tests: replication factor 1 (one broker), short timers."""
    return {"bootstrap.servers": bootstrap, "group.id": group,
            "config.storage.topic": f"{group}-configs", "offset.storage.topic": f"{group}-offsets",
            "status.storage.topic": f"{group}-status", "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1", "status.storage.replication.factor": "1",
            "offset.storage.partitions": "5", "status.storage.partitions": "2",
            "session.timeout.ms": "3000", "heartbeat.interval.ms": "300", "rebalance.timeout.ms": "20000",
            # KIP-415 holds a departed worker's work this long before moving it (Kafka's default: 5 minutes).
            "scheduled.rebalance.max.delay.ms": "1000",
            # A killed worker's sink consumers hold their partitions until their group session expires:
            # librdkafka's 45 s default would stall every failover test; 6 s is Kafka's minimum.
            "consumer.session.timeout.ms": "6000", "consumer.heartbeat.interval.ms": "500",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter", **FAST_WORKER}
