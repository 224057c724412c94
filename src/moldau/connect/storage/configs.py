"""Connector configs, task configs and target states (ConfigBackingStore / ClusterConfigState).

The topic-backed store (`storage.kafka_stores`) writes the same records Kafka's KafkaConfigBackingStore
does — `connector-<c>`, `task-<c>-<n>`, `commit-<c>`, `target-state-<c>`, `tasks-fencing-<c>` — and folds
them into this state.

Exactly-once sources (KIP-618): every commit of task configs puts the connector in `pending_fencing`, and a
task count record (`tasks-fencing-<c>`, written by the leader after it fenced the producers of the earlier
generation's tasks) takes it out. No exactly-once task starts while its connector is pending.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from moldau.connect.runtime.status import TargetState


@dataclass(slots=True)
class ClusterConfigState:
    offset: int = -1  # position in the config topic this snapshot reflects (-1: memory store)
    connectors: dict[str, dict[str, str]] = field(default_factory=dict)
    tasks: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    targets: dict[str, TargetState] = field(default_factory=dict)
    task_count_records: dict[str, int] = field(default_factory=dict)  # the last `tasks-fencing-<c>` record
    pending_fencing: set[str] = field(default_factory=set)  # task configs newer than the task count record
    task_generations: dict[str, int] = field(default_factory=dict)  # commits of task configs seen

    def target(self, connector: str) -> TargetState:
        return self.targets.get(connector, TargetState.STARTED)

    def commit_tasks(self, connector: str, configs: list[dict[str, str]]) -> None:
        self.tasks[connector] = configs
        self.task_generations[connector] = self.task_generations.get(connector, 0) + 1
        self.pending_fencing.add(connector)

    def record_task_count(self, connector: str, count: int) -> None:
        self.task_count_records[connector] = count
        self.pending_fencing.discard(connector)

    def copy(self) -> ClusterConfigState:
        return ClusterConfigState(self.offset, {k: dict(v) for k, v in self.connectors.items()},
                                  {k: [dict(t) for t in v] for k, v in self.tasks.items()}, dict(self.targets),
                                  dict(self.task_count_records), set(self.pending_fencing),
                                  dict(self.task_generations))


class ConfigBackingStore:
    """In-memory configs (standalone mode). Listeners hear about every change (the herder reconciles)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state = ClusterConfigState()
        self.listeners: list[Callable[[], None]] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def snapshot(self) -> ClusterConfigState:
        with self._lock:
            return self.state.copy()

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    def put_connector_config(self, connector: str, config: dict[str, str], target: TargetState | None) -> None:
        with self._lock:
            self.state.connectors[connector] = dict(config)
            if target is not None:
                self.state.targets[connector] = target
        self._changed()

    def remove_connector_config(self, connector: str) -> None:
        with self._lock:
            self.state.connectors.pop(connector, None)
            self.state.tasks.pop(connector, None)
            self.state.targets.pop(connector, None)
        self._changed()

    def put_task_configs(self, connector: str, configs: list[dict[str, str]]) -> None:
        with self._lock:
            self.state.commit_tasks(connector, [dict(c) for c in configs])
        self._changed()

    def put_task_count_record(self, connector: str, count: int) -> None:
        with self._lock:
            self.state.record_task_count(connector, count)
        self._changed()

    def put_target_state(self, connector: str, target: TargetState) -> None:
        with self._lock:
            self.state.targets[connector] = target
        self._changed()

    def refresh(self, timeout_s: float = 30.0) -> None:
        """Read to the end of the config log (topic store); nothing to do in memory."""
