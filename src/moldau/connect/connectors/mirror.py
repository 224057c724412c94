"""MirrorMaker 2's connectors for a Connect cluster that runs against the *target* cluster:

- MirrorSourceConnector copies topics (records, keys, headers, timestamps, partitions) from the source
  cluster into `<source alias>.<topic>` (DefaultReplicationPolicy; IdentityReplicationPolicy keeps the name),
  creating the remote topics with the source's partition count and remembering, per partition, which
  target offset each source offset landed at (offset syncs, `mm2-offset-syncs.<target alias>.internal`).
- MirrorCheckpointConnector reads the source cluster's consumer groups, translates their committed offsets
  through the offset syncs, and with `sync.group.offsets.enabled=true` commits them to the same groups on
  the target cluster, so consumers can fail over and resume where they were.

Use the ByteArrayConverter for both keys and values (MM2's defaults): records are copied byte for byte.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.connect.api import ConfigDef, Importance, SourceConnector, SourceRecord, SourceTask, Type
from moldau.connect.api.config import Range
from moldau.connect.api.data import OPTIONAL_BYTES
from moldau.connect.api.errors import ConnectException
from moldau.connect.api.records import Header

ADMIN_TIMEOUT_S = 30


def _common() -> ConfigDef:
    return (ConfigDef()
            .define("source.cluster.alias", Type.STRING, "source", importance=Importance.HIGH)
            .define("target.cluster.alias", Type.STRING, "target", importance=Importance.HIGH)
            .define("source.cluster.bootstrap.servers", Type.STRING, importance=Importance.HIGH)
            .define("target.cluster.bootstrap.servers", Type.STRING, importance=Importance.HIGH)
            .define("replication.policy.class", Type.STRING,
                    "org.apache.kafka.connect.mirror.DefaultReplicationPolicy", importance=Importance.LOW)
            .define("replication.policy.separator", Type.STRING, ".", importance=Importance.LOW)
            .define("topics", Type.LIST, ".*", importance=Importance.HIGH,
                    documentation="Topics to replicate: comma-separated regular expressions")
            .define("topics.exclude", Type.LIST, r".*[\-\.]internal,.*\.replica,__.*", importance=Importance.HIGH))


def remote_topic(settings: dict[str, Any], topic: str) -> str:
    if settings["replication.policy.class"].endswith("IdentityReplicationPolicy"):
        return topic
    return f"{settings['source.cluster.alias']}{settings['replication.policy.separator']}{topic}"


def offset_syncs_topic(settings: dict[str, Any]) -> str:
    return f"mm2-offset-syncs.{settings['target.cluster.alias']}.internal"


def _matches(patterns: list[str], name: str) -> bool:
    return any(re.fullmatch(p, name) for p in patterns if p)


def replicated_topics(settings: dict[str, Any], admin: AdminClient) -> dict[str, int]:
    """Source topics to copy, with their partition counts."""
    metadata = admin.list_topics(timeout=ADMIN_TIMEOUT_S)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()
            if _matches(settings["topics"], name) and not _matches(settings["topics.exclude"], name)}


SOURCE_DEF = (_common()
              .define("consumer.poll.timeout.ms", Type.LONG, 1000, importance=Importance.LOW)
              .define("refresh.topics.interval.seconds", Type.LONG, 600, importance=Importance.LOW))


class MirrorSourceConnector(SourceConnector):
    def start(self, props: dict[str, str]) -> None:
        self.props = dict(props)
        self.settings = SOURCE_DEF.parse(props)
        source = AdminClient({"bootstrap.servers": self.settings["source.cluster.bootstrap.servers"]})
        self.topics = replicated_topics(self.settings, source)
        target = AdminClient({"bootstrap.servers": self.settings["target.cluster.bootstrap.servers"]})
        existing = target.list_topics(timeout=ADMIN_TIMEOUT_S).topics
        wanted = [NewTopic(remote_topic(self.settings, t), n, 1) for t, n in self.topics.items()
                  if remote_topic(self.settings, t) not in existing]
        syncs = offset_syncs_topic(self.settings)
        if syncs not in existing:
            wanted.append(NewTopic(syncs, 1, 1, config={"cleanup.policy": "compact"}))
        for future in target.create_topics(wanted).values() if wanted else []:
            try:
                future.result(ADMIN_TIMEOUT_S)
            except confluent_kafka.KafkaException as exc:
                if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise ConnectException(f"Could not create a remote topic: {exc}") from exc

    def task_class(self) -> type[SourceTask]:
        return MirrorSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        partitions = [f"{t}:{p}" for t, n in sorted(self.topics.items()) for p in range(n)]
        if not partitions:
            return []
        count = min(max_tasks, len(partitions))
        return [{**self.props, "task.assigned.partitions": ",".join(partitions[i::count])} for i in range(count)]

    def config(self) -> ConfigDef:
        return SOURCE_DEF

    def alter_offsets(self, connector_config: dict[str, str], offsets: dict[Any, Any]) -> bool:
        return True


class MirrorSourceTask(SourceTask):
    def start(self, props: dict[str, str]) -> None:
        self.settings = SOURCE_DEF.parse(props)
        self.alias = self.settings["source.cluster.alias"]
        self.consumer = confluent_kafka.Consumer({
            "bootstrap.servers": self.settings["source.cluster.bootstrap.servers"], "group.id": "mm2-source",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "enable.partition.eof": False})
        assignment = []
        for item in props.get("task.assigned.partitions", "").split(","):
            if not item:
                continue
            topic, _, partition = item.rpartition(":")
            committed = self.context.offset_storage_reader.offset(self._partition(topic, int(partition)))
            start = int(committed["offset"]) + 1 if committed else confluent_kafka.OFFSET_BEGINNING
            assignment.append(confluent_kafka.TopicPartition(topic, int(partition), start))
        self.consumer.assign(assignment)
        self.syncs = confluent_kafka.Producer({"bootstrap.servers": self.settings["target.cluster.bootstrap.servers"]})
        self.syncs_topic = offset_syncs_topic(self.settings)
        self.pending_syncs: dict[tuple[str, int], tuple[int, int]] = {}
        # Per partition, where the current run of copies began in which upstream and downstream offsets both
        # advanced by exactly one per record: inside such a run, translation is exact.
        self.runs: dict[tuple[str, int], tuple[int, int, int]] = {}  # (first upstream, last up, last down)
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def _partition(self, topic: str, partition: int) -> dict[str, Any]:
        return {"cluster": self.alias, "topic": topic, "partition": partition}

    def poll(self) -> list[SourceRecord] | None:
        if self.stopping.is_set():
            return None
        records = []
        for message in self.consumer.consume(1000, self.settings["consumer.poll.timeout.ms"] / 1000):
            if message.error() is not None:
                continue
            ts_type, ts = message.timestamp()
            headers = [Header(str(h[0]), h[1], OPTIONAL_BYTES) for h in (message.headers() or [])]
            topic, partition = str(message.topic()), int(message.partition() or 0)
            records.append(SourceRecord(
                remote_topic(self.settings, topic), partition, OPTIONAL_BYTES, message.key(),
                OPTIONAL_BYTES, message.value(), ts if ts_type != confluent_kafka.TIMESTAMP_NOT_AVAILABLE else None,
                headers, source_partition=self._partition(topic, partition),
                source_offset={"offset": message.offset()}))
        return records

    def commit_record(self, record: SourceRecord, metadata: Any) -> None:
        if metadata is None or record.source_partition is None or record.source_offset is None:
            return
        key = (record.source_partition["topic"], record.source_partition["partition"])
        upstream, downstream = int(record.source_offset["offset"]), int(metadata[2])
        with self._lock:  # delivery callbacks, in order per partition: upstream offset -> downstream offset
            run = self.runs.get(key)
            contiguous = run is not None and upstream == run[1] + 1 and downstream == self.pending_down(key) + 1
            self.runs[key] = (run[0] if contiguous and run else upstream, upstream, downstream)
            self.pending_syncs[key] = (upstream, downstream)

    def pending_down(self, key: tuple[str, int]) -> int:
        run = self.runs.get(key)
        return run[2] if run else -2

    def commit(self) -> None:
        """Offset syncs for the latest copied record of each partition (MirrorSourceTask.maybeSyncOffsets)."""
        with self._lock:
            syncs, self.pending_syncs = self.pending_syncs, {}
        for (topic, partition), (upstream, downstream) in syncs.items():
            key = json.dumps({"topic": topic, "partition": partition}, sort_keys=True).encode()
            with self._lock:
                run_start = self.runs[(topic, partition)][0]
            self.syncs.produce(self.syncs_topic, key=key, value=json.dumps(
                {"upstream": upstream, "downstream": downstream, "runStartUpstream": run_start}).encode())
        if syncs:
            self.syncs.flush(10)

    def stop(self) -> None:
        if hasattr(self, "stopping"):  # stop() may come before start() finished
            self.stopping.set()


CHECKPOINT_DEF = (_common()
                  .define("groups", Type.LIST, ".*", importance=Importance.HIGH)
                  .define("groups.exclude", Type.LIST, "console-consumer-.*,connect-.*,__.*", importance=Importance.HIGH)
                  .define("emit.checkpoints.interval.seconds", Type.LONG, 60, validator=Range.at_least(0),
                          importance=Importance.LOW)
                  .define("sync.group.offsets.enabled", Type.BOOLEAN, False, importance=Importance.LOW))


class MirrorCheckpointConnector(SourceConnector):
    def start(self, props: dict[str, str]) -> None:
        self.props = dict(props)
        CHECKPOINT_DEF.parse(props)

    def task_class(self) -> type[SourceTask]:
        return MirrorCheckpointTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [dict(self.props)]

    def config(self) -> ConfigDef:
        return CHECKPOINT_DEF


class MirrorCheckpointTask(SourceTask):
    """Emits `<source alias>.checkpoints.internal` records {group, topic, partition, upstream, downstream} and,
    when enabled, commits the translated offsets to the target cluster's groups."""

    def start(self, props: dict[str, str]) -> None:
        self.settings = CHECKPOINT_DEF.parse(props)
        self.source = AdminClient({"bootstrap.servers": self.settings["source.cluster.bootstrap.servers"]})
        self.target = AdminClient({"bootstrap.servers": self.settings["target.cluster.bootstrap.servers"]})
        self.syncs: dict[tuple[str, int], tuple[int, int, int]] = {}
        self.reader = confluent_kafka.Consumer({
            "bootstrap.servers": self.settings["target.cluster.bootstrap.servers"], "group.id": "mm2-checkpoints",
            "enable.auto.commit": False, "enable.partition.eof": False})
        self.reader.assign([confluent_kafka.TopicPartition(offset_syncs_topic(self.settings), 0,
                                                           confluent_kafka.OFFSET_BEGINNING)])
        self.next_emit = 0.0
        self.stopping = threading.Event()
        self.checkpoints_topic = f"{self.settings['source.cluster.alias']}.checkpoints.internal"

    def _read_syncs(self) -> None:
        for message in self.reader.consume(1000, 0.1):
            raw_key, raw_value = message.key(), message.value()
            if message.error() is None and raw_key and raw_value:
                key, value = json.loads(raw_key), json.loads(raw_value)
                self.syncs[(key["topic"], key["partition"])] = (value["upstream"], value["downstream"],
                                                                value.get("runStartUpstream", value["upstream"]))

    def translate(self, topic: str, partition: int, upstream: int) -> int | None:
        """The target offset a consumer at `upstream` should resume from (OffsetSyncStore.translateDownstream)."""
        sync = self.syncs.get((topic, partition))
        if sync is None:
            return None
        synced_up, synced_down, run_start = sync
        if run_start <= upstream <= synced_up + 1:
            return synced_down - (synced_up - upstream)  # inside a gap-free run of copies: exact
        if upstream > synced_up:
            return synced_down + 1  # past the last synced record: resume after its copy (may re-read some)
        return None  # before what the syncs cover: translating could skip records

    def poll(self) -> list[SourceRecord] | None:
        self._read_syncs()
        if time.monotonic() < self.next_emit:
            self.stopping.wait(0.2)
            return None
        self.next_emit = time.monotonic() + self.settings["emit.checkpoints.interval.seconds"]
        records = []
        for group in self._groups():
            request = confluent_kafka.ConsumerGroupTopicPartitions(group)
            result = self.source.list_consumer_group_offsets([request])[group].result(ADMIN_TIMEOUT_S)
            translated = []
            for tp in result.topic_partitions:
                if tp.offset < 0 or not _matches(self.settings["topics"], tp.topic):
                    continue
                downstream = self.translate(tp.topic, tp.partition, tp.offset)
                if downstream is None:
                    continue
                remote = remote_topic(self.settings, tp.topic)
                translated.append(confluent_kafka.TopicPartition(remote, tp.partition, downstream))
                value = json.dumps({"group": group, "topic": remote, "partition": tp.partition,
                                    "upstreamOffset": tp.offset, "downstreamOffset": downstream}).encode()
                records.append(SourceRecord(self.checkpoints_topic, 0, OPTIONAL_BYTES,
                                            f"{group}:{remote}:{tp.partition}".encode(), OPTIONAL_BYTES, value))
            if translated and self.settings["sync.group.offsets.enabled"]:
                self._sync_group(group, translated)
        return records

    def _groups(self) -> list[str]:
        listed = self.source.list_consumer_groups().result(ADMIN_TIMEOUT_S)
        return [g.group_id for g in listed.valid if _matches(self.settings["groups"], g.group_id)
                and not _matches(self.settings["groups.exclude"], g.group_id)]

    def _sync_group(self, group: str, offsets: list[confluent_kafka.TopicPartition]) -> None:
        """Like MirrorCheckpointTask.syncGroupOffset: only groups with no active members on the target."""
        described = self.target.describe_consumer_groups([group])[group]
        try:
            if described.result(ADMIN_TIMEOUT_S).members:
                return
        except confluent_kafka.KafkaException:
            pass  # an unknown group on the target: create it by committing
        request = confluent_kafka.ConsumerGroupTopicPartitions(group, offsets)
        self.target.alter_consumer_group_offsets([request])[group].result(ADMIN_TIMEOUT_S)

    def stop(self) -> None:
        if hasattr(self, "stopping"):  # stop() may come before start() finished
            self.stopping.set()
