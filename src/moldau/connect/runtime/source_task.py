"""WorkerSourceTask: poll a SourceTask, transform, convert, produce, and commit source offsets.

At-least-once (Kafka's default): offsets of polled records are written to the offset store only after
the producer has flushed them (every `offset.flush.interval.ms`, and on stop), so a crash re-polls from the
last committed offset. Exactly-once (KIP-618) is `ExactlyOnceWorkerSourceTask` in `eos_source_task`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import confluent_kafka

from moldau.connect.api.connector import OffsetStorageReader, SourceTask, SourceTaskContext
from moldau.connect.api.errors import ConnectException, RetriableException
from moldau.connect.api.records import SourceRecord
from moldau.connect.runtime.errors import FAILED, Stage
from moldau.connect.runtime.topic_creation import TopicCreator
from moldau.connect.runtime.worker_task import ConnectorTaskId, StatusListener, TaskPlumbing, WorkerTask
from moldau.connect.storage.offsets import OffsetBackingStore, offset_key

log = logging.getLogger(__name__)
RETRY_BACKOFF_S = 0.1


class WorkerSourceTask(WorkerTask):
    def __init__(self, task_id: ConnectorTaskId, task: SourceTask, plumbing: TaskPlumbing,
                 listener: StatusListener, producer_config: dict[str, Any], offset_store: OffsetBackingStore,
                 flush_interval_ms: int, flush_timeout_ms: int, start_paused: bool = False) -> None:
        super().__init__(task_id, plumbing, listener, start_paused)
        self.task = task
        self.producer_config = producer_config
        self.offset_store = offset_store
        self.flush_interval_s = flush_interval_ms / 1000
        self.flush_timeout_s = flush_timeout_ms / 1000
        self.producer: confluent_kafka.Producer | None = None
        self.pending_offsets: dict[str, Any] = {}
        self.delivery_error: confluent_kafka.KafkaError | None = None
        self.records_sent = 0
        self.topic_creator: TopicCreator | None = None  # KIP-158, set by the worker when the connector asks

    def initialize_and_start(self) -> None:
        self.producer = self.create_producer()
        reader = OffsetStorageReader(lambda partition: self.offset_store.get(self.id.connector, partition))
        self.task.initialize(SourceTaskContext(self.plumbing.task_config, reader))
        self.task.start(self.plumbing.task_config)

    def create_producer(self) -> confluent_kafka.Producer:
        settings = {"acks": "all", "enable.idempotence": True, "linger.ms": 5,
                    "client.id": f"connector-producer-{self.id}", **self.producer_config}
        return confluent_kafka.Producer(settings)

    def execute(self) -> None:
        last_commit = time.monotonic()
        while not self.stopping.is_set():
            if self.paused and not self.wait_while_paused():
                break
            records = self.poll()
            if records:
                self.send_records(records)
            assert self.producer is not None
            self.producer.poll(0)
            self.check_delivery()
            if time.monotonic() - last_commit >= self.flush_interval_s:
                self.commit_offsets()
                last_commit = time.monotonic()

    def poll(self) -> list[SourceRecord] | None:
        try:
            return self.task.poll()
        except RetriableException as exc:
            log.warning("%s: retriable error from poll(), polling again: %r", self.id, exc)
            self.stopping.wait(RETRY_BACKOFF_S)
            return None

    def convert(self, record: SourceRecord) -> tuple[str, Any, Any, list[tuple[str, bytes | None]]] | None:
        """Transforms then converters, under the error-tolerance operator; None if the record is dropped."""
        retry, p = self.plumbing.retry, self.plumbing
        transformed = retry.execute(lambda: p.chain.apply(record), Stage.TRANSFORMATION, "TransformationChain",
                                    source_record=record)
        if transformed is None or transformed is FAILED:
            return None
        topic = transformed.topic
        key = retry.execute(lambda: p.key_converter.from_connect_data(topic, transformed.key_schema,
                                                                      transformed.key),
                            Stage.KEY_CONVERTER, type(p.key_converter).__name__, source_record=record)
        value = retry.execute(lambda: p.value_converter.from_connect_data(topic, transformed.value_schema,
                                                                          transformed.value),
                              Stage.VALUE_CONVERTER, type(p.value_converter).__name__, source_record=record)
        headers = retry.execute(lambda: [(h.key, p.header_converter.from_connect_header(topic, h.key, h.schema,
                                                                                         h.value))
                                         for h in transformed.headers],
                                Stage.HEADER_CONVERTER, type(p.header_converter).__name__, source_record=record)
        if FAILED in (key, value, headers):
            return None
        return topic, transformed, (key, value), headers

    def send_records(self, records: list[SourceRecord]) -> None:
        assert self.producer is not None
        for record in records:
            converted = self.convert(record)
            if converted is not None:
                topic, transformed, (key, value), headers = converted
                self.plumbing.track_topic(topic)
                if self.topic_creator is not None:
                    self.topic_creator.maybe_create(topic)  # before the first record to it
                self.produce(topic, transformed, key, value, headers, record)
            else:
                self.task.commit_record(record, None)
            if record.source_partition is not None:
                self.pending_offsets[offset_key(self.id.connector, record.source_partition)] = record.source_offset

    def produce(self, topic: str, transformed: Any, key: Any, value: Any, headers: Any,
                original: SourceRecord) -> None:
        assert self.producer is not None

        def delivered(err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
            if err is not None:
                self.delivery_error = err
            else:
                self.task.commit_record(original, (msg.topic(), msg.partition(), msg.offset()))

        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": delivered}
        if headers:
            kwargs["headers"] = headers
        if transformed.kafka_partition is not None:
            kwargs["partition"] = transformed.kafka_partition
        if transformed.timestamp is not None:
            kwargs["timestamp"] = transformed.timestamp
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                break
            except BufferError:  # librdkafka's queue is full: serve delivery reports, then retry
                self.producer.poll(0.1)
        self.records_sent += 1

    def check_delivery(self) -> None:
        if self.delivery_error is not None:
            raise ConnectException(f"Unrecoverable exception from producer send callback: {self.delivery_error}")

    def commit_offsets(self) -> bool:
        """Flush the producer, then store the offsets of everything polled so far (at-least-once)."""
        if self.producer is None:
            return False
        remaining = self.producer.flush(self.flush_timeout_s)
        self.check_delivery()
        if remaining:
            log.warning("%s: %d records still in flight after offset.flush.timeout.ms; offsets not committed",
                        self.id, remaining)
            return False
        if self.pending_offsets:
            offsets, self.pending_offsets = self.pending_offsets, {}
            self.offset_store.put(self.id.connector, offsets)
        self.task.commit()
        return True

    def on_stop_requested(self) -> None:
        # Kafka's SourceTask.stop() contract: called from another thread, it only interrupts poll().
        try:
            self.task.stop()
        except Exception:
            log.exception("%s: stop() failed", self.id)

    def close(self) -> None:
        try:
            if self.failed is None:
                self.commit_offsets()
        finally:
            if self.producer is not None:
                self.producer.flush(self.flush_timeout_s)
                self.producer = None  # librdkafka's client is destroyed with its last reference
