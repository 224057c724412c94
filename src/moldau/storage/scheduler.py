"""One-shot background tasks of the storage layer (the ``scheduleOnce`` half of Kafka's ``Scheduler``).

Storage methods run on the broker's event loop, which must never wait for an fsync; work that Kafka hands
to its ``KafkaScheduler`` (e.g. ``UnifiedLog.roll`` scheduling ``"flush-log"`` for the segment it rolled
away from) goes to a :class:`Scheduler` instead. :class:`ThreadScheduler` runs tasks on a small thread
pool; :class:`MockScheduler` (Kafka's ``MockScheduler``) runs them only when a test says so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

log = logging.getLogger(__name__)

Task = Callable[[], object]


class Scheduler(Protocol):
    def schedule_once(self, name: str, task: Task) -> None:
        """Run ``task`` soon, off the caller's thread; its exceptions are logged, never raised."""
        ...


def _run_logged(name: str, task: Task) -> None:
    try:
        task()
    except Exception:
        log.exception("scheduler.task_failed name=%s", name)


class ThreadScheduler:
    """Tasks run on up to ``threads`` worker threads (Kafka's ``background.threads``), started lazily, so a
    broker that never rolls a segment starts none."""

    def __init__(self, threads: int = 2, name: str = "kafka-scheduler") -> None:
        self._threads = threads
        self._name = name
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[Future[None]] = set()

    def schedule_once(self, name: str, task: Task) -> None:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix=self._name)
            future = self._executor.submit(_run_logged, name, task)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait for the tasks scheduled so far (tests, and a shutdown that must not race them)."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.result(timeout_s)

    def shutdown(self) -> None:
        """Finish the scheduled tasks and stop the threads; later tasks start a new pool."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


class MockScheduler:
    """Keeps tasks until :meth:`run_pending` (Kafka's ``MockScheduler``): deterministic unit tests."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, Task]] = []

    def schedule_once(self, name: str, task: Task) -> None:
        self.pending.append((name, task))

    def run_pending(self) -> int:
        """Run every task scheduled so far (and any they schedule); returns how many ran."""
        ran = 0
        while self.pending:
            name, task = self.pending.pop(0)
            _run_logged(name, task)
            ran += 1
        return ran


_shared: ThreadScheduler | None = None
_shared_lock = threading.Lock()


def shared_scheduler() -> ThreadScheduler:
    """The process-wide scheduler of logs opened without one (a :class:`LogManager` passes its own)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ThreadScheduler(name="log-scheduler")
        return _shared
