"""The Worker: runs the connectors and tasks a herder assigns to it (org.apache.kafka.connect.runtime.Worker)."""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.connect.api.connector import Connector, ConnectorContext, SinkConnector, SinkTask, SourceTask
from moldau.connect.api.errors import ConnectException
from moldau.connect.converters.base import Converter, HeaderConverter
from moldau.connect.plugins import Plugins, plugins
from moldau.connect.runtime.errors import Reporter, RetryWithToleranceOperator, dlq_reporter, log_reporter
from moldau.connect.runtime.sink_task import WorkerSinkTask
from moldau.connect.runtime.source_task import WorkerSourceTask
from moldau.connect.runtime.status import State, Status, StatusBackingStore, TargetState
from moldau.connect.runtime.topic_creation import TopicCreation, TopicCreator
from moldau.connect.runtime.transformation_chain import build_chain
from moldau.connect.runtime.worker_config import WorkerConfig, librdkafka_settings
from moldau.connect.runtime.worker_task import ConnectorTaskId, TaskPlumbing, WorkerTask
from moldau.connect.runtime.zombie_fencing import ZombieFencer
from moldau.connect.storage.offsets import OffsetBackingStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkerConnector:
    name: str
    connector: Connector
    config: dict[str, str]
    target: TargetState


def _prefixed(config: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}


class Worker:
    def __init__(self, config: WorkerConfig, worker_id: str, offset_store: OffsetBackingStore,
                 status_store: StatusBackingStore, plugin_registry: Plugins | None = None) -> None:
        self.config = config
        self.worker_id = worker_id
        self.offset_store = offset_store
        self.status_store = status_store
        self.plugins = plugin_registry or plugins()
        self.connectors: dict[str, WorkerConnector] = {}
        self.tasks: dict[ConnectorTaskId, WorkerTask] = {}
        self._lock = threading.RLock()
        self.reconfiguration_requested: set[str] = set()
        self.generation = 0
        self.on_reconfiguration_request: Any = None  # herder callback(name)
        self.zombie_fencer: ZombieFencer | None = None  # the distributed herder (KIP-618 fencing rounds)
        self.active_topics: dict[str, set[str]] = {}  # KIP-558: topics each connector used since reset

    # -- connectors -----------------------------------------------------------------------------------

    def start_connector(self, name: str, config: dict[str, str], target: TargetState) -> bool:
        with self._lock:
            if name in self.connectors:
                raise ConnectException(f"Connector {name} already running on this worker")
            try:
                connector: Connector = self.plugins.new("connector", config["connector.class"])
                connector.initialize(ConnectorContext(lambda: self._request_reconfiguration(name),
                                                      lambda exc: self._connector_failed(name, exc)))
                if target is TargetState.STARTED:
                    connector.start(dict(config))
            except Exception as exc:  # the failure is the connector's FAILED status
                log.error("Failed to start connector %s", name, exc_info=exc)
                self._connector_failed(name, exc)
                return False
            self.connectors[name] = WorkerConnector(name, connector, dict(config), target)
            self._put_connector_status(name, target)
            return True

    def _put_connector_status(self, name: str, target: TargetState) -> None:
        state = {TargetState.STARTED: State.RUNNING, TargetState.PAUSED: State.PAUSED,
                 TargetState.STOPPED: State.STOPPED}[target]
        self.status_store.put_connector(name, Status(state, self.worker_id, generation=self.generation))

    def _connector_failed(self, name: str, exc: BaseException) -> None:
        trace = "".join(traceback.format_exception(exc))
        self.status_store.put_connector(name, Status(State.FAILED, self.worker_id, trace, self.generation))

    def _request_reconfiguration(self, name: str) -> None:
        self.reconfiguration_requested.add(name)
        if self.on_reconfiguration_request is not None:
            self.on_reconfiguration_request(name)

    def is_sink(self, name: str) -> bool:
        return isinstance(self.connectors[name].connector, SinkConnector)

    def connector_task_configs(self, name: str) -> list[dict[str, str]]:
        """Task configs for a running connector: its own, plus `task.class` and sink topics (as Kafka adds)."""
        with self._lock:
            wc = self.connectors[name]
            max_tasks = int(wc.config.get("tasks.max", "1"))
            raw = wc.connector.task_configs(max_tasks)
            if len(raw) > max_tasks and str(wc.config.get("tasks.max.enforce", "true")).lower() == "true":
                raise ConnectException(f"The connector {name} has generated {len(raw)} tasks, which is greater "
                                       f"than {max_tasks}, the maximum number of tasks it is configured to create.")
            task_class = wc.connector.task_class()
            result = []
            for config in raw:
                task_config = {**config, "task.class": f"{task_class.__module__}.{task_class.__qualname__}"}
                for key in ("topics", "topics.regex"):
                    if key in wc.config:
                        task_config[key] = wc.config[key]
                result.append(task_config)
            return result

    def set_target_state(self, name: str, target: TargetState) -> None:
        with self._lock:
            wc = self.connectors.get(name)
            if wc is None or wc.target is target:
                return
            previous, wc.target = wc.target, target
            if target is TargetState.STARTED and previous is not TargetState.STARTED:
                wc.connector.start(dict(wc.config))
            elif previous is TargetState.STARTED and target is TargetState.STOPPED:
                wc.connector.stop()
            self._put_connector_status(name, target)
            for task_id, task in self.tasks.items():
                if task_id.connector == name:
                    (task.resume if target is TargetState.STARTED else task.pause)()

    def stop_connector(self, name: str) -> None:
        with self._lock:
            wc = self.connectors.pop(name, None)
        if wc is None:
            return
        try:
            if wc.target is TargetState.STARTED:
                wc.connector.stop()
        except Exception:
            log.exception("Connector %s failed to stop", name)

    # -- tasks ----------------------------------------------------------------------------------------

    def start_task(self, task_id: ConnectorTaskId, connector_config: dict[str, str], task_config: dict[str, str],
                   target: TargetState) -> bool:
        with self._lock:
            if task_id in self.tasks:
                raise ConnectException(f"Task {task_id} already running on this worker")
            listener = self._task_listener(task_id)
            try:
                task = self._build_task(task_id, connector_config, task_config, target, listener)
            except Exception as exc:
                log.error("Failed to start task %s", task_id, exc_info=exc)
                listener(State.FAILED, "".join(traceback.format_exception(exc)))
                return False
            self.tasks[task_id] = task
            task.start()
            return True

    def topic_tracker(self, connector: str) -> Any:
        def track(topic: str) -> None:
            topics = self.active_topics.setdefault(connector, set())
            if topic not in topics:
                topics.add(topic)
        return track

    def _task_listener(self, task_id: ConnectorTaskId) -> Any:
        generation = self.generation

        def listener(state: State, trace: str | None) -> None:
            self.status_store.put_task(task_id.connector, task_id.task,
                                       Status(state, self.worker_id, trace, generation))
        return listener

    def _converters(self, connector_config: dict[str, str]) -> tuple[Converter, Converter, HeaderConverter]:
        out: list[Any] = []
        for key in ("key.converter", "value.converter", "header.converter"):
            if connector_config.get(key):
                name, settings = connector_config[key], _prefixed(connector_config, f"{key}.")
            else:
                name, settings = self.config.get(key), _prefixed(self.config.originals, f"{key}.")
            kind = "header_converter" if key == "header.converter" else "converter"
            instance = self.plugins.new(kind, name)
            if kind == "header_converter":
                instance.configure(settings)
            else:
                instance.configure(settings, key == "key.converter")
            out.append(instance)
        return out[0], out[1], out[2]

    def _build_task(self, task_id: ConnectorTaskId, connector_config: dict[str, str], task_config: dict[str, str],
                    target: TargetState, listener: Any) -> WorkerTask:
        task_class = self.plugins.load("connector", task_config["task.class"]) if "task.class" in task_config \
            else None
        if task_class is None:
            raise ConnectException(f"Task config of {task_id} names no task.class")
        task = task_class()
        key_conv, value_conv, header_conv = self._converters(connector_config)
        stopping = threading.Event()
        reporters: list[Reporter] = []
        if str(connector_config.get("errors.log.enable", "false")).lower() == "true":
            include = str(connector_config.get("errors.log.include.messages", "false")).lower() == "true"
            reporters.append(log_reporter(task_id.connector, task_id.task, include))
        is_sink = isinstance(task, SinkTask)
        dlq_topic = str(connector_config.get("errors.deadletterqueue.topic.name", "") or "").strip()
        dlq_producer = None
        if is_sink and dlq_topic:
            dlq_producer = self._dlq_producer(dlq_topic, connector_config)
            headers = str(connector_config.get("errors.deadletterqueue.context.headers.enable", "false")).lower()
            reporters.append(dlq_reporter(dlq_producer, dlq_topic, task_id.connector, task_id.task,
                                          headers == "true"))
        retry = RetryWithToleranceOperator.from_config(connector_config, reporters, stopping)
        plumbing = TaskPlumbing(key_conv, value_conv, header_conv, build_chain(self.plugins, connector_config),
                                retry, connector_config, task_config, self.topic_tracker(task_id.connector))
        paused = target is not TargetState.STARTED
        flush_ms = int(self.config.get("offset.flush.interval.ms"))
        if isinstance(task, SourceTask):
            producer_config = self.connector_client_config("producer", connector_config)
            source_task = self.source_task_factory(task_id, task, plumbing, listener, producer_config, flush_ms,
                                                   paused)
            creation = TopicCreation.from_config(bool(self.config.get("topic.creation.enable")), connector_config)
            if creation is not None and isinstance(source_task, WorkerSourceTask):
                source_task.topic_creator = TopicCreator(creation, self.connector_client_config("admin", connector_config))
            return source_task
        if is_sink:
            consumer_config = self.connector_client_config("consumer", connector_config)
            worker_task = WorkerSinkTask(task_id, task, plumbing, listener, consumer_config, flush_ms, paused)
            worker_task.dlq_producer = dlq_producer  # type: ignore[attr-defined]
            return worker_task
        raise ConnectException(f"{task_class.__name__} is neither a SourceTask nor a SinkTask")

    def source_task_factory(self, task_id: ConnectorTaskId, task: SourceTask, plumbing: TaskPlumbing,
                            listener: Any, producer_config: dict[str, Any], flush_ms: int,
                            paused: bool) -> WorkerTask:
        offsets_topic = getattr(getattr(self.offset_store, "log", None), "topic", None)
        if str(self.config.get("exactly.once.source.support")).lower() == "enabled" and offsets_topic:
            # KIP-618 needs the offsets in a topic of the same cluster: distributed mode.
            from moldau.connect.runtime.eos_source_task import ExactlyOnceWorkerSourceTask, transactional_id

            return ExactlyOnceWorkerSourceTask(
                task_id, task, plumbing, listener, producer_config, self.offset_store, flush_ms,
                int(self.config.get("offset.flush.timeout.ms")), paused, offsets_topic=offsets_topic,
                transactional_id=transactional_id(self.config.get("group.id"), task_id.connector, task_id.task),
                fencer=self.zombie_fencer)
        return WorkerSourceTask(task_id, task, plumbing, listener, producer_config, self.offset_store, flush_ms,
                                int(self.config.get("offset.flush.timeout.ms")), paused)

    def _dlq_producer(self, topic: str, connector_config: dict[str, str]) -> confluent_kafka.Producer:
        """Create the DLQ topic when missing (DeadLetterQueueReporter.createAndSetup), then a producer for it."""
        admin = AdminClient(self.connector_client_config("admin", connector_config))
        if topic not in admin.list_topics(timeout=10).topics:
            rf = int(connector_config.get("errors.deadletterqueue.topic.replication.factor", 3))
            futures = admin.create_topics([NewTopic(topic, 1, rf)])
            try:
                futures[topic].result(10)
            except confluent_kafka.KafkaException as exc:
                if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise ConnectException(f"Could not create dead letter queue topic {topic}: {exc}") from exc
        return confluent_kafka.Producer({**self.connector_client_config("producer", connector_config), "acks": "all"})

    def connector_client_config(self, kind: str, connector_config: dict[str, str]) -> dict[str, Any]:
        """The worker's settings for a `kind` client of a connector, with the connector's `<kind>.override.*`
        on top (Worker.connectorClientConfigOverrides). Overrides the worker's policy refuses stop the task,
        as in Kafka, in case the policy changed since the connector was validated."""
        prefix = f"{kind}.override."
        overrides = _prefixed(connector_config, prefix)
        policy = self.config.override_policy
        refused = sorted(prefix + key for key in overrides if not policy.allows(key))
        if refused:
            raise ConnectException(f"Client Config Overrides not allowed by the '{policy.name}' policy: "
                                   f"{', '.join(refused)}")
        return {**self.config.client_config(kind), **librdkafka_settings(overrides)}

    def stop_tasks(self, task_ids: list[ConnectorTaskId]) -> None:
        with self._lock:
            stopping = [self.tasks.pop(t) for t in task_ids if t in self.tasks]
        for task in stopping:
            task.stop()
        timeout_s = int(self.config.get("task.shutdown.graceful.timeout.ms")) / 1000
        for task in stopping:
            if not task.await_stop(timeout_s):
                log.error("Graceful stop of task %s failed.", task.id)
            dlq = getattr(task, "dlq_producer", None)
            if dlq is not None:
                dlq.flush(5)
                task.dlq_producer = None  # type: ignore[attr-defined]

    def task_ids(self, connector: str | None = None) -> list[ConnectorTaskId]:
        with self._lock:
            return [t for t in self.tasks if connector is None or t.connector == connector]

    def stop(self) -> None:
        self.stop_tasks(self.task_ids())
        for name in list(self.connectors):
            self.stop_connector(name)
