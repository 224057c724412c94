"""Connectors and tasks (org.apache.kafka.connect.connector / .source / .sink).

A connector splits a job into task configs; the worker runs each task on its own thread. A source task's
`poll()` returns SourceRecords; a sink task's `put()` receives SinkRecords. Everything else (Kafka
clients, converters, transforms, offsets, retries, the dead letter queue) is the worker's job.

    class MyTask(SourceTask):
        def start(self, props): ...
        def poll(self): return [SourceRecord(...)]
        def stop(self): ...
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from moldau.connect.api.config import ConfigDef, ConfigValue
from moldau.connect.api.records import SinkRecord, SourceRecord, TopicPartition

VERSION = "0.1.0"


class ConnectorContext:
    """What a connector can ask of the worker (org.apache.kafka.connect.connector.ConnectorContext)."""

    def __init__(self, request_reconfiguration: Callable[[], None] = lambda: None,
                 raise_error: Callable[[BaseException], None] = lambda exc: None) -> None:
        self._request = request_reconfiguration
        self._raise = raise_error

    def request_task_reconfiguration(self) -> None:
        self._request()

    def raise_error(self, exc: BaseException) -> None:
        self._raise(exc)


class ExactlyOnceSupport(enum.Enum):
    """KIP-618: what a source connector says about exactly-once delivery."""

    SUPPORTED = "SUPPORTED"
    UNSUPPORTED = "UNSUPPORTED"


class Connector:
    context: ConnectorContext

    def initialize(self, context: ConnectorContext) -> None:
        self.context = context

    def version(self) -> str:
        return VERSION

    def start(self, props: dict[str, str]) -> None:
        raise NotImplementedError

    def task_class(self) -> type[Task]:
        raise NotImplementedError

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        raise NotImplementedError

    def stop(self) -> None:
        pass

    def config(self) -> ConfigDef:
        return ConfigDef()

    def validate(self, connector_configs: dict[str, str]) -> dict[str, ConfigValue]:
        """Per-key results; the default validates against `config()` like Kafka's Connector.validate."""
        return self.config().validate(connector_configs)

    def alter_offsets(self, connector_config: dict[str, str], offsets: dict[Any, Any]) -> bool:
        """KIP-875: return True if the connector accepts externally altered offsets."""
        return False


class SourceConnector(Connector):
    def exactly_once_support(self, connector_config: dict[str, str]) -> ExactlyOnceSupport | None:
        return None

    def can_define_transaction_boundaries(self, connector_config: dict[str, str]) -> bool:
        return False


class SinkConnector(Connector):
    TOPICS_CONFIG = "topics"


class Task:
    def version(self) -> str:
        return VERSION

    def start(self, props: dict[str, str]) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        pass


class OffsetStorageReader:
    """Reads committed source offsets (org.apache.kafka.connect.storage.OffsetStorageReader)."""

    def __init__(self, lookup: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        self._lookup = lookup

    def offset(self, partition: dict[str, Any]) -> dict[str, Any] | None:
        return self._lookup(partition)

    def offsets(self, partitions: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        return [(p, self._lookup(p)) for p in partitions]


class SourceTaskContext:
    def __init__(self, configs: dict[str, str], offset_storage_reader: OffsetStorageReader) -> None:
        self.configs = configs
        self.offset_storage_reader = offset_storage_reader


class SourceTask(Task):
    context: SourceTaskContext

    def initialize(self, context: SourceTaskContext) -> None:
        self.context = context

    def poll(self) -> list[SourceRecord] | None:
        """Records ready now, or None/[] when there are none; may block briefly (about a second)."""
        raise NotImplementedError

    def commit(self) -> None:
        """Offsets up to the last polled records were committed (Kafka's SourceTask.commit)."""

    def commit_record(self, record: SourceRecord, metadata: Any) -> None:
        """A record was acknowledged by Kafka (metadata: (topic, partition, offset)), or filtered (None)."""


class SinkTaskContext:
    """What a sink task can ask of the worker (org.apache.kafka.connect.sink.SinkTaskContext)."""

    def __init__(self, configs: dict[str, str]) -> None:
        self.configs = configs
        self.requested_offsets: dict[TopicPartition, int] = {}
        self.requested_timeout_ms: int | None = None
        self.commit_requested = False
        self.assignment: set[TopicPartition] = set()
        self.errant_record_reporter: Callable[[SinkRecord, BaseException], None] | None = None

    def offset(self, offsets: dict[TopicPartition, int]) -> None:
        """Reset consumer positions (e.g. to offsets the sink stored alongside its data)."""
        self.requested_offsets.update(offsets)

    def timeout(self, timeout_ms: int) -> None:
        self.requested_timeout_ms = timeout_ms

    def request_commit(self) -> None:
        self.commit_requested = True


class SinkTask(Task):
    context: SinkTaskContext

    def initialize(self, context: SinkTaskContext) -> None:
        self.context = context

    def put(self, records: list[SinkRecord]) -> None:
        raise NotImplementedError

    def flush(self, current_offsets: dict[TopicPartition, int]) -> None:
        """Make everything `put` so far durable; the worker commits `current_offsets` afterwards."""

    def pre_commit(self, current_offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """The offsets safe to commit (next offset to read per partition); default: flush, then all."""
        self.flush(current_offsets)
        return current_offsets

    def open(self, partitions: list[TopicPartition]) -> None:
        pass

    def close(self, partitions: list[TopicPartition]) -> None:
        pass
