"""Connector and task states as the REST API reports them (AbstractStatus.State, KIP-875's STOPPED)."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass


class State(enum.Enum):
    UNASSIGNED = "UNASSIGNED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    FAILED = "FAILED"
    RESTARTING = "RESTARTING"
    STOPPED = "STOPPED"
    DESTROYED = "DESTROYED"


class TargetState(enum.Enum):
    STARTED = "STARTED"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"


@dataclass(slots=True)
class Status:
    state: State
    worker_id: str
    trace: str | None = None
    generation: int = 0

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"state": self.state.value, "worker_id": self.worker_id}
        if self.trace:
            out["trace"] = self.trace
        return out


class StatusBackingStore:
    """Statuses by connector and (connector, task). The distributed herder shares them through a topic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.connectors: dict[str, Status] = {}
        self.tasks: dict[tuple[str, int], Status] = {}

    def put_connector(self, connector: str, status: Status) -> None:
        with self._lock:
            self.connectors[connector] = status

    def put_task(self, connector: str, task: int, status: Status) -> None:
        with self._lock:
            self.tasks[(connector, task)] = status

    def get_connector(self, connector: str) -> Status | None:
        with self._lock:
            return self.connectors.get(connector)

    def get_task(self, connector: str, task: int) -> Status | None:
        with self._lock:
            return self.tasks.get((connector, task))

    def forget(self, connector: str) -> None:
        with self._lock:
            self.connectors.pop(connector, None)
            for key in [k for k in self.tasks if k[0] == connector]:
                del self.tasks[key]

    def forget_tasks_from(self, connector: str, first_removed: int) -> None:
        with self._lock:
            for key in [k for k in self.tasks if k[0] == connector and k[1] >= first_removed]:
                del self.tasks[key]

    def refresh(self) -> None:
        pass

    def stop(self) -> None:
        pass
