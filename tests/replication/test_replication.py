"""Replication scenarios: three in-process brokers (node.id 1, 2, 3) driven by partition states that
`ControllerForTests` (test wiring standing in for the etcd store and controller) applies to each of them."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer

from moldau.client.client import Client, ClientError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch
from tests.fixtures import DEADLINE_S, clients, unique_topic, wait_until
from tests.replication.controller_for_tests import ControllerForTests, running_controller

MIN_ISR_2 = {"min.insync.replicas": "2"}


@pytest.fixture
def cluster(tmp_path):
    with running_controller(tmp_path, replica_lag_time_max_ms=3000) as controller:
        yield controller


def _confluent_producer(bootstrap: str, **extra) -> Producer:
    return clients.track(Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                   "linger.ms": 2, "retry.backoff.ms": 50, **extra}))


def _produce_confluent(producer: Producer, topic: str, values: list[str]) -> dict[str, int]:
    acked: dict[str, int] = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.value().decode()] = msg.offset()

    for value in values:
        producer.produce(topic, value=value.encode(), partition=0, on_delivery=report)
        producer.poll(0)
    assert producer.flush(DEADLINE_S) == 0
    assert not errors, errors
    return acked


def _caught_up(cluster: ControllerForTests, topic: str, nodes=(1, 2, 3)) -> tuple[int, int]:
    """Every replica has the leader's log end offset as its log end offset and high watermark."""
    leader = cluster.state(topic).leader

    def check():
        hw, leo = cluster.offsets(leader, topic)
        return (hw, leo) if all(cluster.offsets(n, topic) == (leo, leo) for n in nodes) and hw == leo else None
    return wait_until(check, what=f"every replica of {topic} caught up with leader {leader}")


def _read_kafka_python(bootstrap: str, topic: str, expected: int) -> list[tuple[int, str]]:
    consumer = clients.track(KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                           enable_auto_commit=False, consumer_timeout_ms=500))
    consumer.assign([__import__("kafka").TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    out: list[tuple[int, str]] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(out) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            out += [(r.offset, r.value.decode()) for r in records]
    return out


def test_acks_all_replicates_the_same_bytes_to_every_follower(cluster):
    topic = unique_topic("repl")
    cluster.create_topic(topic, configs=MIN_ISR_2)
    # Given a client that only knows broker 3 (a follower), when it produces with acks=all ...
    acked = _produce_confluent(_confluent_producer(cluster.bootstrap(3)), topic, [f"v{i}" for i in range(300)])
    assert sorted(acked.values()) == list(range(300))
    # ... then the leader answered once the whole ISR had the records: its high watermark covers them ...
    hw, leo = cluster.offsets(1, topic)
    assert hw == leo == 300
    # ... and every follower holds the same batches at the same offsets.
    _caught_up(cluster, topic)
    assert cluster.log_bytes(2, topic) == cluster.log_bytes(1, topic) == cluster.log_bytes(3, topic)
    # A second client library reads everything through a follower's bootstrap.
    read = _read_kafka_python(cluster.bootstrap(2), topic, 300)
    assert read == sorted((offset, value) for value, offset in acked.items())


def test_metadata_describes_leader_replicas_isr_and_brokers(cluster):
    topic = unique_topic("meta")
    cluster.create_topic(topic, partitions=3)
    with Client(cluster.bootstrap(2)) as client:
        metadata = client.metadata([topic])
    assert sorted(b.node_id for b in metadata.brokers) == [1, 2, 3]
    ports = {b.node_id: b.port for b in metadata.brokers}
    assert ports == {n: cluster.brokers[n].port for n in (1, 2, 3)}
    partitions = {p.partition_index: p for p in metadata.topics[0].partitions}
    assert [partitions[i].leader_id for i in range(3)] == [1, 2, 3]
    assert partitions[1].replica_nodes == [2, 3, 1] and partitions[1].isr_nodes == [2, 3, 1]
    # A follower refuses clients and names the leader (KIP-951).
    with Client(cluster.bootstrap(2)) as client:
        with pytest.raises(ClientError) as refused:
            client.produce(topic, 0, build_batch([Record(0, 0, None, b"x")]), acks=1)
        assert refused.value.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        request = messages.ProduceRequest(acks=1, timeout_ms=1000, topic_data=[
            messages.ProduceRequest.TopicProduceData(name=topic, partition_data=[
                messages.ProduceRequest.PartitionProduceData(index=0, records=build_batch([Record(0, 0, None, b"x")]))])])
        response = client.send(0, request, 11)
    result = response.responses[0].partition_responses[0]
    assert (result.current_leader.leader_id, result.current_leader.leader_epoch) == (1, 0)
    assert [(e.node_id, e.port) for e in response.node_endpoints] == [(1, cluster.brokers[1].port)]


def test_high_watermark_waits_for_the_isr_then_a_stopped_follower_is_dropped_and_rejoins(cluster):
    topic = unique_topic("isr")
    cluster.create_topic(topic, configs=MIN_ISR_2)
    producer = _confluent_producer(cluster.bootstrap(1))
    _produce_confluent(producer, topic, ["a", "b"])
    _caught_up(cluster, topic)
    # Given broker 3 stopped while it is still in the ISR, when a record is appended with acks=1 ...
    cluster.stop(3)
    with Client(cluster.bootstrap(1)) as client:
        client.produce(topic, 0, build_batch([Record(0, 0, None, b"c")]), acks=1)
    hw, leo = cluster.offsets(1, topic)
    if 3 in cluster.state(topic).isr:  # (a very slow machine may have shrunk the ISR already)
        # ... then the high watermark does not pass it: broker 3, in the ISR, lacks it.
        assert (hw, leo) == (2, 3)
    with Client(cluster.bootstrap(1)) as client:  # broker 3 is gone from the brokers, offline in the partition
        metadata = client.metadata([topic])
    assert sorted(b.node_id for b in metadata.brokers) == [1, 2]
    assert metadata.topics[0].partitions[0].offline_replicas == [3]
    # After replica.lag.time.max.ms the leader drops broker 3 from the ISR, and the record commits.
    wait_until(lambda: cluster.state(topic).isr == (1, 2), what="the ISR to shrink to (1, 2)")
    wait_until(lambda: cluster.offsets(1, topic) == (3, 3), what="the high watermark to reach 3")
    # Producing with acks=all goes on with 2 in-sync replicas (min.insync.replicas=2).
    acked = _produce_confluent(producer, topic, ["d", "e"])
    assert sorted(acked.values()) == [3, 4]
    # When broker 3 comes back, it catches up and rejoins the ISR.
    cluster.start(3)
    wait_until(lambda: cluster.state(topic).isr == (1, 2, 3), what="broker 3 to rejoin the ISR")
    _caught_up(cluster, topic)
    assert cluster.log_bytes(3, topic) == cluster.log_bytes(1, topic)


def test_acks_all_fails_when_the_isr_shrinks_under_min_insync_replicas(cluster):
    topic = unique_topic("minisr")
    cluster.create_topic(topic, configs=MIN_ISR_2)
    _produce_confluent(_confluent_producer(cluster.bootstrap(1)), topic, ["a"])
    # Given both followers down while still in the ISR, an acks=all append passes the min.insync.replicas
    # check, waits, and fails once the leader shrinks the ISR to itself (Kafka's DelayedProduce).
    cluster.stop(2)
    cluster.stop(3)
    with Client(cluster.bootstrap(1)) as client:
        # A produce whose timeout_ms passes before the ISR has the batch: REQUEST_TIMED_OUT.
        request = messages.ProduceRequest(acks=-1, timeout_ms=200, topic_data=[
            messages.ProduceRequest.TopicProduceData(name=topic, partition_data=[
                messages.ProduceRequest.PartitionProduceData(index=0, records=build_batch([Record(0, 0, None, b"t")]))])])
        timed_out = client.send(0, request, 9).responses[0].partition_responses[0]
        if 2 in cluster.state(topic).isr:
            assert timed_out.error_code == ErrorCode.REQUEST_TIMED_OUT
        with pytest.raises(ClientError) as after_append:
            client.produce(topic, 0, build_batch([Record(0, 0, None, b"x")]), acks=-1)
        assert after_append.value.error_code == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        assert cluster.state(topic).isr == (1,)
        # Now the ISR is too small from the start: refused before the append.
        with pytest.raises(ClientError) as refused:
            client.produce(topic, 0, build_batch([Record(0, 0, None, b"y")]), acks=-1)
        assert refused.value.error_code == ErrorCode.NOT_ENOUGH_REPLICAS
        assert client.produce(topic, 0, build_batch([Record(0, 0, None, b"z")]), acks=1).base_offset == 3


def test_leader_change_moves_clients_and_loses_no_acknowledged_record(cluster):
    topic = unique_topic("failover")
    cluster.create_topic(topic, configs=MIN_ISR_2)
    producer = _confluent_producer(cluster.bootstrap(1, 2, 3), **{"message.send.max.retries": 1000})
    acked: dict[str, int] = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.value().decode()] = msg.offset()

    sent = 0
    for leader in (2, 3, 1):
        # Records in flight while the leadership moves (librdkafka follows NOT_LEADER_OR_FOLLOWER).
        for _ in range(100):
            producer.produce(topic, value=f"r{sent}".encode(), partition=0, on_delivery=report)
            producer.poll(0)
            sent += 1
        cluster.elect(topic, 0, leader)
        for _ in range(100):
            producer.produce(topic, value=f"r{sent}".encode(), partition=0, on_delivery=report)
            producer.poll(0)
            sent += 1
    assert producer.flush(DEADLINE_S) == 0
    assert not errors, errors
    assert len(acked) == sent
    _caught_up(cluster, topic)
    # Every acknowledged record is there exactly once, at its acknowledged offset (idempotence kept the
    # producer state on the followers, so retries to a new leader were deduplicated).
    expected = sorted((offset, value) for value, offset in acked.items())
    assert expected == [(i, value) for i, (_, value) in enumerate(expected)]
    consumer = clients.track(Consumer({"bootstrap.servers": cluster.bootstrap(2), "group.id": unique_topic("g"),
                                       "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    read: list[tuple[int, str]] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(read) < sent and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            read.append((msg.offset(), msg.value().decode()))
    assert read == expected
    assert cluster.log_bytes(1, topic) == cluster.log_bytes(2, topic) == cluster.log_bytes(3, topic)


def test_kafka_python_follows_a_leader_change(cluster):
    topic = unique_topic("kp")
    cluster.create_topic(topic, configs=MIN_ISR_2)
    producer = clients.track(KafkaProducer(bootstrap_servers=cluster.bootstrap(1), acks="all", retries=20,
                                           retry_backoff_ms=100))
    first = [producer.send(topic, f"a{i}".encode(), partition=0).get(DEADLINE_S).offset for i in range(20)]
    cluster.elect(topic, 0, 3)
    second = [producer.send(topic, f"b{i}".encode(), partition=0).get(DEADLINE_S).offset for i in range(20)]
    assert first + second == list(range(40))
    _caught_up(cluster, topic)
    assert [v for _, v in _read_kafka_python(cluster.bootstrap(1), topic, 40)] == \
        [f"a{i}" for i in range(20)] + [f"b{i}" for i in range(20)]


def test_a_returning_replica_truncates_its_divergent_tail(cluster):
    topic = unique_topic("diverge")
    cluster.create_topic(topic)
    _produce_confluent(_confluent_producer(cluster.bootstrap(1)), topic, [f"c{i}" for i in range(10)])
    _caught_up(cluster, topic)
    # Given leader 1 appends records no follower gets (its followers are down) ...
    cluster.stop(2)
    cluster.stop(3)
    with Client(cluster.bootstrap(1)) as client:
        for i in range(5):
            client.produce(topic, 0, build_batch([Record(0, 0, None, f"lost{i}".encode())]), acks=1)
    assert cluster.offsets(1, topic)[1] == 15
    # ... and then dies; broker 2 is elected leader (epoch 1) and takes new writes.
    cluster.stop(1)
    cluster.start(2)
    cluster.start(3)
    cluster.elect(topic, 0, 2, isr=(2, 3))
    # (Not idempotent: each broker still hands out producer ids on its own, so a second idempotent producer
    # could get the first one's id; cluster-wide producer id blocks come with the etcd controller.)
    acked = _produce_confluent(_confluent_producer(cluster.bootstrap(2), **{"enable.idempotence": False}), topic,
                               [f"n{i}" for i in range(7)])
    assert sorted(acked.values()) == list(range(10, 17))
    # When broker 1 returns as a follower, OffsetForLeaderEpoch tells it where epoch 0 ended (offset 10):
    # it truncates its 5 unreplicated records and copies the leader's log.
    cluster.start(1)
    wait_until(lambda: cluster.offsets(1, topic) == cluster.offsets(2, topic) == (17, 17),
               what="broker 1 to catch up with leader 2")
    assert cluster.log_bytes(1, topic) == cluster.log_bytes(2, topic)
    wait_until(lambda: cluster.state(topic).isr == (2, 3, 1), what="broker 1 to rejoin the ISR")
    # OffsetForLeaderEpoch, as clients use it (KIP-320), from the new leader.
    with Client(cluster.bootstrap(2)) as client:
        request = messages.OffsetForLeaderEpochRequest(replica_id=-1, topics=[
            messages.OffsetForLeaderEpochRequest.OffsetForLeaderTopic(topic=topic, partitions=[
                messages.OffsetForLeaderEpochRequest.OffsetForLeaderPartition(
                    partition=0, current_leader_epoch=1, leader_epoch=0)])])
        answer = client.send(23, request, 4).topics[0].partitions[0]
    assert (answer.error_code, answer.leader_epoch, answer.end_offset) == (0, 0, 10)


def test_a_follower_behind_the_leaders_log_start_starts_over_there(cluster):
    topic = unique_topic("oor")
    cluster.create_topic(topic)
    producer = _confluent_producer(cluster.bootstrap(1))
    _produce_confluent(producer, topic, ["a", "b"])
    _caught_up(cluster, topic)
    cluster.stop(3)
    _produce_confluent(producer, topic, [f"v{i}" for i in range(8)])  # waits for the ISR to drop broker 3
    assert cluster.state(topic).isr == (1, 2)
    with Client(cluster.bootstrap(1)) as client:
        assert client.delete_records(topic, {0: 8}) == {0: 8}
    # Broker 3 returns at offset 2, below the leader's log start offset 8: OFFSET_OUT_OF_RANGE, and it
    # starts its log over at 8 (Kafka's handleOutOfRangeError), then catches up and rejoins.
    cluster.start(3)
    _caught_up(cluster, topic)
    partition = cluster.replica(3, topic)
    assert partition.log.log_start_offset == 8
    wait_until(lambda: cluster.state(topic).isr == (1, 2, 3), what="broker 3 to rejoin the ISR")


def test_a_new_leader_deduplicates_an_idempotent_retry(cluster):
    topic = unique_topic("dedup")
    cluster.create_topic(topic)

    def batch(sequence: int, value: bytes) -> bytes:
        return build_batch([Record(0, 0, None, value)], producer_id=4242, producer_epoch=0,
                           base_sequence=sequence)

    with Client(cluster.bootstrap(1)) as client:
        assert client.produce(topic, 0, batch(0, b"first")).base_offset == 0
        assert client.produce(topic, 0, batch(1, b"second")).base_offset == 1
    # The leader dies after appending "second" (say the producer never saw the answer); broker 2 leads.
    cluster.elect(topic, 0, 2, isr=(2, 3))
    with Client(cluster.bootstrap(2)) as client:
        # The producer's retry of "second" to the new leader: answered with its offset, not appended again,
        # because broker 2 rebuilt the producer's sequence numbers from the replicated batches.
        assert client.produce(topic, 0, batch(1, b"second")).base_offset == 1
        assert client.produce(topic, 0, batch(2, b"third")).base_offset == 2
        with pytest.raises(ClientError) as gap:
            client.produce(topic, 0, batch(5, b"gap"))
        assert gap.value.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert cluster.offsets(2, topic) == (3, 3)


def test_a_follower_fetch_reads_past_the_high_watermark_and_a_consumer_does_not(cluster):
    topic = unique_topic("fetchv15")
    metadata = cluster.create_topic(topic)
    with Client(cluster.bootstrap(1)) as client:
        client.produce(topic, 0, build_batch([Record(0, 0, None, b"committed")]), acks=-1)
    cluster.stop(3)  # still in the ISR for replica.lag.time.max.ms: the next record stays uncommitted
    request_type = messages.FetchRequest

    def fetch(replica_id: int) -> object:
        return request_type(
            replica_state=request_type.ReplicaState(replica_id=replica_id, replica_epoch=-1), max_wait_ms=0,
            min_bytes=0, max_bytes=1 << 20, isolation_level=0, session_id=0, session_epoch=-1,
            topics=[request_type.FetchTopic(topic_id=metadata.topic_id, partitions=[request_type.FetchPartition(
                partition=0, current_leader_epoch=0, fetch_offset=1, last_fetched_epoch=-1, log_start_offset=0,
                partition_max_bytes=1 << 20)])], forgotten_topics_data=[], rack_id="")

    with Client(cluster.bootstrap(1)) as client:
        client.produce(topic, 0, build_batch([Record(0, 0, None, b"pending")]), acks=1)
        if 3 not in cluster.state(topic).isr:
            pytest.skip("the ISR shrank before the fetch (a very slow machine)")
        as_follower = client.send(1, fetch(2), 15).responses[0].partitions[0]   # ReplicaState (KIP-903)
        as_consumer = client.send(1, fetch(-1), 15).responses[0].partitions[0]
    assert as_follower.error_code == as_consumer.error_code == 0
    assert as_follower.high_watermark == as_consumer.high_watermark == 1
    assert len(as_follower.records) > 0  # offset 1, beyond the high watermark
    assert not as_consumer.records


def test_repeatedly_stopping_the_leader_under_load_loses_and_duplicates_nothing(cluster):
    topic = unique_topic("churn")
    cluster.create_topic(topic, partitions=3, configs=MIN_ISR_2)
    producer = _confluent_producer(cluster.bootstrap(1, 2, 3), **{"message.timeout.ms": 120000})
    acked: dict[bytes, tuple[int, int]] = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.value()] = (msg.partition(), msg.offset())

    sent = 0

    def produce(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            producer.produce(topic, value=str(sent).encode(), partition=sent % 3, on_delivery=report)
            producer.poll(0)
            sent += 1

    for round_ in range(6):
        produce(200)
        index = round_ % 3
        state = cluster.state(topic, index)
        # The leader goes down; the controller elects the next ISR member; the old leader comes back.
        cluster.stop(state.leader)
        survivors = tuple(r for r in state.isr if r != state.leader)
        cluster.elect(topic, index, survivors[0], isr=survivors)
        produce(200)
        cluster.start(state.leader)


        def isr_full(i: int = index) -> bool:
            producer.poll(0.05)  # deliveries go on meanwhile
            return len(cluster.state(topic, i).isr) == 3

        wait_until(isr_full, what=f"partition {index}'s ISR to return to 3 replicas")
    assert producer.flush(DEADLINE_S) == 0
    assert not errors, errors
    assert len(acked) == sent
    consumer = clients.track(Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": unique_topic("g"),
                                       "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    read: dict[bytes, tuple[int, int]] = {}
    deadline = time.monotonic() + DEADLINE_S
    while len(read) < sent and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            assert msg.value() not in read, f"{msg.value()!r} read twice"
            read[msg.value()] = (msg.partition(), msg.offset())
    assert read == acked  # every acknowledged record once, at its acknowledged offset


def test_a_restarted_leader_keeps_its_checkpointed_high_watermark(cluster):
    topic = unique_topic("hwcp")
    cluster.create_topic(topic)
    with Client(cluster.bootstrap(1)) as client:
        client.produce(topic, 0, build_batch([Record(0, 0, None, b"committed")]), acks=-1)
    _caught_up(cluster, topic)
    cluster.stop(3)  # still in the ISR: what follows is not committed
    with Client(cluster.bootstrap(1)) as client:
        client.produce(topic, 0, build_batch([Record(0, 0, None, b"pending")]), acks=1)
    cluster.stop(1)
    cluster.start(1)  # opened alone first (HW = LEO), then given its partition state again
    if 3 in cluster.state(topic).isr:
        # replication-offset-checkpoint's high watermark, not the log end offset: "pending" is not committed.
        assert cluster.offsets(1, topic) == (1, 2)
