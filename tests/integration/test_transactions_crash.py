"""Given a consume-transform-produce loop using transactions, when the broker is SIGKILLed in the middle
of a transaction and restarted, then the output read with read_committed holds every input record exactly
once (KIP-98 exactly-once: the open transaction is aborted, committed offsets and output agree)."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from tests.fixtures import DEADLINE_S, create_topic
from tests.integration.test_transactions import PARTITIONS, read_values

RECORDS_PER_PARTITION = 60
BATCH = 15
# librdkafka 2.10+ re-bootstraps (KIP-1102) when the only broker is down, and a producer that did so
# waits forever in send_offsets_to_transaction on its stale group-coordinator handle: keep the handle.
NO_REBOOTSTRAP = {"metadata.recovery.strategy": "none"}
OVERRIDES = {"num_partitions": PARTITIONS, "offsets_topic_num_partitions": 3,
             "transaction_state_log_num_partitions": 3}


def produce_input(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for p in range(PARTITIONS):
        for i in range(RECORDS_PER_PARTITION):
            producer.produce(topic, value=f"{p}-{i}".encode(), partition=p)
    assert producer.flush(DEADLINE_S) == 0


class Transformer:
    """One instance of the processing app: a transactional producer plus a consumer resuming from the
    group's committed offsets (assign(), no group membership)."""

    def __init__(self, bootstrap: str, source: str, sink: str, group: str, transactional_id: str) -> None:
        self.source, self.sink = source, sink
        self.producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                                  "transaction.timeout.ms": 20000, "linger.ms": 5, **NO_REBOOTSTRAP})
        self.producer.init_transactions(DEADLINE_S)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                                  "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
        committed = self.consumer.committed([TopicPartition(source, p) for p in range(PARTITIONS)], DEADLINE_S)
        self.positions = {tp.partition: max(tp.offset, 0) for tp in committed}
        self.consumer.assign([TopicPartition(source, p, o) for p, o in self.positions.items()])

    @property
    def done(self) -> bool:
        return all(offset >= RECORDS_PER_PARTITION for offset in self.positions.values())

    def step(self, before_commit=None) -> None:
        """One transaction: up to BATCH records in, transformed records and offsets out."""
        messages = [m for m in self.consumer.consume(BATCH, 0.5) if not m.error()]
        if not messages:
            return
        self.producer.begin_transaction()
        for m in messages:
            self.producer.produce(self.sink, value=m.value(), partition=m.partition())
        next_positions = dict(self.positions)
        for m in messages:
            next_positions[m.partition()] = m.offset() + 1
        offsets = [TopicPartition(self.source, p, o) for p, o in next_positions.items()]
        self.producer.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(), DEADLINE_S)
        if before_commit is not None:
            self.producer.flush(DEADLINE_S)
            before_commit()
        self.producer.commit_transaction(DEADLINE_S)
        self.positions = next_positions

    def close(self) -> None:
        self.consumer.close()


def test_broker_killed_mid_transaction(broker_process):
    broker = broker_process(**OVERRIDES)
    bootstrap = broker.bootstrap_servers
    source, sink, group = "ctp-in", "ctp-out", "ctp-group"
    create_topic(bootstrap, source)
    create_topic(bootstrap, sink)
    produce_input(bootstrap, source)

    class AppCrashed(Exception):
        """The processing app dies with the broker: its open transaction is left behind."""

    def crash_both() -> None:
        broker.kill()
        broker.start()
        raise AppCrashed

    def crash_broker() -> None:
        broker.kill()
        broker.start()

    # Step 3: broker and app die mid-transaction (a new app instance must abort the leftover);
    # step 7: only the broker dies mid-transaction (the same app commits after the restart).
    hooks = {3: crash_both, 7: crash_broker}
    app = Transformer(bootstrap, source, sink, group, "ctp-app")
    steps, failures = 0, 0
    deadline = time.monotonic() + 3 * DEADLINE_S
    while not app.done and time.monotonic() < deadline:
        try:
            app.step(hooks.pop(steps, None))
        except (KafkaException, AppCrashed) as exc:
            # A failed transaction: a new instance takes over (fencing and aborting the old one).
            assert failures < 5, f"too many failures: {exc}"
            failures += 1
            app = Transformer(bootstrap, source, sink, group, "ctp-app")
        steps += 1
    crashed = not hooks
    app.close()
    assert crashed and app.done and failures >= 1


    expected = sorted(f"{p}-{i}" for p in range(PARTITIONS) for i in range(RECORDS_PER_PARTITION))
    assert sorted(read_values(bootstrap, sink, "read_committed", len(expected))) == expected
    # the abandoned transaction's records are in the log, but aborted
    assert len(read_values(bootstrap, sink, "read_uncommitted", len(expected))) > len(expected)
    assert "Traceback" not in broker.log_text()
