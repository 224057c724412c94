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
        # SourceTask.commit_record is a no-op unless the task overrides it: then the producer need not call
        # back into Python for every record, only for failed ones (librdkafka's delivery.report.only.error).
        self.wants_commit_record = type(task).commit_record is not SourceTask.commit_record
        self._partition_keys: tuple[Any, str] | None = None  # the last source partition and its offset key

    def initialize_and_start(self) -> None:
        self.producer = self.create_producer()
        reader = OffsetStorageReader(lambda partition: self.offset_store.get(self.id.connector, partition))
        self.task.initialize(SourceTaskContext(self.plumbing.task_config, reader))
        self.task.start(self.plumbing.task_config)

    def create_producer(self) -> confluent_kafka.Producer:
        settings = {"acks": "all", "enable.idempotence": True, "linger.ms": 5,
                    "client.id": f"connector-producer-{self.id}", **self.producer_config, **self.delivery_settings()}
        return confluent_kafka.Producer(settings)

    def delivery_settings(self) -> dict[str, Any]:
        if self.wants_commit_record:
            return {}
        return {"delivery.report.only.error": True, "on_delivery": self._delivery_failed}

    def _delivery_failed(self, err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
        if err is not None:
            self.delivery_error = err

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
        """Each record through the lean path (`_send_fast`); a record on which a transform or converter raises
        goes again through `convert`, where the stages run under the retry / tolerance operator one by one."""
        assert self.producer is not None
        pending = self.pending_offsets
        connector = self.id.connector
        seen_topics: set[str] = set()
        for record in records:
            try:
                converted = self._convert_fast(record)
            except Exception:  # noqa: BLE001 - judged by the slow path, with Kafka's error handling
                converted = self.convert(record)
            if converted is not None:
                topic, transformed, (key, value), headers = converted
                if topic not in seen_topics:  # once per batch, not per record
                    seen_topics.add(topic)
                    self.plumbing.track_topic(topic)
                    if self.topic_creator is not None:
                        self.topic_creator.maybe_create(topic)  # before the first record to it
                self.produce(topic, transformed, key, value, headers, record)
            else:
                self.task.commit_record(record, None)
            partition = record.source_partition
            if partition is not None:
                last = self._partition_keys  # records of one poll mostly share their source partition
                if last is None or last[0] != partition:  # a copy: a task may reuse and change its dict
                    last = self._partition_keys = (dict(partition), offset_key(connector, partition))
                pending[last[1]] = record.source_offset

    def _convert_fast(self, record: SourceRecord) -> tuple[str, Any, Any, list[tuple[str, bytes | None]]] | None:
        p = self.plumbing
        transformed = p.chain.apply(record) if p.chain.stages else record
        if transformed is None:
            return None
        topic = transformed.topic
        key = p.key_converter.from_connect_data(topic, transformed.key_schema, transformed.key)
        value = p.value_converter.from_connect_data(topic, transformed.value_schema, transformed.value)
        headers = [(h.key, p.header_converter.from_connect_header(topic, h.key, h.schema, h.value))
                   for h in transformed.headers] if transformed.headers else []
        return topic, transformed, (key, value), headers

    def produce(self, topic: str, transformed: Any, key: Any, value: Any, headers: Any,
                original: SourceRecord) -> None:
        assert self.producer is not None
        kwargs: dict[str, Any] = {"key": key, "value": value}
        if self.wants_commit_record:
            def delivered(err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
                if err is not None:
                    self.delivery_error = err
                else:
                    self.task.commit_record(original, (msg.topic(), msg.partition(), msg.offset()))

            kwargs["on_delivery"] = delivered
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
