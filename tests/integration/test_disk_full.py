"""Given a broker whose only log dir is a small tmpfs, when producers fill it, then they get
KAFKA_STORAGE_ERROR on a connection that stays open, the dir goes offline with one log line, what was
acknowledged stays readable, an offset commit gets NOT_COORDINATOR (Kafka's mapping of a coordinator's
failed append), SIGTERM shuts the broker down cleanly, and the next start on the still-full disk serves
every acknowledged record (issue 9 item 2, issue 10 item 4)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer

from moldau.client.client import Client, ClientError
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch
from tests.fixtures import BrokerProcess, fetched_values

TOPIC = "full"
PARTITIONS = 2
VALUE_BYTES = 8 * 1024
DISK = "16m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount_point)],
                             check=False, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_with_confluent(bootstrap: str) -> tuple[dict[int, list[bytes]], list[KafkaError]]:
    """Produce until the disk refuses; the acknowledged values per partition, and the errors seen."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2, "retries": 0,
                         "enable.idempotence": False, "message.timeout.ms": 20000})
    acked: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg) -> None:
        if err is None:
            acked[msg.partition()].append(msg.value())
        else:
            errors.append(err)

    for i in range(3 * 16 * 1024 * 1024 // VALUE_BYTES):  # three times what the disk holds
        value = b"%08d" % i + b"x" * (VALUE_BYTES - 8)
        producer.produce(TOPIC, value=value, partition=i % PARTITIONS, on_delivery=on_delivery)
        producer.poll(0)
        if i % 200 == 0:
            producer.flush(20)
            if errors:
                break
    assert producer.flush(30) == 0
    return acked, errors


def fill_to_the_last_byte(path: Path) -> None:
    with open(path, "wb", buffering=0) as filler:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    filler.write(b"\0" * size)
            except OSError:
                pass


def test_full_disk_answers_kafka_storage_error_and_keeps_acknowledged_records(small_disk: Path):
    import kafka
    import kafka.errors

    started: list[BrokerProcess] = []
    try:
        broker = BrokerProcess(small_disk, num_partitions=1, offsets_topic_num_partitions=1,
                               log_segment_bytes=2 * 1024 * 1024)
        started.append(broker.start())
        with Client(broker.bootstrap_servers) as client:
            client.create_topic(TOPIC, PARTITIONS)
            client.commit_offsets("g", {(TOPIC, 0): 0})  # __consumer_offsets exists before the disk fills

        acked, errors = fill_with_confluent(broker.bootstrap_servers)
        assert errors and all(e.code() == KafkaError.KAFKA_STORAGE_ERROR for e in errors), errors
        assert sum(map(len, acked.values())) > 100
        fill_to_the_last_byte(small_disk / "filler")  # and the few bytes the failed write left free

        with Client(broker.bootstrap_servers) as client:
            for _ in range(3):  # the same connection answers again and again
                with pytest.raises(ClientError) as refused:
                    client.produce(TOPIC, 0, build_batch([Record(0, 1000, None, b"more", [])]))
                assert refused.value.error_code == ErrorCode.KAFKA_STORAGE_ERROR
            with pytest.raises(ClientError) as commit:
                client.commit_offsets("g", {(TOPIC, 0): 5})
            assert commit.value.error_code == ErrorCode.NOT_COORDINATOR
            log_dirs = client.describe_log_dirs()
            assert [r.error_code for r in log_dirs] == [ErrorCode.KAFKA_STORAGE_ERROR]

        other = kafka.KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", retries=0,
                                    request_timeout_ms=10000)
        try:
            with pytest.raises(kafka.errors.KafkaStorageError):
                other.send(TOPIC, b"kafka-python", partition=1).get(timeout=20)
        finally:
            other.close(5)

        # An idempotent producer's InitProducerId needs a producer id block written to disk: retriable
        # COORDINATOR_LOAD_IN_PROGRESS until the message times out, on a connection that stays open.
        idempotent = Producer({"bootstrap.servers": broker.bootstrap_servers, "enable.idempotence": True,
                               "message.timeout.ms": 3000})
        outcome: list[KafkaError | None] = []
        idempotent.produce(TOPIC, b"idempotent", partition=0, on_delivery=lambda err, msg: outcome.append(err))
        idempotent.flush(15)
        assert outcome and outcome[0] is not None, outcome

        for partition in range(PARTITIONS):  # reads keep working on the offline dir
            stored = fetched_values(broker.bootstrap_servers, TOPIC, partition)
            assert stored[: len(acked[partition])] == acked[partition]

        assert broker.stop() == 0  # SIGTERM with 0 bytes free
        text = broker.log_text()
        assert text.count("log_dir.offline") == 1, text[-3000:]
        assert text.count("producer_id_manager.block_not_reserved") == 1, text[-3000:]
        assert "Traceback" not in text and "closing connection" not in text, text[-3000:]

        settings = {"port": broker.port, "num_partitions": 1, "offsets_topic_num_partitions": 1,
                    "log_segment_bytes": 2 * 1024 * 1024}
        broker = BrokerProcess(small_disk, **settings)
        started.append(broker.start())  # 0 bytes free: it starts, and serves reads
        try:
            for partition in range(PARTITIONS):
                stored = fetched_values(broker.bootstrap_servers, TOPIC, partition)
                assert stored[: len(acked[partition])] == acked[partition], "an acknowledged record was lost"
        finally:
            assert broker.stop() == 0

        (small_disk / "filler").unlink()  # space freed: the dir is back online at the next start, as in Kafka
        broker = BrokerProcess(small_disk, **settings)
        started.append(broker.start())
        try:
            with Client(broker.bootstrap_servers) as client:
                after = client.produce(TOPIC, 0, build_batch([Record(0, 1000, None, b"after", [])]))
                client.commit_offsets("g", {(TOPIC, 0): 7})
            stored = fetched_values(broker.bootstrap_servers, TOPIC, 0)
            assert stored[: len(acked[0])] == acked[0] and stored[after.base_offset] == b"after"
        finally:
            assert broker.stop() == 0
        assert "Traceback" not in broker.log_text()
    finally:
        for process in started:  # a failed assertion must not leave a broker running
            process.kill()
