"""Log lines that an attacker can trigger at will (failed logins) at most once per interval per key."""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable

MAX_KEYS = 10_000


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger = logger
        self._interval = interval_s
        self._last: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def warning(self, key: Hashable, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        if len(self._last) >= MAX_KEYS:
            self._last.clear()
            self._suppressed.clear()
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} similar line(s) suppressed)"
        self._logger.warning(message, *args)
