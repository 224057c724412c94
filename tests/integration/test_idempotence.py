"""Given a broker, when idempotent producers (real clients and hand-made batches) send, retry, fence and the
broker is killed, then every record is stored once and the broker answers as Kafka does."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer
from kafka import KafkaProducer

from moldau.client.client import Client
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch, decode_batch, iter_batches
from tests.fixtures import DEADLINE_S, unique_topic

PARTITIONS = 3
RECORDS = 300
NOW = 1_700_000_000_000


def stored(bootstrap: str, topic: str, partition: int) -> list[tuple[int, bytes, int]]:
    """``(offset, value, producer_id)`` of every record of a partition."""
    out: list[tuple[int, bytes, int]] = []
    with Client(bootstrap) as client:
        end = client.list_offset(topic, partition, -1)
        offset = 0
        while offset < end:
            data = bytes(client.fetch(topic, partition, offset, max_wait_ms=0).records or b"")
            assert data, f"no data at offset {offset} below {end}"
            for pos, header in iter_batches(data):
                for record in decode_batch(data[pos : pos + header.size_in_bytes]):
                    out.append((record.offset, record.value, header.producer_id))
                offset = header.last_offset + 1
    return out


def check_once_each(bootstrap: str, topic: str) -> None:
    values: list[bytes] = []
    for partition in range(PARTITIONS):
        records = stored(bootstrap, topic, partition)
        assert all(pid >= 0 for _, _, pid in records), "batches were not idempotent"
        values += [value for _, value, _ in records]
    assert sorted(values) == sorted(str(i).encode() for i in range(RECORDS))


def test_confluent_idempotent_producer_writes_each_record_once(broker):
    topic = unique_topic("idem-confluent")
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, PARTITIONS)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "enable.idempotence": True,
                         "linger.ms": 5, "batch.num.messages": 20})
    errors: list[object] = []
    for i in range(RECORDS):
        producer.produce(topic, value=str(i).encode(), partition=i % PARTITIONS,
                         on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(DEADLINE_S) == 0
    assert not errors
    check_once_each(broker.bootstrap_servers, topic)


async def test_aiokafka_idempotent_producer_writes_each_record_once(broker):
    topic = unique_topic("idem-aiokafka")
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, PARTITIONS)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=True,
                                linger_ms=5)
    await producer.start()
    try:
        sends = [await producer.send(topic, str(i).encode(), partition=i % PARTITIONS) for i in range(RECORDS)]
        await asyncio.wait_for(asyncio.gather(*sends), DEADLINE_S)
    finally:
        await producer.stop()
    await asyncio.to_thread(check_once_each, broker.bootstrap_servers, topic)


def test_kafka_python_default_producer_is_idempotent(broker):
    topic = unique_topic("idem-kafka-python")
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)  # idempotent by default
    try:
        futures = [producer.send(topic, str(i).encode(), partition=i % PARTITIONS) for i in range(RECORDS)]
        producer.flush(DEADLINE_S)
        for future in futures:
            future.get(DEADLINE_S)
    finally:
        producer.close(DEADLINE_S)
    check_once_each(broker.bootstrap_servers, topic)


# -- protocol level ------------------------------------------------------------------------------------


def init_producer_id(client: Client, transactional_id: str | None = None, version: int | None = None,
                     producer_id: int = -1, epoch: int = -1) -> messages.InitProducerIdResponse:
    request = messages.InitProducerIdRequest(transactional_id=transactional_id, transaction_timeout_ms=60000,
                                             producer_id=producer_id, producer_epoch=epoch)
    return client.send(22, request, version)


def batch(pid: int, epoch: int, seq: int, count: int = 1) -> bytes:
    return build_batch([Record(i, NOW, None, f"{pid}-{epoch}-{seq + i}".encode()) for i in range(count)],
                       producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def produce(client: Client, topic: str, records: bytes, partition: int = 0):
    request_type = messages.ProduceRequest
    request = request_type(acks=-1, timeout_ms=30000, topic_data=[request_type.TopicProduceData(
        name=topic, partition_data=[request_type.PartitionProduceData(index=partition, records=records)])])
    return client.send(0, request, 12).responses[0].partition_responses[0]


def test_broker_answers_retries_gaps_and_stale_epochs_as_kafka_does(broker):
    topic = unique_topic("idem-protocol")
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, 1)
        ids = {init_producer_id(client, version=v).producer_id for v in range(6)}
        assert len(ids) == 6 and min(ids) >= 0
        response = init_producer_id(client)
        assert (response.error_code, response.producer_epoch) == (ErrorCode.NONE, 0)
        pid = response.producer_id

        first = produce(client, topic, batch(pid, 0, 0, 3))
        second = produce(client, topic, batch(pid, 0, 3, 2))
        assert (first.error_code, first.base_offset, second.base_offset) == (0, 0, 3)

        retry = produce(client, topic, batch(pid, 0, 0, 3))
        assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, 0)
        assert client.list_offset(topic, 0, -1) == 5, "a retry must not be written again"

        gap = produce(client, topic, batch(pid, 0, 9))
        assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER

        bumped = produce(client, topic, batch(pid, 1, 0))  # KIP-360: the client bumps its epoch itself
        assert (bumped.error_code, bumped.base_offset) == (ErrorCode.NONE, 5)
        stale = produce(client, topic, batch(pid, 0, 5))
        assert stale.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
        wrong_start = produce(client, topic, batch(pid, 2, 4))
        assert wrong_start.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER

        # Kafka gives a null transactional id a fresh id, epoch 0, whatever it asked for.
        again = init_producer_id(client, producer_id=pid, epoch=1)
        assert again.error_code == ErrorCode.NONE and again.producer_id not in ids | {pid}
        assert init_producer_id(client, producer_id=pid).error_code == ErrorCode.INVALID_REQUEST
        assert init_producer_id(client, "").error_code == ErrorCode.INVALID_REQUEST
        txn = init_producer_id(client, "my-txn")  # the transaction coordinator (test_transactions*.py)
        assert (txn.error_code, txn.producer_epoch) == (ErrorCode.NONE, 0) and txn.producer_id not in ids | {pid}

        described = client.send(61, messages.DescribeProducersRequest(topics=[
            messages.DescribeProducersRequest.TopicRequest(name=topic, partition_indexes=[0, 7])]))
        ok, missing = described.topics[0].partitions
        assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        (state,) = ok.active_producers
        assert (state.producer_id, state.producer_epoch, state.last_sequence, state.last_timestamp) == (pid, 1, 0, NOW)
        assert (state.coordinator_epoch, state.current_txn_start_offset) == (-1, -1)


def test_producer_state_and_ids_survive_sigkill(broker_process, tmp_path: Path):
    topic = "idem-crash"
    broker = broker_process(tmp_path / "data", log_segment_bytes=1048576)
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, 1)
        pid = init_producer_id(client).producer_id
        offsets = [produce(client, topic, batch(pid, 0, seq)).base_offset for seq in range(8)]
        # a plain batch after them, so the duplicates are not simply the log's tail
        client.produce(topic, 0, build_batch([Record(0, NOW, None, b"plain")]))
    broker.kill()
    broker = broker_process(tmp_path / "data")
    with Client(broker.bootstrap_servers) as client:
        for seq in range(3, 8):  # the last five batches are still recognised as retries
            retry = produce(client, topic, batch(pid, 0, seq))
            assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, offsets[seq])
        assert client.list_offset(topic, 0, -1) == 9
        assert produce(client, topic, batch(pid, 0, 10)).error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(client, topic, batch(pid, 0, 8)).base_offset == 9
        assert init_producer_id(client).producer_id > pid, "producer ids must never repeat after a crash"


def test_init_producer_id_and_describe_producers_are_advertised(broker):
    with Client(broker.bootstrap_servers) as client:
        assert client.versions[22] == (0, 5)  # v6 (KIP-939) is unstable
        assert client.versions[61] == (0, 0)


async def test_producer_id_blocks_are_durable_and_never_reused(tmp_path: Path):
    from moldau.broker.producer_id_manager import ProducerIdManager

    first = ProducerIdManager(tmp_path, block_size=10)
    assert [await first.generate_producer_id() for _ in range(12)] == list(range(12))
    # a restart (or a crash) mid-block skips the rest of the block
    second = ProducerIdManager(tmp_path, block_size=10)
    assert await second.generate_producer_id() == 20
