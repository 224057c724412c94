"""The log manager's periodic durability tasks (Kafka's ``LogManager.startup`` schedules them):

- ``kafka-log-flusher``, every ``log.flush.scheduler.interval.ms``: :meth:`LogManager.flush_dirty_logs`, the
  one flush policy (``flush.ms``, ``flush.messages``, rolled segments not yet fsynced). Each roll also
  schedules its own flush at once (``Log`` on the storage scheduler), so this task is the time-based part.
  Kafka's default interval is ``Long.MAX_VALUE`` (the task never runs, so ``flush.ms`` alone does nothing);
  Moldau then checks every 500 ms, as it always has, so a topic's ``flush.ms`` works on its own.
- ``kafka-recovery-point-checkpoint``, every ``log.flush.offset.checkpoint.interval.ms``: the recovery
  points (and the high watermarks) to the checkpoint files, so that a crash recovers only what follows them.
- ``kafka-log-start-offset-checkpoint``, every ``log.flush.start.offset.checkpoint.interval.ms``.

Each runs in a worker thread (they fsync); a cancelled task lets the thread finish before the broker closes
the logs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from moldau.broker.config import LONG_MAX, BrokerConfig
from moldau.clock import SYSTEM_CLOCK, Clock
from moldau.storage.log_manager import LogManager

log = logging.getLogger(__name__)

DEFAULT_FLUSH_CHECK_MS = 500  # when log.flush.scheduler.interval.ms is Kafka's "never"


class LogFlusher:
    def __init__(self, config: BrokerConfig, log_manager: LogManager, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.log_manager = log_manager

    def flush_check_interval_ms(self) -> int:
        configured = int(self.config["log.flush.scheduler.interval.ms"])
        return DEFAULT_FLUSH_CHECK_MS if configured >= LONG_MAX else configured

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        """The coroutines to run as background tasks of the broker."""
        manager = self.log_manager
        return [
            _every("kafka-log-flusher", self.flush_check_interval_ms(),
                   lambda: manager.flush_dirty_logs(self.clock.time_ms())),
            _every("kafka-recovery-point-checkpoint", int(self.config["log.flush.offset.checkpoint.interval.ms"]),
                   manager.checkpoint_recovery_offsets_and_high_watermarks),
            _every("kafka-log-start-offset-checkpoint",
                   int(self.config["log.flush.start.offset.checkpoint.interval.ms"]),
                   manager.checkpoint_log_start_offsets),
        ]


async def _every(name: str, interval_ms: int, work: Callable[[], object]) -> None:
    interval_s = interval_ms / 1000
    inflight: asyncio.Future[object] | None = None
    try:
        while True:
            await asyncio.sleep(interval_s)
            inflight = asyncio.ensure_future(asyncio.to_thread(work))
            try:
                await asyncio.shield(inflight)
            except Exception:  # a log closed by a topic deletion, a failed disk: try again next time
                log.exception("%s failed; retrying in %.3f s", name, interval_s)
    except asyncio.CancelledError:
        if inflight is not None and not inflight.done():
            await asyncio.wait([inflight])
        raise
