"""A test-only source connector: `partitions` source partitions, each counting 0, 1, 2 … up to `count`,
dealt round-robin over the tasks. Records are `<partition>:<n>` with the source offset `{"n": n}`, so a
reader can tell a duplicate or a gap per source partition. Workers load it by its Python path,
`tests.connect.counting_source.CountingSourceConnector`."""

from __future__ import annotations

import threading

from moldau.connect.api.config import ConfigDef, Importance, Type
from moldau.connect.api.connector import ExactlyOnceSupport, SourceConnector, SourceTask
from moldau.connect.api.data import OPTIONAL_STRING
from moldau.connect.api.records import SourceRecord

BATCH = 20
PAUSE_S = 0.05  # between batches: a steady stream of small transactions


class CountingSourceConnector(SourceConnector):
    CONFIG_DEF = (ConfigDef()
                  .define("topic", Type.STRING, importance=Importance.HIGH)
                  .define("partitions", Type.INT, 2, importance=Importance.HIGH)
                  .define("count", Type.INT, 1000, importance=Importance.HIGH))

    def start(self, props: dict[str, str]) -> None:
        self.props = dict(props)

    def task_class(self) -> type[SourceTask]:
        return CountingSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        partitions = int(self.props.get("partitions", 2))
        tasks = min(max_tasks, partitions)
        return [{**self.props, "task.partitions": ",".join(str(p) for p in range(partitions) if p % tasks == i)}
                for i in range(tasks)]

    def config(self) -> ConfigDef:
        return self.CONFIG_DEF

    def exactly_once_support(self, connector_config: dict[str, str]) -> ExactlyOnceSupport:
        return ExactlyOnceSupport.SUPPORTED


class CountingSourceTask(SourceTask):
    def start(self, props: dict[str, str]) -> None:
        self.topic, self.count = props["topic"], int(props.get("count", 1000))
        self.next: dict[int, int] = {}
        for partition in (int(p) for p in props["task.partitions"].split(",")):
            offset = self.context.offset_storage_reader.offset({"p": partition})
            self.next[partition] = offset["n"] + 1 if offset else 0
        self._stopped = threading.Event()

    def poll(self) -> list[SourceRecord] | None:
        self._stopped.wait(PAUSE_S)
        records = []
        for partition, n in self.next.items():
            for value in range(n, min(n + BATCH, self.count)):
                records.append(SourceRecord(self.topic, None, None, None, OPTIONAL_STRING,
                                            f"{partition}:{value}", source_partition={"p": partition},
                                            source_offset={"n": value}))
            self.next[partition] = min(n + BATCH, self.count)
        return records

    def stop(self) -> None:
        self._stopped.set()
