"""KafkaBasedLog: a compacted topic replayed into memory by a reader thread, with read-to-end.

Every worker reads the whole topic from the beginning on start and then follows it; writes go through the
topic, so all workers fold the same records in the same order (Kafka's KafkaBasedLog).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.connect.api.errors import ConnectException

log = logging.getLogger(__name__)
Callback = Callable[[bytes | None, bytes | None], None]
READ_TO_END_TIMEOUT_S = 30.0


def ensure_topic(admin_config: dict[str, Any], topic: str, partitions: int, replication: int) -> None:
    """Create the internal topic, compacted, if missing (TopicAdmin.createOrFindTopics)."""
    admin = AdminClient(admin_config)
    if topic in admin.list_topics(timeout=10).topics:
        return
    new = NewTopic(topic, partitions, replication, config={"cleanup.policy": "compact"})
    try:
        admin.create_topics([new])[topic].result(30)
    except confluent_kafka.KafkaException as exc:
        if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
            raise ConnectException(f"Unable to create internal topic {topic} with {partitions} partition(s) and "
                                   f"replication factor {replication}: {exc}") from exc


class KafkaBasedLog:
    def __init__(self, topic: str, client_config: dict[str, Any], callback: Callback,
                 producer_config: dict[str, Any] | None = None, read_committed: bool = False) -> None:
        self.topic = topic
        self.client_config = client_config
        self.callback = callback
        self.producer_config = producer_config
        self.read_committed = read_committed
        self._cond = threading.Condition()
        self._positions: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name=f"kafka-log-{topic}", daemon=True)
        self.producer: confluent_kafka.Producer | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        consumer_settings = {**self.client_config, "group.id": f"connect-log-{self.topic}",
                             "enable.auto.commit": False, "enable.partition.eof": False,
                             "isolation.level": "read_committed" if self.read_committed else "read_uncommitted"}
        self._consumer = confluent_kafka.Consumer(consumer_settings)
        self._watermarks = confluent_kafka.Consumer({**consumer_settings, "group.id": f"connect-log-end-{self.topic}"})
        metadata = self._consumer.list_topics(self.topic, timeout=10).topics[self.topic]
        self.partitions = sorted(metadata.partitions)
        if not self.partitions:
            raise ConnectException(f"Internal topic {self.topic} has no partitions")
        self._consumer.assign([confluent_kafka.TopicPartition(self.topic, p, confluent_kafka.OFFSET_BEGINNING)
                               for p in self.partitions])
        self.producer = confluent_kafka.Producer({**self.client_config, "acks": "all", "enable.idempotence": True,
                                                  "linger.ms": 0, **(self.producer_config or {})})
        self._thread.start()
        self.read_to_end()

    def _read_loop(self) -> None:
        assignment = [confluent_kafka.TopicPartition(self.topic, p) for p in self.partitions]
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(500, 0.1)
                for message in messages:
                    if message.error() is None:
                        self.callback(message.key(), message.value())
                positions = self._consumer.position(assignment)
            except Exception as exc:
                log.exception("Reading internal topic %s failed", self.topic)
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                for tp in positions:
                    if tp.offset >= 0:
                        self._positions[tp.partition] = tp.offset
                self._cond.notify_all()

    def end_offsets(self) -> dict[int, int]:
        ends = {}
        for p in self.partitions:
            _, high = self._watermarks.get_watermark_offsets(confluent_kafka.TopicPartition(self.topic, p),
                                                             timeout=10, cached=False)
            ends[p] = high
        return ends

    def read_to_end(self, timeout_s: float = READ_TO_END_TIMEOUT_S) -> None:
        """Block until every record written before this call has been folded in."""
        ends = self.end_offsets()
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._error is not None:
                    raise ConnectException(f"Reading internal topic {self.topic} failed: {self._error}")
                if all(ends[p] <= 0 or self._positions.get(p, 0) >= ends[p] for p in ends):
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ConnectException(f"Timed out reading internal topic {self.topic} to its end {ends}")
                self._cond.wait(min(remaining, 0.2))

    def send(self, key: bytes, value: bytes | None, flush: bool = True) -> None:
        assert self.producer is not None
        errors: list[confluent_kafka.KafkaError] = []

        def delivered(err: confluent_kafka.KafkaError | None, msg: Any) -> None:
            if err is not None:
                errors.append(err)

        self.producer.produce(self.topic, key=key, value=value, on_delivery=delivered)
        if flush:
            self.flush()
            if errors:
                raise ConnectException(f"Write to internal topic {self.topic} failed: {errors[0]}")
        else:
            self.producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        if self.producer is not None and self.producer.flush(timeout_s):
            raise ConnectException(f"Write to internal topic {self.topic} timed out")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self.producer is not None:
            self.producer.flush(10)
        for consumer in (getattr(self, "_consumer", None), getattr(self, "_watermarks", None)):
            if consumer is not None:
                consumer.close()
