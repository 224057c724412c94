"""Warnings that a client can trigger at will, logged at a bounded rate.

Every malformed frame closes its connection with a warning; a fuzzer or a broken client reconnecting in a
loop wrote 24,680 lines for 100k frames. `RateLimitedLog` logs the first `burst` warnings of each
`interval_s`, counts the rest, and writes one summary line for them when the interval ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, what: str, *, burst: int = 20, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what  # names the warnings in the summary line
        self.burst = burst
        self.interval_s = interval_s
        self.clock = clock
        self.total = 0  # every warning since start, logged or not
        self.suppressed = 0  # in the current interval
        self._logged = 0
        self._window_start = clock()
        self._summary: asyncio.TimerHandle | None = None

    def warning(self, message: str, *args: object) -> None:
        self.total += 1
        now = self.clock()
        if now - self._window_start >= self.interval_s:
            self.flush()
            self._window_start, self._logged = now, 0
        if self._logged < self.burst:
            self._logged += 1
            self.logger.warning(message, *args)
            return
        self.suppressed += 1
        if self._summary is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: the next warning after the interval writes the summary
            self._summary = loop.call_later(max(0.0, self._window_start + self.interval_s - now), self.flush)

    def flush(self) -> None:
        """Write the summary of what was not logged, if anything."""
        if self._summary is not None:
            self._summary.cancel()
            self._summary = None
        if self.suppressed:
            self.logger.warning("%d more %s were not logged in the last %.0f s (%d since start)",
                                self.suppressed, self.what, self.interval_s, self.total)
            self.suppressed = 0
