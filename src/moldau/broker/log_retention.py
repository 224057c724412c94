"""Retention (Kafka's `kafka-log-retention` task): every `log.retention.check.interval.ms`, delete the segments
past `retention.ms` or beyond `retention.bytes` (and those below a DeleteRecords log start offset).

The deletion runs in a worker thread (`LogManager.cleanup_logs`) so the event loop keeps serving; each
`Log` takes its own lock for the few microseconds it swaps the segment list, so appends on the loop
wait at most that long. Files are renamed `*.deleted` and removed after `file.delete.delay.ms`.
"""

from __future__ import annotations

import asyncio
import logging

from moldau.broker.config import BrokerConfig
from moldau.clock import SYSTEM_CLOCK, Clock
from moldau.storage.log_manager import LogManager

log = logging.getLogger(__name__)

# Kafka's LogManager.InitialTaskDelayMs: the first check comes 30 s after startup (or sooner if the
# interval is shorter, so tests with a small interval see retention at once).
INITIAL_TASK_DELAY_MS = 30_000


class LogRetention:
    def __init__(self, config: BrokerConfig, log_manager: LogManager, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.log_manager = log_manager
        self.checks = 0
        self.deleted_segments = 0
        self._inflight: asyncio.Future[int] | None = None

    def interval_s(self) -> float:
        return int(self.config["log.retention.check.interval.ms"]) / 1000

    async def run_once(self, now_ms: int | None = None) -> int:
        """Apply retention to every log now; returns the number of segments deleted."""
        now = self.clock.time_ms() if now_ms is None else now_ms
        self._inflight = asyncio.ensure_future(asyncio.to_thread(self.log_manager.cleanup_logs, now))
        # Shielded: a cancelled task must not leave the thread deleting while the broker shuts the logs.
        deleted = await asyncio.shield(self._inflight)
        self.checks += 1
        self.deleted_segments += deleted
        if deleted:
            log.info("log_retention.deleted segments=%d", deleted)
        return deleted

    async def run(self) -> None:
        try:
            await asyncio.sleep(min(INITIAL_TASK_DELAY_MS / 1000, self.interval_s()))
            while True:
                try:
                    await self.run_once()
                except Exception:  # a log closed by a concurrent topic deletion, a failed disk: retry next time
                    log.exception("log_retention.failed; retrying in %.3f s", self.interval_s())
                await asyncio.sleep(self.interval_s())
        except asyncio.CancelledError:
            if self._inflight is not None and not self._inflight.done():
                await asyncio.wait([self._inflight])
            raise
