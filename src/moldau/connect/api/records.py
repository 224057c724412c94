"""Records that flow through Connect (ConnectRecord, SourceRecord, SinkRecord)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self

from moldau.connect.api.data import Schema


class TopicPartition(NamedTuple):
    topic: str
    partition: int


@dataclass(slots=True, frozen=True)
class Header:
    key: str
    value: Any
    schema: Schema | None = None


@dataclass(slots=True)
class ConnectRecord:
    """What a transform sees; `new_record(...)` returns a copy with some fields replaced."""

    topic: str
    kafka_partition: int | None
    key_schema: Schema | None
    key: Any
    value_schema: Schema | None
    value: Any
    timestamp: int | None = None  # milliseconds since the epoch
    headers: list[Header] = field(default_factory=list)

    def new_record(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


@dataclass(slots=True)
class SourceRecord(ConnectRecord):
    """A record a SourceTask polled, with the position in the source system it came from.

    `source_partition` and `source_offset` are small JSON-able dicts (Kafka's sourcePartition /
    sourceOffset); the framework stores the latest offset per partition once the record is written.
    """

    source_partition: dict[str, Any] | None = None
    source_offset: dict[str, Any] | None = None


@dataclass(slots=True)
class SinkRecord(ConnectRecord):
    kafka_offset: int = -1
    timestamp_type: str = "CreateTime"
    # The record as it was consumed, before transforms: Kafka's originalTopic()/originalKafkaPartition().
    original_topic: str | None = None
    original_kafka_partition: int | None = None
    original_kafka_offset: int | None = None
