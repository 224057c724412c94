"""The herder: the REST API's view of the cluster, and the loop that makes the worker run what is assigned
to it (Kafka's AbstractHerder + StandaloneHerder/DistributedHerder's tick).

Every change (new config, target state, restart, new assignment) leads to `reconcile()`, which compares what
should run on this worker with what does, and starts, stops or restarts connectors and tasks to match.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from moldau.connect.api.errors import AlreadyExistsException, BadRequestException, NotFoundException
from moldau.connect.plugins import Plugins, plugins
from moldau.connect.runtime import offsets_admin
from moldau.connect.runtime.connector_config import check_connector_config, is_sink, validate_connector_config
from moldau.connect.runtime.status import State, Status, StatusBackingStore, TargetState
from moldau.connect.runtime.worker import Worker
from moldau.connect.runtime.worker_task import ConnectorTaskId
from moldau.connect.storage.configs import ClusterConfigState, ConfigBackingStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Assignment:
    connectors: set[str] = field(default_factory=set)
    tasks: set[ConnectorTaskId] = field(default_factory=set)


class Herder:
    def __init__(self, worker: Worker, config_store: ConfigBackingStore, status_store: StatusBackingStore,
                 plugin_registry: Plugins | None = None) -> None:
        self.worker = worker
        self.config_store = config_store
        self.status_store = status_store
        self.plugins = plugin_registry or plugins()
        self._lock = threading.RLock()
        self._running_configs: dict[str, dict[str, str]] = {}  # connector config each running thing started with
        self._running_task_configs: dict[ConnectorTaskId, dict[str, str]] = {}
        self.worker.on_reconfiguration_request = lambda name: self.request_reconcile()

    # -- what this worker should run --------------------------------------------------------------

    def assignment(self, state: ClusterConfigState) -> Assignment:
        """Standalone: everything. The distributed herder returns its group assignment."""
        return Assignment(set(state.connectors),
                          {ConnectorTaskId(c, i) for c, tasks in state.tasks.items() for i in range(len(tasks))})

    def request_reconcile(self) -> None:
        self.reconcile()

    def reconcile(self) -> None:
        with self._lock:
            state = self.config_store.snapshot()
            wanted = self.assignment(state)
            self._reconcile_connectors(state, wanted)
            state = self.config_store.snapshot()  # task configs the connectors just generated
            self._reconcile_tasks(state, self.assignment(state))

    def _reconcile_connectors(self, state: ClusterConfigState, wanted: Assignment) -> None:
        for name in list(self.worker.connectors):
            if name not in wanted.connectors or state.connectors.get(name) != self._running_configs.get(name):
                self.worker.stop_connector(name)
                self._running_configs.pop(name, None)
                if name not in state.connectors:
                    self.status_store.forget(name)
        for name in sorted(wanted.connectors):
            config = state.connectors.get(name)
            if config is None:
                continue
            target = state.target(name)
            if name not in self.worker.connectors:
                self._running_configs[name] = dict(config)
                if not self.worker.start_connector(name, config, target):
                    continue
            else:
                self.worker.set_target_state(name, target)
            self._update_task_configs(name, state, target)

    def _update_task_configs(self, name: str, state: ClusterConfigState, target: TargetState) -> None:
        """The connector's owner (re)generates task configs; STOPPED connectors have none (KIP-875)."""
        if name not in self.worker.connectors:
            return
        if target is TargetState.STOPPED:
            new: list[dict[str, str]] = []
        elif target is TargetState.PAUSED and name in state.tasks:
            return
        else:
            try:
                new = self.worker.connector_task_configs(name)
            except Exception as exc:
                log.error("Connector %s failed to generate task configs", name, exc_info=exc)
                self.worker._connector_failed(name, exc)
                return
        if state.tasks.get(name) != new:
            old_count = len(state.tasks.get(name, []))
            if not self.write_task_configs(name, new):
                return
            if len(new) < old_count:
                self.status_store.forget_tasks_from(name, len(new))

    def write_task_configs(self, name: str, configs: list[dict[str, str]]) -> bool:
        """Write a connector's task configs; False if they could not be written yet (retried on the next
        reconcile). Distributed mode forwards them to the group's leader."""
        self.config_store.put_task_configs(name, configs)
        return True

    def _reconcile_tasks(self, state: ClusterConfigState, wanted: Assignment) -> None:
        stale = []
        for task_id in self.worker.task_ids():
            tasks = state.tasks.get(task_id.connector, [])
            config = tasks[task_id.task] if task_id.task < len(tasks) else None
            if task_id not in wanted.tasks or config is None or config != self._running_task_configs.get(task_id) \
                    or state.connectors.get(task_id.connector) != self._running_configs.get(
                        f"task:{task_id}"):
                stale.append(task_id)
        self.worker.stop_tasks(stale)
        for task_id in stale:
            self._running_task_configs.pop(task_id, None)
            self._running_configs.pop(f"task:{task_id}", None)
        running = set(self.worker.task_ids())
        for task_id in sorted(wanted.tasks, key=lambda t: (t.connector, t.task)):
            tasks = state.tasks.get(task_id.connector, [])
            connector_config = state.connectors.get(task_id.connector)
            if task_id.task >= len(tasks) or connector_config is None:
                continue
            if task_id in running:
                target = state.target(task_id.connector)
                task = self.worker.tasks.get(task_id)
                if task is not None:
                    (task.resume if target is TargetState.STARTED else task.pause)()
                continue
            self._running_task_configs[task_id] = dict(tasks[task_id.task])
            self._running_configs[f"task:{task_id}"] = dict(connector_config)
            self.worker.start_task(task_id, connector_config, tasks[task_id.task], state.target(task_id.connector))

    # -- REST operations --------------------------------------------------------------------------

    def _config(self, name: str) -> dict[str, str]:
        config = self.config_store.snapshot().connectors.get(name)
        if config is None:
            raise NotFoundException(f"Connector {name} not found")
        return config

    def connectors(self) -> list[str]:
        return sorted(self.config_store.snapshot().connectors)

    def connector_type(self, name: str) -> str:
        config = self._config(name)
        try:
            return "sink" if is_sink(self.plugins.load("connector", config["connector.class"])) else "source"
        except Exception:  # noqa: BLE001 - an unloadable class is reported as unknown, like Kafka
            return "unknown"

    def connector_info(self, name: str) -> dict[str, Any]:
        state = self.config_store.snapshot()
        if name not in state.connectors:
            raise NotFoundException(f"Connector {name} not found")
        return {"name": name, "config": state.connectors[name],
                "tasks": [{"connector": name, "task": i} for i in range(len(state.tasks.get(name, [])))],
                "type": self.connector_type(name)}

    def validate(self, config: dict[str, str]) -> dict[str, Any]:
        return validate_connector_config(self.plugins, config, self.worker.config.override_policy)

    def put_connector_config(self, name: str, config: dict[str, str], allow_replace: bool,
                             initial_state: TargetState | None = None) -> tuple[bool, dict[str, Any]]:
        config = {str(k): str(v) for k, v in config.items()}
        config.setdefault("name", name)
        if config["name"] != name:
            raise BadRequestException(f"Connector name configuration ({config['name']}) doesn't match connector "
                                      f"name in the URL ({name})")
        with self._lock:
            exists = name in self.config_store.snapshot().connectors
            if exists and not allow_replace:
                raise AlreadyExistsException(f"Connector {name} already exists")
            check_connector_config(self.plugins, config, self.worker.config.override_policy)
            self.config_store.put_connector_config(name, config, None if exists else
                                                   (initial_state or TargetState.STARTED))
            self.config_store.refresh()
            self.request_reconcile()
        return not exists, self.connector_info(name)

    def delete_connector(self, name: str) -> None:
        with self._lock:
            self._config(name)
            self.config_store.remove_connector_config(name)
            self.config_store.refresh()
            self.request_reconcile()
            self.status_store.forget(name)

    def connector_status(self, name: str) -> dict[str, Any]:
        state = self.config_store.snapshot()
        if name not in state.connectors:
            raise NotFoundException(f"No status found for connector {name}")
        self.status_store.refresh()
        status = self.status_store.get_connector(name) or Status(State.UNASSIGNED, self.worker.worker_id)
        tasks = []
        for i in range(len(state.tasks.get(name, []))):
            task_status = self.status_store.get_task(name, i) or Status(State.UNASSIGNED, self.worker.worker_id)
            tasks.append({"id": i, **task_status.to_json()})
        return {"name": name, "connector": status.to_json(), "tasks": tasks, "type": self.connector_type(name)}

    def task_status(self, name: str, task: int) -> dict[str, Any]:
        state = self.config_store.snapshot()
        if name not in state.connectors or task >= len(state.tasks.get(name, [])):
            raise NotFoundException(f"No status found for task {name}-{task}")
        self.status_store.refresh()
        status = self.status_store.get_task(name, task) or Status(State.UNASSIGNED, self.worker.worker_id)
        return {"id": task, **status.to_json()}

    def task_configs(self, name: str) -> list[dict[str, Any]]:
        self._config(name)
        tasks = self.config_store.snapshot().tasks.get(name, [])
        return [{"id": {"connector": name, "task": i}, "config": config} for i, config in enumerate(tasks)]

    def set_target_state(self, name: str, target: TargetState) -> None:
        with self._lock:
            self._config(name)
            self.config_store.put_target_state(name, target)
            self.config_store.refresh()
            self.request_reconcile()

    def restart_connector(self, name: str, include_tasks: bool, only_failed: bool) -> dict[str, Any] | None:
        """KIP-745: restart the connector and/or its tasks, optionally only the FAILED ones."""
        with self._lock:
            status = self.connector_status(name)
            restart_connector = not only_failed or status["connector"]["state"] == State.FAILED.value
            tasks = [t["id"] for t in status["tasks"]
                     if include_tasks and (not only_failed or t["state"] == State.FAILED.value)]
            if restart_connector:
                self.status_store.put_connector(name, Status(State.RESTARTING, self.worker.worker_id))
            for task in tasks:
                self.status_store.put_task(name, task, Status(State.RESTARTING, self.worker.worker_id))
            accepted = self.connector_status(name)
            self.submit_restart(name, include_tasks, only_failed, restart_connector, tasks)
        return accepted if (include_tasks or only_failed) else None

    def restart_task(self, name: str, task: int) -> None:
        self.task_status(name, task)
        with self._lock:
            self.do_restart(name, False, [task])

    def submit_restart(self, name: str, include_tasks: bool, only_failed: bool, connector: bool,
                       tasks: list[int]) -> None:
        self.do_restart(name, connector, tasks)

    def do_restart(self, name: str, connector: bool, tasks: list[int]) -> None:
        """Restart what runs here (the distributed herder forwards the rest to the owners)."""
        if connector and name in self.worker.connectors:
            self.worker.stop_connector(name)
            self._running_configs.pop(name, None)
        ids = [ConnectorTaskId(name, t) for t in tasks]
        self.worker.stop_tasks([t for t in ids if t in self.worker.tasks])
        for task_id in ids:
            self._running_task_configs.pop(task_id, None)
        self.reconcile()

    def start(self) -> None:
        """Standalone: nothing to join; the distributed herder joins its group here."""

    def stop(self) -> None:
        self.worker.stop()

    # -- KIP-875 offsets, KIP-558 active topics -----------------------------------------------------

    def connector_offsets(self, name: str) -> dict[str, Any]:
        self._config(name)
        if self.connector_type(name) == "sink":
            return offsets_admin.sink_offsets(self.worker.config.client_config("admin"), name)
        return offsets_admin.source_offsets(self.worker.offset_store, name)

    def _require_stopped(self, name: str) -> dict[str, str]:
        config = self._config(name)
        state = self.config_store.snapshot()
        if state.target(name) is not TargetState.STOPPED or state.tasks.get(name):
            raise BadRequestException("Connectors must be in the STOPPED state before their offsets can be modified. "
                                      "This can be done for the specified connector by issuing a 'PUT' request to "
                                      f"the '/connectors/{name}/stop' endpoint")
        return config

    def modify_offsets(self, name: str, body: Any | None) -> dict[str, str]:
        """PATCH (body) or DELETE (None) the connector's offsets; the connector must be STOPPED."""
        with self._lock:
            config = self._require_stopped(name)
            reset = body is None
            offsets = [] if reset else offsets_admin.parse_offsets_body(body)
            connector = self.plugins.new("connector", config["connector.class"])
            accepted = connector.alter_offsets(config, {json.dumps(p, sort_keys=True): o for p, o in offsets})
            admin = self.worker.config.client_config("admin")
            if self.connector_type(name) == "sink":
                if reset:
                    offsets_admin.reset_sink_offsets(admin, name)
                else:
                    offsets_admin.alter_sink_offsets(admin, name, offsets)
            elif reset:
                offsets_admin.reset_source_offsets(self.worker.offset_store, name)
            else:
                offsets_admin.alter_source_offsets(self.worker.offset_store, name, offsets)
            return offsets_admin.modified_message(bool(accepted), reset)

    def active_topics(self, name: str) -> list[str]:
        self._config(name)
        return sorted(self.worker.active_topics.get(name, set()))

    def reset_active_topics(self, name: str) -> None:
        self._config(name)
        self.worker.active_topics.pop(name, None)
