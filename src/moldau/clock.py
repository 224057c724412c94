"""The one injectable clock (Kafka's ``org.apache.kafka.common.utils.Time``), at the bottom of the layers:
protocol, storage, coordinator, cluster and broker may all import it; it imports nothing of Moldau.

Two readings, as in Kafka, and each site keeps the one it had:

- :meth:`Clock.time_ms`: wall-clock milliseconds since the epoch (``Time.milliseconds``), for anything
  that is stored or compared with record timestamps (commit and expiry times, segment roll, retention);
- :meth:`Clock.monotonic`: monotonic seconds (``Time.nanoseconds`` / ``hiResClockMs``), for intervals
  and deadlines that must not jump with the wall clock (session eviction, backoffs, throttling).

Code that takes a plain ``Callable[[], int]`` for the time (storage's ``now_ms`` / ``time_ms``) gets
``clock.time_ms``; its default is :func:`wall_clock_ms`. Tests pass a :class:`ManualClock`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Kafka's ``Time``: wall-clock milliseconds and monotonic seconds, injectable for tests."""

    def time_ms(self) -> int: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clocks: ``time.time_ns()`` and ``time.monotonic()``."""

    __slots__ = ()

    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()


def wall_clock_ms() -> int:
    """Wall-clock milliseconds of the system clock (the default ``now_ms`` of storage)."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class ManualClock:
    """A clock that moves only when told to (tests); both readings advance together.

    >>> clock = ManualClock(now_ms=1_000)
    >>> clock.advance(250)
    >>> clock.time_ms(), clock.monotonic()
    (1250, 0.25)
    """

    now_ms: int = 1_700_000_000_000
    monotonic_s: float = 0.0

    def time_ms(self) -> int:
        return self.now_ms

    def monotonic(self) -> float:
        return self.monotonic_s

    def advance(self, ms: int) -> None:
        self.now_ms += ms
        self.monotonic_s += ms / 1000


__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock", "wall_clock_ms"]
