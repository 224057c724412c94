"""ExactlyOnceWorkerSourceTask (KIP-618): each batch of records and the source offsets it advances to are
written in one Kafka transaction, so after any crash the offset topic and the data topics agree: records of
an aborted transaction are invisible to read_committed consumers, and the next owner resumes from the last
committed offsets.

The transactional id is `<group.id>-<connector>-<task>` (Kafka's), so a task's new owner fences the old one
(`init_transactions` bumps the epoch) and a zombie worker can no longer commit. Tasks of an earlier
generation of task configs are fenced by the leader before the first task of a new one starts
(`runtime/zombie_fencing.py`).
`transaction.boundary`: `poll` (default, one transaction per poll) or `interval`
(`transaction.boundary.interval.ms`, default offset.flush.interval.ms).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import confluent_kafka

from moldau.connect.api.errors import ConnectException
from moldau.connect.runtime.source_task import WorkerSourceTask
from moldau.connect.runtime.zombie_fencing import ZombieFencer

log = logging.getLogger(__name__)
TRANSACTION_TIMEOUT_S = 60.0


def transactional_id(group_id: str, connector: str, task: int) -> str:
    return f"{group_id}-{connector}-{task}"


class ExactlyOnceWorkerSourceTask(WorkerSourceTask):
    def __init__(self, *args: Any, offsets_topic: str, transactional_id: str, fencer: ZombieFencer | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offsets_topic = offsets_topic
        self.transactional_id = transactional_id
        self.fencer = fencer
        self.generation = fencer.task_generation(self.id.connector) if fencer is not None else 0
        config = self.plumbing.connector_config
        self.boundary = str(config.get("transaction.boundary", "poll")).lower()
        interval = config.get("transaction.boundary.interval.ms")
        self.boundary_interval_s = int(interval) / 1000 if interval else self.flush_interval_s
        self.in_transaction = False
        self.transaction_started = 0.0

    def create_producer(self) -> confluent_kafka.Producer:
        if self.fencer is not None:  # no task of an earlier generation may commit once this one starts
            self.fencer.fence_zombies(self.id, self.stopping)
        producer = confluent_kafka.Producer({
            "acks": "all", "enable.idempotence": True, "linger.ms": 5, **self.producer_config,
            **self.delivery_settings(), "transactional.id": self.transactional_id, "client.id": f"connector-producer-{self.id}"})
        producer.init_transactions(TRANSACTION_TIMEOUT_S)  # fences any previous owner of this task
        if self.fencer is not None:  # a rebalance or new task configs while this one started: it must not run
            self.fencer.verify_task(self.id, self.generation)
        # The previous owner's last transaction is now committed or aborted: read the offsets to the end before
        # the task asks for them, or it could resume from an older offset and write records twice.
        self.offset_store.refresh()
        return producer

    def execute(self) -> None:
        assert self.producer is not None
        while not self.stopping.is_set():
            if self.paused:
                self.commit_transaction()
                if not self.wait_while_paused():
                    break
            records = self.poll()
            if records:
                if not self.in_transaction:
                    self.producer.begin_transaction()
                    self.in_transaction, self.transaction_started = True, time.monotonic()
                self.send_records(records)
            self.producer.poll(0)
            self.check_delivery()
            if self.in_transaction and (self.boundary != "interval" or
                                        time.monotonic() - self.transaction_started >= self.boundary_interval_s):
                self.commit_transaction()

    def commit_transaction(self) -> None:
        """Offsets into the same transaction as the records, then commit (KIP-618's atomic write)."""
        if not self.in_transaction or self.producer is None:
            return
        offsets, self.pending_offsets = self.pending_offsets, {}
        for key, value in offsets.items():
            self.producer.produce(self.offsets_topic, key=key.encode(),
                                  value=None if value is None else json.dumps(value, sort_keys=True,
                                                                              separators=(",", ":")).encode())
        try:
            self.producer.commit_transaction(TRANSACTION_TIMEOUT_S)
        except confluent_kafka.KafkaException as exc:
            raise ConnectException(f"{self.id}: committing the transaction failed: {exc}") from exc
        finally:
            self.in_transaction = False
        self.check_delivery()
        with self.offset_store._lock:  # our own writes, visible at once; the reader applies them again
            self.offset_store._apply(offsets)
        self.task.commit()

    def commit_offsets(self) -> bool:
        self.commit_transaction()
        return True

    def close(self) -> None:
        try:
            if self.failed is None:
                self.commit_transaction()
            elif self.in_transaction and self.producer is not None:
                try:
                    self.producer.abort_transaction(TRANSACTION_TIMEOUT_S)
                except confluent_kafka.KafkaException:
                    log.warning("%s: abort failed; the transaction times out on the broker", self.id)
        finally:
            self.producer = None
