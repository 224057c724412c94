"""The `_schemas` topic through a Kafka client: an idempotent producer for writes, and a reader thread
that folds every record into a `SchemaStore`.

confluent-kafka (librdkafka) is the client because the registry must run against any Kafka-compatible
cluster: it finds partition leaders, follows leader changes and retries idempotently, which Moldau's own small
client (one bootstrap broker, no metadata refresh) does not. Embedded in a broker it talks to that broker over
loopback like any other client, so the registry never imports broker internals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.registry.errors import StoreError, StoreTimeout
from moldau.registry.store import SchemaStore

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "_schemas"  # Confluent's kafkastore.topic
DEFAULT_REPLICATION_FACTOR = 3  # Confluent's kafkastore.topic.replication.factor, capped by the live brokers
DEFAULT_TIMEOUT_S = 30.0  # Confluent's kafkastore.timeout.ms is 500 ms; a loaded 2-core test machine needs more


class KafkaStore:
    """Owns the producer, the reader thread and the `SchemaStore` they keep up to date.

    Readers take `lock` around any query of `store`; the reader thread holds it while applying records.
    """

    def __init__(self, bootstrap_servers: str, topic: str = DEFAULT_TOPIC,
                 replication_factor: int = DEFAULT_REPLICATION_FACTOR, timeout_s: float = DEFAULT_TIMEOUT_S,
                 client_config: dict[str, Any] | None = None) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self.replication_factor = replication_factor
        self.store = SchemaStore()
        self.lock = threading.RLock()
        self._applied = threading.Condition(self.lock)
        # librdkafka's log lines go through Python logging rather than stderr.
        self._common = {"bootstrap.servers": bootstrap_servers, "logger": logging.getLogger("moldau.registry.kafka"),
                        **(client_config or {})}
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._offsets: Consumer | None = None
        self._reader: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the topic if needed, then read it to the end before returning."""
        self._ensure_topic()
        self._producer = Producer({
            **self._common, "client.id": "moldau-schema-registry",
            "enable.idempotence": True, "acks": "all", "linger.ms": 0,
            "message.timeout.ms": int(self.timeout_s * 1000),
        })
        self._consumer = Consumer({
            **self._common, "client.id": "moldau-schema-registry-reader", "group.id": "moldau-schema-registry",
            "enable.auto.commit": False, "fetch.error.backoff.ms": 50,
            # Never skip records: an out-of-range position (e.g. after DeleteRecords) restarts from the start.
            "auto.offset.reset": "earliest",
        })
        self._consumer.assign([TopicPartition(self.topic, 0, 0)])
        # End offsets come from a second client: librdkafka's offset query waits behind a consume() running
        # on the same handle in the reader thread.
        self._offsets = Consumer({
            **self._common, "client.id": "moldau-schema-registry-offsets", "group.id": "moldau-schema-registry",
            "enable.auto.commit": False,
        })
        self._reader = threading.Thread(target=self._read_forever, name="schema-registry-reader", daemon=True)
        self._reader.start()
        self.catch_up()

    def stop(self) -> None:
        self._stopping.set()
        if self._reader is not None:
            self._reader.join(self.timeout_s)
        for consumer in (self._consumer, self._offsets):
            if consumer is not None:
                consumer.close()
        if self._producer is not None:
            self._producer.flush(self.timeout_s)
        self._producer = self._consumer = self._offsets = None  # librdkafka handles close when collected

    def _ensure_topic(self) -> None:
        admin = AdminClient(self._common)
        metadata = admin.list_topics(timeout=self.timeout_s)
        existing = metadata.topics.get(self.topic)
        if existing is not None and existing.error is None:
            if len(existing.partitions) != 1:
                raise StoreError(f"The schemas topic {self.topic} has {len(existing.partitions)} partitions; "
                                 "it must have exactly 1 so that every instance reads one order")
            return
        replication = max(1, min(self.replication_factor, len(metadata.brokers)))
        future = admin.create_topics([NewTopic(self.topic, 1, replication,
                                               config={"cleanup.policy": "compact"})])[self.topic]
        try:
            future.result(self.timeout_s)
            log.info("created schemas topic %s (replication factor %d)", self.topic, replication)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StoreError(f"Could not create the schemas topic {self.topic}: {exc}") from None

    # -- reading ----------------------------------------------------------------------------------

    def _read_forever(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            try:
                # consume(n, timeout) waits for n messages or the timeout: poll for the first, drain the rest.
                first = self._consumer.poll(0.1)
                messages = [] if first is None else [first, *self._consumer.consume(num_messages=1000, timeout=0)]
            except (KafkaException, RuntimeError):
                if self._stopping.is_set():
                    return
                log.exception("reading %s failed; retrying", self.topic)
                time.sleep(0.1)
                continue
            if not messages:
                continue
            with self._applied:
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("reading %s: %s", self.topic, error)
                        continue
                    self.store.apply(message.key(), message.value(), message.offset() or 0)
                self._applied.notify_all()

    def wait_for(self, offset: int, timeout_s: float | None = None) -> None:
        """Block until the record at `offset` (or a later one) has been applied."""
        with self._applied:
            if not self._applied.wait_for(lambda: self.store.applied_offset >= offset,
                                          self.timeout_s if timeout_s is None else timeout_s):
                raise StoreTimeout(f"Timed out after {self.timeout_s}s waiting for {self.topic} offset {offset} "
                                   f"(read up to {self.store.applied_offset})")

    def catch_up(self) -> None:
        """Read to the current end of the topic (the high watermark when this is called)."""
        assert self._offsets is not None
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                _, high = self._offsets.get_watermark_offsets(
                    TopicPartition(self.topic, 0), timeout=max(0.1, deadline - time.monotonic()), cached=False)
                break
            except KafkaException as exc:
                # A restarting broker answers "unknown partition" until its logs are loaded: retry until the
                # store timeout, as Confluent's KafkaStore does within kafkastore.timeout.ms.
                if time.monotonic() >= deadline:
                    raise StoreError(f"Could not read the end offset of {self.topic}: {exc}") from None
                time.sleep(0.05)
        if high > 0:
            self.wait_for(high - 1)

    # -- writing ----------------------------------------------------------------------------------

    def append(self, records: Sequence[tuple[bytes, bytes | None]]) -> int:
        """Write records (acks=all) and wait until they are applied here; return the last one's offset."""
        assert self._producer is not None
        offsets: list[int] = []
        errors: list[KafkaError] = []

        def delivered(error: KafkaError | None, message: Any) -> None:
            if error is not None:
                errors.append(error)
            else:
                offsets.append(message.offset())

        for key, value in records:
            self._producer.produce(self.topic, key=key, value=value, partition=0, on_delivery=delivered)
        remaining = self._producer.flush(self.timeout_s)
        if errors or remaining or len(offsets) != len(records):
            raise StoreError(f"Error writing to {self.topic}: {errors[0] if errors else 'timed out'}")
        last = max(offsets)
        self.wait_for(last)
        return last
