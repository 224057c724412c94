"""FileStreamSourceConnector and FileStreamSinkConnector, Kafka's example connectors.

The source tails a file (or stdin) line by line; its source partition is `{"filename": file}` and its
offset `{"position": byte position after the line}`, as in Kafka, so a restarted task resumes where the
last committed record ended. The sink appends each record's value as one line.
"""

from __future__ import annotations

import sys
import threading
from typing import IO, Any

from moldau.connect.api import (
    ConfigDef,
    ExactlyOnceSupport,
    Importance,
    SinkConnector,
    SinkRecord,
    SinkTask,
    SourceConnector,
    SourceRecord,
    SourceTask,
    TopicPartition,
    Type,
)
from moldau.connect.api.config import Range, non_empty_string
from moldau.connect.api.data import OPTIONAL_STRING, plain

FILE_CONFIG, TOPIC_CONFIG, BATCH_SIZE_CONFIG = "file", "topic", "batch.size"
FILENAME_FIELD, POSITION_FIELD = "filename", "position"
POLL_WAIT_S = 1.0  # Kafka's task waits 1 s when the file has no new line


class FileStreamSourceConnector(SourceConnector):
    CONFIG_DEF = (ConfigDef()
                  .define(FILE_CONFIG, Type.STRING, None, importance=Importance.HIGH,
                          documentation="Source filename. If not specified, the standard input will be used")
                  .define(TOPIC_CONFIG, Type.STRING, validator=non_empty_string, importance=Importance.HIGH,
                          documentation="The topic to publish data to")
                  .define(BATCH_SIZE_CONFIG, Type.INT, 2000, validator=Range.at_least(1), importance=Importance.LOW,
                          documentation="The maximum number of records the source task can read from the file "
                                        "each time it is polled"))

    def start(self, props: dict[str, str]) -> None:
        self.props = dict(props)
        self.CONFIG_DEF.parse(props)

    def task_class(self) -> type[SourceTask]:
        return FileStreamSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [dict(self.props)]  # one file, one reader

    def config(self) -> ConfigDef:
        return self.CONFIG_DEF

    def exactly_once_support(self, connector_config: dict[str, str]) -> ExactlyOnceSupport:
        return ExactlyOnceSupport.SUPPORTED  # positions are exact byte offsets

    def alter_offsets(self, connector_config: dict[str, str], offsets: dict[Any, Any]) -> bool:
        return True


class FileStreamSourceTask(SourceTask):
    def start(self, props: dict[str, str]) -> None:
        parsed = FileStreamSourceConnector.CONFIG_DEF.parse(props)
        self.filename: str | None = parsed[FILE_CONFIG]
        self.topic: str = parsed[TOPIC_CONFIG]
        self.batch_size: int = parsed[BATCH_SIZE_CONFIG]
        self.stream: IO[bytes] | None = None
        self.position = 0
        self._stopped = threading.Event()

    def _open(self) -> IO[bytes] | None:
        if self.filename is None:
            return sys.stdin.buffer
        try:
            stream = open(self.filename, "rb")  # noqa: SIM115 - held open across polls, closed in stop()
        except FileNotFoundError:
            return None
        committed = self.context.offset_storage_reader.offset({FILENAME_FIELD: self.filename})
        if committed and committed.get(POSITION_FIELD) is not None:
            self.position = int(committed[POSITION_FIELD])
            stream.seek(self.position)
        return stream

    def poll(self) -> list[SourceRecord] | None:
        if self.stream is None:
            self.stream = self._open()
            if self.stream is None:
                self._stopped.wait(POLL_WAIT_S)
                return None
        records: list[SourceRecord] = []
        partition = {FILENAME_FIELD: self.filename or "stdin"}  # one dict for the batch, as Kafka's task does
        while len(records) < self.batch_size:
            line = self.stream.readline()
            if not line.endswith(b"\n"):
                if line:  # a partial line: read it again once the writer finishes it
                    self.stream.seek(self.position)
                break
            self.position += len(line)
            records.append(SourceRecord(
                topic=self.topic, kafka_partition=None, key_schema=None, key=None,
                value_schema=OPTIONAL_STRING, value=line.rstrip(b"\r\n").decode("utf-8", "replace"),
                source_partition=partition,
                source_offset={POSITION_FIELD: self.position}))
        if not records:
            self._stopped.wait(POLL_WAIT_S)
        if self._stopped.is_set() and self.filename is not None:
            self.stream.close()  # closed here, on the polling thread: stop() may run on another one
            self.stream = None
        return records

    def stop(self) -> None:
        if hasattr(self, "_stopped"):  # stop() may come before start() finished
            self._stopped.set()


class FileStreamSinkConnector(SinkConnector):
    CONFIG_DEF = ConfigDef().define(FILE_CONFIG, Type.STRING, None, importance=Importance.HIGH,
                                    documentation="Destination filename. If not specified, the standard output "
                                                  "will be used")

    def start(self, props: dict[str, str]) -> None:
        self.props = dict(props)

    def task_class(self) -> type[SinkTask]:
        return FileStreamSinkTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [dict(self.props) for _ in range(max_tasks)]

    def config(self) -> ConfigDef:
        return self.CONFIG_DEF

    def alter_offsets(self, connector_config: dict[str, str], offsets: dict[Any, Any]) -> bool:
        return True


class FileStreamSinkTask(SinkTask):
    def start(self, props: dict[str, str]) -> None:
        self.filename = FileStreamSinkConnector.CONFIG_DEF.parse(props)[FILE_CONFIG]
        self.out: IO[str] = open(self.filename, "a", encoding="utf-8") if self.filename else sys.stdout  # noqa: SIM115

    def put(self, records: list[SinkRecord]) -> None:
        self.out.write("".join(f"{_text(r.value)}\n" for r in records))

    def flush(self, current_offsets: dict[TopicPartition, int]) -> None:
        self.out.flush()

    def stop(self) -> None:
        if self.filename:
            self.out.close()


def _text(value: Any) -> str:
    return "null" if value is None else str(plain(value))
