"""Error handling for converters and transforms (KIP-298): retries, `errors.tolerance`, log and DLQ reporters.

`RetryWithToleranceOperator.execute` runs one stage of one record. A RetriableException is retried with
exponential backoff (300 ms doubling, capped by `errors.retry.delay.max.ms`) until `errors.retry.timeout`
(-1: forever); any other failure, or one that outlives the retries, is reported. With `errors.tolerance=none`
the task then fails ("Tolerance exceeded in error handler"); with `all` the record is skipped.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from moldau.connect.api.errors import ConnectException, RetriableException

log = logging.getLogger(__name__)
T = TypeVar("T")
INITIAL_BACKOFF_MS = 300


class Stage(enum.Enum):
    KEY_CONVERTER = "KEY_CONVERTER"
    VALUE_CONVERTER = "VALUE_CONVERTER"
    HEADER_CONVERTER = "HEADER_CONVERTER"
    TRANSFORMATION = "TRANSFORMATION"
    TASK_PUT = "TASK_PUT"
    TASK_POLL = "TASK_POLL"
    KAFKA_PRODUCE = "KAFKA_PRODUCE"
    KAFKA_CONSUME = "KAFKA_CONSUME"


@dataclass(slots=True)
class ConsumedRecord:
    """The raw Kafka record a sink task consumed: what the DLQ gets back unchanged."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int | None = None


@dataclass(slots=True)
class ProcessingContext:
    stage: Stage
    executing_class: str
    error: BaseException
    consumed: ConsumedRecord | None = None
    source_record: Any = None


Reporter = Callable[[ProcessingContext], None]


class ToleranceExceeded(ConnectException):
    pass


class _Failed:
    def __repr__(self) -> str:
        return "FAILED"


FAILED: Any = _Failed()


class RetryWithToleranceOperator:
    def __init__(self, retry_timeout_ms: int = 0, retry_delay_max_ms: int = 60000, tolerance: str = "none",
                 reporters: list[Reporter] | None = None, stopping: threading.Event | None = None) -> None:
        self.retry_timeout_ms = retry_timeout_ms
        self.retry_delay_max_ms = retry_delay_max_ms
        self.tolerate_all = tolerance == "all"
        self.reporters = reporters or []
        self.stopping = stopping or threading.Event()
        self.total_errors = 0

    @classmethod
    def from_config(cls, config: dict[str, Any], reporters: list[Reporter],
                    stopping: threading.Event) -> RetryWithToleranceOperator:
        return cls(int(config.get("errors.retry.timeout", 0)), int(config.get("errors.retry.delay.max.ms", 60000)),
                   str(config.get("errors.tolerance", "none")).lower(), reporters, stopping)

    def execute(self, operation: Callable[[], T], stage: Stage, executing_class: str,
                consumed: ConsumedRecord | None = None, source_record: Any = None) -> T:
        """The operation's result, or FAILED when the failure is tolerated; raises ToleranceExceeded."""
        deadline = time.monotonic() + self.retry_timeout_ms / 1000
        backoff_ms = INITIAL_BACKOFF_MS
        while True:
            try:
                return operation()
            except RetriableException as exc:
                forever = self.retry_timeout_ms < 0
                remaining_ms = (deadline - time.monotonic()) * 1000
                if self.stopping.is_set() or (not forever and remaining_ms <= 0):
                    return self._failed(ProcessingContext(stage, executing_class, exc, consumed, source_record))
                wait_ms = min(backoff_ms, self.retry_delay_max_ms, remaining_ms if not forever else backoff_ms)
                log.debug("retrying %s in %s after %r", stage.value, executing_class, exc)
                self.stopping.wait(max(wait_ms, 0) / 1000)
                backoff_ms *= 2
            except Exception as exc:  # noqa: BLE001 - every converter/transform failure is reported, then judged
                return self._failed(ProcessingContext(stage, executing_class, exc, consumed, source_record))

    def _failed(self, context: ProcessingContext) -> Any:
        self.total_errors += 1
        for reporter in self.reporters:
            try:
                reporter(context)
            except Exception:  # a broken reporter must not hide the original error
                log.exception("error reporter failed")
        if not self.tolerate_all:
            raise ToleranceExceeded("Tolerance exceeded in error handler") from context.error
        return FAILED


def log_reporter(connector: str, task_id: int, include_messages: bool) -> Reporter:
    """`errors.log.enable`: one log line per failed record (LogReporter)."""

    def report(context: ProcessingContext) -> None:
        where = ""
        if context.consumed is not None:
            where = (f" consumed from topic '{context.consumed.topic}', partition {context.consumed.partition}, "
                     f"offset {context.consumed.offset}")
            if include_messages:
                where += f", key {context.consumed.key!r}, value {context.consumed.value!r}"
        log.error("Error encountered in task %s-%d. Executing stage '%s' with class '%s'%s: %r", connector, task_id,
                  context.stage.value, context.executing_class, where, context.error)

    return report


# DeadLetterQueueReporter's header names (KIP-298).
HEADER_PREFIX = "__connect.errors."


def dlq_headers(context: ProcessingContext, connector: str, task_id: int) -> list[tuple[str, bytes]]:
    consumed = context.consumed
    assert consumed is not None
    cause = context.error  # Kafka reports the exception thrown by the stage, with its full trace
    values = {
        "topic": consumed.topic, "partition": str(consumed.partition), "offset": str(consumed.offset),
        "connector.name": connector, "task.id": str(task_id), "stage": context.stage.value,
        "class.name": context.executing_class,
        "exception.class.name": f"{type(cause).__module__}.{type(cause).__qualname__}",
        "exception.message": str(cause),
        "exception.stacktrace": "".join(traceback.format_exception(cause)),
    }
    return [(HEADER_PREFIX + name, value.encode()) for name, value in values.items()]


def dlq_reporter(producer: Any, topic: str, connector: str, task_id: int, context_headers: bool) -> Reporter:
    """`errors.deadletterqueue.topic.name`: the consumed record, unchanged, to the DLQ (sink connectors only)."""

    def report(context: ProcessingContext) -> None:
        consumed = context.consumed
        if consumed is None:
            return
        headers = list(consumed.headers)
        if context_headers:
            headers += dlq_headers(context, connector, task_id)
        producer.produce(topic, key=consumed.key, value=consumed.value, headers=headers)
        producer.poll(0)

    return report
