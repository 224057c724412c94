"""Configs, offsets and statuses in compacted topics, with Kafka Connect's record formats, so that any worker
(after a failure: any other worker) can pick up any connector or task.

Keys and values are the ones Kafka's KafkaConfigBackingStore / KafkaOffsetBackingStore /
KafkaStatusBackingStore write (values: JSON without schemas, Kafka's internal converter):

    config.storage.topic   connector-<c>        {"properties": {...}}
                           task-<c>-<n>         {"properties": {...}}
                           commit-<c>           {"tasks": n}        (task configs apply only once committed)
                           target-state-<c>     {"state": "PAUSED", "state.v2": "STOPPED"}
                           restart-connector-<c> {"include-tasks": b, "only-failed": b}   (KIP-745)
                           tasks-fencing-<c>    {"task-count": n}   (KIP-618, after a fencing round)
                           session-key          {"key": base64, "algorithm": ..., "creation-timestamp": ms} (KIP-507)
    offset.storage.topic   ["<c>", {partition}]  {offset}
    status.storage.topic   status-connector-<c> / status-task-<c>-<n>
                           {"state": ..., "trace": ..., "worker_id": ..., "generation": n}
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from moldau.connect.runtime.session_key import SESSION_KEY_RECORD, SessionKey
from moldau.connect.runtime.status import State, Status, StatusBackingStore, TargetState
from moldau.connect.storage.configs import ConfigBackingStore
from moldau.connect.storage.kafka_log import KafkaBasedLog
from moldau.connect.storage.offsets import OffsetBackingStore

TASK_COUNT_RECORD = "tasks-fencing-"  # KIP-618: `tasks-fencing-<c>` {"task-count": n}


def _json(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


class KafkaConfigBackingStore(ConfigBackingStore):
    def __init__(self, topic: str, client_config: dict[str, Any]) -> None:
        super().__init__()
        self.log = KafkaBasedLog(topic, client_config, self._on_record)
        self._deferred_tasks: dict[str, dict[int, dict[str, str]]] = {}
        self.restart_listeners: list[Callable[[str, bool, bool], None]] = []
        self.session_key: SessionKey | None = None

    def start(self) -> None:
        self.log.start()

    def stop(self) -> None:
        self.log.stop()

    def refresh(self, timeout_s: float = 30.0) -> None:
        self.log.read_to_end(timeout_s)

    def _on_record(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode()
        body = _json(value)
        restart: tuple[str, bool, bool] | None = None
        with self._lock:
            self.state.offset += 1
            if name.startswith("connector-"):
                connector = name[len("connector-"):]
                if body is None:
                    self.state.connectors.pop(connector, None)
                    self.state.tasks.pop(connector, None)
                    self.state.targets.pop(connector, None)
                else:
                    self.state.connectors[connector] = body.get("properties", {})
                    self.state.targets.setdefault(connector, TargetState.STARTED)
            elif name.startswith("task-") and body is not None:
                connector, _, index = name[len("task-"):].rpartition("-")
                if index.isdigit():
                    self._deferred_tasks.setdefault(connector, {})[int(index)] = body.get("properties", {})
            elif name.startswith("commit-") and body is not None:
                connector = name[len("commit-"):]
                deferred = self._deferred_tasks.pop(connector, {})
                count = int(body.get("tasks", 0))
                if all(i in deferred for i in range(count)):
                    self.state.commit_tasks(connector, [deferred[i] for i in range(count)])
            elif name.startswith(TASK_COUNT_RECORD) and body is not None:
                self.state.record_task_count(name[len(TASK_COUNT_RECORD):], int(body.get("task-count", 0)))
            elif name.startswith("target-state-"):
                connector = name[len("target-state-"):]
                if body is None:
                    self.state.targets.pop(connector, None)
                else:
                    state = body.get("state.v2") or body.get("state", "STARTED")
                    self.state.targets[connector] = TargetState(state)
            elif name == SESSION_KEY_RECORD and body is not None:
                self.session_key = SessionKey.from_record(body) or self.session_key
            elif name.startswith("restart-connector-") and body is not None:
                restart = (name[len("restart-connector-"):], bool(body.get("include-tasks")),
                           bool(body.get("only-failed")))
        if restart is not None:
            for restart_listener in self.restart_listeners:
                restart_listener(*restart)
        self._changed()

    def put_connector_config(self, connector: str, config: dict[str, str], target: TargetState | None) -> None:
        if target is not None:
            self.put_target_state(connector, target)
        self.log.send(f"connector-{connector}".encode(), _dump({"properties": config}))

    def remove_connector_config(self, connector: str) -> None:
        self.log.send(f"connector-{connector}".encode(), None)
        self.log.send(f"target-state-{connector}".encode(), None)

    def put_task_configs(self, connector: str, configs: list[dict[str, str]]) -> None:
        for i, config in enumerate(configs):
            self.log.send(f"task-{connector}-{i}".encode(), _dump({"properties": config}), flush=False)
        self.log.send(f"commit-{connector}".encode(), _dump({"tasks": len(configs)}))
        self.refresh()

    def put_task_count_record(self, connector: str, count: int) -> None:
        self.log.send(f"{TASK_COUNT_RECORD}{connector}".encode(), _dump({"task-count": count}))
        self.refresh()

    def put_session_key(self, key: SessionKey) -> None:
        self.log.send(SESSION_KEY_RECORD.encode(), _dump(key.to_record()))
        self.refresh()

    def put_target_state(self, connector: str, target: TargetState) -> None:
        # Kafka 3.5+ writes "state.v2"; "state" keeps older workers working (they know no STOPPED).
        legacy = "STARTED" if target is TargetState.STARTED else "PAUSED"
        self.log.send(f"target-state-{connector}".encode(), _dump({"state": legacy, "state.v2": target.value}))

    def put_restart_request(self, connector: str, include_tasks: bool, only_failed: bool) -> None:
        self.log.send(f"restart-connector-{connector}".encode(),
                      _dump({"include-tasks": include_tasks, "only-failed": only_failed}))


class KafkaOffsetBackingStore(OffsetBackingStore):
    def __init__(self, topic: str, client_config: dict[str, Any]) -> None:
        super().__init__()
        # Exactly-once source tasks write offsets in their transactions: read only committed ones (KIP-618).
        self.log = KafkaBasedLog(topic, client_config, self._on_record, read_committed=True)

    def start(self) -> None:
        self.log.start()

    def stop(self) -> None:
        self.log.stop()

    def refresh(self) -> None:
        self.log.read_to_end()

    def _on_record(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        with self._lock:
            self._apply({key.decode(): _json(value)})

    def put(self, connector: str, offsets: dict[str, Any]) -> None:
        for key, value in offsets.items():
            self.log.send(key.encode(), None if value is None else _dump(value), flush=False)
        self.log.flush()
        with self._lock:  # visible to this worker at once; the reader thread applies the same values again
            self._apply(offsets)


class KafkaStatusBackingStore(StatusBackingStore):
    def __init__(self, topic: str, client_config: dict[str, Any]) -> None:
        super().__init__()
        self.log = KafkaBasedLog(topic, client_config, self._on_record)
        self._write_lock = threading.Lock()

    def start(self) -> None:
        self.log.start()

    def stop(self) -> None:
        self.log.stop()

    def refresh(self) -> None:
        self.log.read_to_end()

    def _on_record(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode()
        body = _json(value)
        status = None if body is None else Status(State(body["state"]), body.get("worker_id", ""),
                                                  body.get("trace"), int(body.get("generation", 0)))
        with self._lock:
            if name.startswith("status-connector-"):
                connector = name[len("status-connector-"):]
                if status is None:
                    self.connectors.pop(connector, None)
                else:
                    self.connectors[connector] = status
            elif name.startswith("status-task-"):
                connector, _, index = name[len("status-task-"):].rpartition("-")
                if index.isdigit():
                    if status is None:
                        self.tasks.pop((connector, int(index)), None)
                    else:
                        self.tasks[(connector, int(index))] = status

    @staticmethod
    def _value(status: Status) -> bytes:
        return _dump({"state": status.state.value, "trace": status.trace, "worker_id": status.worker_id,
                      "generation": status.generation})

    def put_connector(self, connector: str, status: Status) -> None:
        super().put_connector(connector, status)
        with self._write_lock:
            self.log.send(f"status-connector-{connector}".encode(), self._value(status))

    def put_task(self, connector: str, task: int, status: Status) -> None:
        super().put_task(connector, task, status)
        with self._write_lock:
            self.log.send(f"status-task-{connector}-{task}".encode(), self._value(status))

    def forget(self, connector: str) -> None:
        tasks = [t for c, t in list(self.tasks) if c == connector]
        super().forget(connector)
        with self._write_lock:
            self.log.send(f"status-connector-{connector}".encode(), None, flush=False)
            for task in tasks:
                self.log.send(f"status-task-{connector}-{task}".encode(), None, flush=False)
            self.log.flush()

    def forget_tasks_from(self, connector: str, first_removed: int) -> None:
        tasks = [t for c, t in list(self.tasks) if c == connector and t >= first_removed]
        super().forget_tasks_from(connector, first_removed)
        with self._write_lock:
            for task in tasks:
                self.log.send(f"status-task-{connector}-{task}".encode(), None, flush=False)
            self.log.flush()
