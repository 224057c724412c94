"""WorkerSinkTask: consume, convert, transform, `put`, and commit consumer offsets after `pre_commit`.

The consumer group is `connect-<connector>` (Kafka's SinkUtils.consumerGroupId), with auto-commit off:
offsets are committed only for what the task said is durable (`pre_commit`), every
`offset.flush.interval.ms`, on partition revocation, and on stop. Records are delivered at least once;
a sink that stores offsets with its writes gets exactly once (`SinkTaskContext.offset` on open).
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import confluent_kafka

from moldau.connect.api.connector import SinkTask, SinkTaskContext
from moldau.connect.api.errors import RetriableException
from moldau.connect.api.records import Header, SinkRecord, TopicPartition
from moldau.connect.runtime.errors import FAILED, ConsumedRecord, Stage
from moldau.connect.runtime.worker_task import ConnectorTaskId, StatusListener, TaskPlumbing, WorkerTask

log = logging.getLogger(__name__)
MAX_POLL_RECORDS = 500  # the Java consumer's max.poll.records default
POLL_TIMEOUT_S = 0.5
_TIMESTAMP_TYPES = {confluent_kafka.TIMESTAMP_CREATE_TIME: "CreateTime",
                    confluent_kafka.TIMESTAMP_LOG_APPEND_TIME: "LogAppendTime"}


def _as_bytes(data: Any) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def consumer_group_id(connector: str) -> str:
    return f"connect-{connector}"


class WorkerSinkTask(WorkerTask):
    def __init__(self, task_id: ConnectorTaskId, task: SinkTask, plumbing: TaskPlumbing, listener: StatusListener,
                 consumer_config: dict[str, Any], flush_interval_ms: int, start_paused: bool = False) -> None:
        super().__init__(task_id, plumbing, listener, start_paused)
        self.task = task
        # max.poll.records is the Java consumer's cap on one poll, so on one put(); librdkafka's consume() takes
        # the count as an argument instead, so the loop applies the setting itself.
        self.consumer_config = dict(consumer_config)
        self.max_poll_records = int(self.consumer_config.pop("max.poll.records", MAX_POLL_RECORDS))
        self.flush_interval_s = flush_interval_ms / 1000
        self.consumer: confluent_kafka.Consumer | None = None
        self.context = SinkTaskContext(plumbing.task_config)
        self.current_offsets: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.records_put = 0
        self._consumer_paused = False
        self._closed = False

    def initialize_and_start(self) -> None:
        settings = {"group.id": consumer_group_id(self.id.connector), "enable.auto.commit": False,
                    "auto.offset.reset": "earliest", "client.id": f"connector-consumer-{self.id}",
                    **self.consumer_config}
        self.consumer = confluent_kafka.Consumer(settings)
        self.task.initialize(self.context)
        self.task.start(self.plumbing.task_config)
        cfg = self.plumbing.connector_config
        regex = str(cfg.get("topics.regex") or "").strip()
        topics = [f"^{regex}"] if regex else [t.strip() for t in str(cfg.get("topics", "")).split(",") if t.strip()]
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    # -- rebalance callbacks (run inside consume(), on the task thread) -----------------------------

    def _on_assign(self, consumer: confluent_kafka.Consumer, partitions: list[confluent_kafka.TopicPartition]) -> None:
        assigned = [TopicPartition(p.topic, p.partition) for p in partitions]
        self.context.assignment.update(assigned)
        self.task.open(assigned)
        self._apply_requested_offsets()
        if self.paused:
            consumer.pause(partitions)

    def _on_revoke(self, consumer: confluent_kafka.Consumer, partitions: list[confluent_kafka.TopicPartition]) -> None:
        if self._closed:  # consumer.close() revokes everything after the task already stopped
            return
        revoked = [TopicPartition(p.topic, p.partition) for p in partitions]
        self.commit_offsets()
        self.task.close(revoked)
        for tp in revoked:
            self.context.assignment.discard(tp)
            self.current_offsets.pop(tp, None)
            self.committed.pop(tp, None)

    def _apply_requested_offsets(self) -> None:
        """SinkTaskContext.offset(): rewind/advance positions the task asked for."""
        if not self.context.requested_offsets or self.consumer is None:
            return
        requested, self.context.requested_offsets = self.context.requested_offsets, {}
        for tp, offset in requested.items():
            if tp in self.context.assignment:
                try:
                    self.consumer.seek(confluent_kafka.TopicPartition(tp.topic, tp.partition, offset))
                except confluent_kafka.KafkaException:
                    self.context.requested_offsets[tp] = offset  # not yet fetchable: retry next round
                    continue
                self.current_offsets[tp] = offset

    # -- the loop ------------------------------------------------------------------------------------

    def execute(self) -> None:
        assert self.consumer is not None
        last_commit = time.monotonic()
        while not self.stopping.is_set():
            self._sync_pause()
            messages = self.consumer.consume(self.max_poll_records, POLL_TIMEOUT_S)
            usable = [m for m in messages if m.error() is None]
            if len(usable) != len(messages):
                for message in messages:
                    self._usable(message)  # logs (or raises) what went wrong
            records, offsets = self.convert_messages(usable)
            # Kafka's deliverMessages: the batch's offsets count as consumed only once put() took it. A stop
            # that comes before (or during retries of) put() must not commit them on close.
            if (records or messages) and self.deliver(records):
                self.current_offsets.update(offsets)
            self._apply_requested_offsets()
            if self.context.commit_requested or time.monotonic() - last_commit >= self.flush_interval_s:
                self.context.commit_requested = False
                self.commit_offsets()
                last_commit = time.monotonic()

    def _sync_pause(self) -> None:
        assert self.consumer is not None
        if self.paused != self._consumer_paused:
            assignment = self.consumer.assignment()
            (self.consumer.pause if self.paused else self.consumer.resume)(assignment)
            self._consumer_paused = self.paused

    def _usable(self, message: confluent_kafka.Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != confluent_kafka.KafkaError._PARTITION_EOF:
            log.warning("%s: consumer error %s", self.id, error)
            if error.fatal():
                raise confluent_kafka.KafkaException(error)
        return False

    def convert_messages(self, messages: list[confluent_kafka.Message]
                         ) -> tuple[list[SinkRecord], dict[TopicPartition, int]]:
        """Each record through the lean path (`_convert_fast`); a record on which any stage raises goes again
        through `convert`, where the stages run under the retry / tolerance / DLQ operator one by one.
        Converters and transforms are functions of the record, so running a stage twice changes nothing."""
        records = []
        offsets: dict[TopicPartition, int] = {}
        seen_topics: set[str] = set()
        fast = self._convert_fast
        for message in messages:
            # Never None on a message without error (the only ones here).
            topic, partition, offset = cast(str, message.topic()), cast(int, message.partition()), \
                cast(int, message.offset())
            offsets[TopicPartition(topic, partition)] = offset + 1
            if topic not in seen_topics:  # once per batch, not per record
                seen_topics.add(topic)
                self.plumbing.track_topic(topic)
            try:
                record = fast(message, topic, partition, offset)
            except Exception:  # noqa: BLE001 - judged by the slow path, with Kafka's error handling
                record = self.convert(message)
            if record is not None:
                records.append(record)
        return records, offsets

    def _convert_fast(self, message: confluent_kafka.Message, topic: str, partition: int,
                      offset: int) -> SinkRecord | None:
        p = self.plumbing
        key_bytes, value_bytes = message.key(), message.value()
        if key_bytes.__class__ is str:
            key_bytes = key_bytes.encode()
        if value_bytes.__class__ is str:
            value_bytes = value_bytes.encode()
        key = p.key_converter.to_connect_data(topic, key_bytes)
        value = p.value_converter.to_connect_data(topic, value_bytes)
        raw_headers = message.headers()
        headers = []
        if raw_headers:
            to_header = p.header_converter.to_connect_header
            for header in raw_headers:
                name = str(header[0])
                converted = to_header(topic, name, _as_bytes(header[1]))
                headers.append(Header(name, converted.value, converted.schema))
        ts_type, ts = message.timestamp()
        record = SinkRecord(topic, partition, key.schema, key.value, value.schema, value.value,
                            ts if ts_type != confluent_kafka.TIMESTAMP_NOT_AVAILABLE else None, headers, offset,
                            _TIMESTAMP_TYPES.get(ts_type, "NoTimestampType"), topic, partition, offset)
        return p.chain.apply(record) if p.chain.stages else record  # type: ignore[return-value]

    def convert(self, message: confluent_kafka.Message) -> SinkRecord | None:
        p, retry = self.plumbing, self.plumbing.retry
        topic, partition, offset = str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)
        ts_type, ts = message.timestamp()
        raw_headers: list[tuple[str, bytes | None]] = [(str(h[0]), _as_bytes(h[1])) for h in message.headers() or []]
        key_bytes, value_bytes = _as_bytes(message.key()), _as_bytes(message.value())
        consumed = ConsumedRecord(topic, partition, offset, key_bytes, value_bytes, raw_headers,
                                  ts if ts_type != confluent_kafka.TIMESTAMP_NOT_AVAILABLE else None)
        key = retry.execute(lambda: p.key_converter.to_connect_data(topic, key_bytes), Stage.KEY_CONVERTER,
                            type(p.key_converter).__name__, consumed)
        if key is FAILED:
            return None
        value = retry.execute(lambda: p.value_converter.to_connect_data(topic, value_bytes),
                              Stage.VALUE_CONVERTER, type(p.value_converter).__name__, consumed)
        if value is FAILED:
            return None
        headers = retry.execute(lambda: [Header(k, (sv := p.header_converter.to_connect_header(topic, k, v)).value,
                                                sv.schema) for k, v in raw_headers],
                                Stage.HEADER_CONVERTER, type(p.header_converter).__name__, consumed)
        if headers is FAILED:
            return None
        record = SinkRecord(topic, partition, key.schema, key.value, value.schema, value.value,
                            consumed.timestamp, headers, kafka_offset=offset,
                            timestamp_type=_TIMESTAMP_TYPES.get(ts_type, "NoTimestampType"),
                            original_topic=topic, original_kafka_partition=partition, original_kafka_offset=offset)
        transformed = retry.execute(lambda: p.chain.apply(record), Stage.TRANSFORMATION, "TransformationChain",
                                    consumed)
        return None if transformed is FAILED else transformed  # type: ignore[return-value]

    def deliver(self, records: list[SinkRecord]) -> bool:
        """SinkTask.put, retried on RetriableException (Kafka pauses the consumer and redelivers the batch).
        False if the task stopped before put() took the batch."""
        while not self.stopping.is_set():
            try:
                self.task.put(records)
                self.records_put += len(records)
                return True
            except RetriableException as exc:
                backoff_ms = self.context.requested_timeout_ms or 1000
                log.warning("%s: retriable error from put(), redelivering in %d ms: %r", self.id, backoff_ms, exc)
                self.stopping.wait(backoff_ms / 1000)
        return False

    def commit_offsets(self) -> None:
        if self.consumer is None or not self.current_offsets:
            return
        offsets = self.task.pre_commit(dict(self.current_offsets))
        to_commit = {tp: off for tp, off in offsets.items()
                     if tp in self.context.assignment and self.committed.get(tp) != off}
        if not to_commit:
            return
        try:
            self.consumer.commit(offsets=[confluent_kafka.TopicPartition(tp.topic, tp.partition, off)
                                          for tp, off in to_commit.items()], asynchronous=False)
            self.committed.update(to_commit)
        except confluent_kafka.KafkaException as exc:
            log.warning("%s: offset commit failed, will retry: %s", self.id, exc)

    def close(self) -> None:
        try:
            if self.failed is None and self.consumer is not None:
                self.commit_offsets()
                self.task.close(sorted(self.context.assignment))
        finally:
            self._closed = True
            try:
                self.task.stop()
            finally:
                if self.consumer is not None:
                    self.consumer.close()
