"""A task running on its own thread, with pause/resume/stop and status callbacks (WorkerTask)."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moldau.connect.converters.base import Converter, HeaderConverter
from moldau.connect.runtime.errors import RetryWithToleranceOperator
from moldau.connect.runtime.status import State
from moldau.connect.runtime.transformation_chain import TransformationChain

log = logging.getLogger(__name__)

StatusListener = Callable[[State, str | None], None]


@dataclass(slots=True, frozen=True)
class ConnectorTaskId:
    connector: str
    task: int

    def __str__(self) -> str:
        return f"{self.connector}-{self.task}"


@dataclass(slots=True)
class TaskPlumbing:
    """What the worker builds for a task before its thread starts."""

    key_converter: Converter
    value_converter: Converter
    header_converter: HeaderConverter
    chain: TransformationChain
    retry: RetryWithToleranceOperator
    connector_config: dict[str, Any]
    task_config: dict[str, str]
    track_topic: Callable[[str], None] = lambda topic: None


class WorkerTask:
    def __init__(self, task_id: ConnectorTaskId, plumbing: TaskPlumbing, listener: StatusListener,
                 start_paused: bool = False) -> None:
        self.id = task_id
        self.plumbing = plumbing
        self.listener = listener
        self.stopping = threading.Event()
        self._resumed = threading.Event()
        if not start_paused:
            self._resumed.set()
        self.thread = threading.Thread(target=self._run, name=f"task-{task_id}", daemon=True)
        self.failed: BaseException | None = None

    # -- control (any thread) ---------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    def pause(self) -> None:
        if not self.paused:
            self._resumed.clear()
            self.listener(State.PAUSED, None)

    def resume(self) -> None:
        if self.paused:
            self._resumed.set()
            if self.failed is None and not self.stopping.is_set():
                self.listener(State.RUNNING, None)

    def stop(self) -> None:
        self.stopping.set()
        self._resumed.set()
        self.plumbing.retry.stopping.set()
        self.on_stop_requested()

    def await_stop(self, timeout_s: float) -> bool:
        if self.thread.is_alive():
            self.thread.join(timeout_s)
        return not self.thread.is_alive()

    # -- the thread -------------------------------------------------------------------------------

    def wait_while_paused(self) -> bool:
        """Block while paused; True if the task should keep running."""
        while not self._resumed.wait(0.5):
            if self.stopping.is_set():
                return False
        return not self.stopping.is_set()

    def _run(self) -> None:
        try:
            self.initialize_and_start()
            if not self.stopping.is_set():
                self.listener(State.PAUSED if self.paused else State.RUNNING, None)
            self.execute()
        except BaseException as exc:  # a task's failure becomes its FAILED status
            self.failed = exc
            log.error("Task %s threw an uncaught and unrecoverable exception", self.id, exc_info=exc)
            self.listener(State.FAILED, "".join(traceback.format_exception(exc)))
        finally:
            try:
                self.close()
            except Exception:
                log.exception("Task %s failed to close", self.id)
            self.plumbing.chain.close()
            if self.failed is None:
                self.listener(State.UNASSIGNED, None)

    def on_stop_requested(self) -> None:
        """Wake the task thread from a blocking call (overridden by sinks and sources)."""

    def initialize_and_start(self) -> None:
        raise NotImplementedError

    def execute(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
