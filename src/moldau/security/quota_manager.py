"""Kafka's client quota enforcement (ClientQuotaManager): sampled rates and throttle times.

Each quota type (produce bytes, fetch bytes, request time as a percentage) keeps one rate per quota
entity that applies to a client (KIP-55's precedence: user+client, user, client, and their defaults).
When the rate goes over the quota, the throttle time is Kafka's `(rate - quota) / quota * window`:
how long the client must stay silent for the rate over the window to come back to the quota.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from moldau.security.quota_config import CLIENT_ID, USER, Entity, QuotaConfigs, precedence

MAX_THROTTLE_MS = 2**31 - 1


class Rate:
    """Kafka's SampledStat Rate: `samples` buckets of `window_s`; the rate is over at least samples-1 buckets."""

    __slots__ = ("_samples", "_starts", "_values", "_window", "last_record")

    def __init__(self, samples: int, window_s: float) -> None:
        self._samples = samples
        self._window = window_s
        self._starts: list[float] = []
        self._values: list[float] = []
        self.last_record = 0.0

    def record(self, value: float, now: float) -> None:
        self._purge(now)
        if not self._starts or now - self._starts[-1] >= self._window:
            self._starts.append(now)
            self._values.append(0.0)
            if len(self._starts) > self._samples:
                del self._starts[0], self._values[0]
        self._values[-1] += value
        self.last_record = now

    def _purge(self, now: float) -> None:
        horizon = self._samples * self._window
        while self._starts and now - self._starts[0] > horizon:
            del self._starts[0], self._values[0]

    def window_size(self, now: float) -> float:
        elapsed = now - self._starts[0] if self._starts else 0.0
        full = elapsed // self._window
        minimum = self._samples - 1
        if full < minimum:
            elapsed += (minimum - full) * self._window
        return elapsed

    def measure(self, now: float) -> float:
        self._purge(now)
        return sum(self._values) / self.window_size(now)


class ClientQuotaManager:
    """One quota type: `key` is its config (e.g. producer_byte_rate); `scale` turns recorded units into quota units."""

    def __init__(self, key: str, configs: QuotaConfigs, samples: int, window_s: float,
                 clock: Callable[[], float]) -> None:
        self.key = key
        self._configs = configs
        self._samples = samples
        self._window = window_s
        self._clock = clock
        self._rates: dict[tuple[str, str], Rate] = {}
        self._lookup: dict[tuple[str, str], tuple[float, tuple[str, str]] | None] = {}
        self._version = -1

    @property
    def active(self) -> bool:
        return any(self.key in values for values in self._configs.entries.values())

    def quota(self, user: str, client_id: str) -> tuple[float, tuple[str, str]] | None:
        """(quota, rate key) for this client, or None when no quota applies."""
        if self._version != self._configs.version:
            self._lookup.clear()
            self._version = self._configs.version
        found = self._lookup.get((user, client_id), False)
        if found is not False:
            return found  # type: ignore[return-value]
        result = None
        for entity in precedence(user, client_id):
            value = self._configs.value(entity, self.key)
            if value is not None:
                result = (value, _rate_key(entity, user, client_id))
                break
        self._lookup[(user, client_id)] = result
        return result

    def record(self, user: str, client_id: str, value: float) -> int:
        """Record `value` against the client's quota; returns the throttle time in ms (0: within quota)."""
        quota = self.quota(user, client_id)
        if quota is None:
            return 0
        limit, key = quota
        now = self._clock()
        rate = self._rates.get(key)
        if rate is None:
            rate = self._rates[key] = Rate(self._samples, self._window)
            self._expire(now)
        rate.record(value, now)
        return _throttle_ms(rate, limit, now)

    def throttle_ms(self, user: str, client_id: str) -> int:
        """The throttle time now, without recording anything (a fetch checks this before reading)."""
        quota = self.quota(user, client_id)
        if quota is None:
            return 0
        rate = self._rates.get(quota[1])
        return 0 if rate is None else _throttle_ms(rate, quota[0], self._clock())

    def unrecord(self, user: str, client_id: str, value: float) -> None:
        quota = self.quota(user, client_id)
        rate = None if quota is None else self._rates.get(quota[1])
        if rate is not None:
            rate.record(-value, self._clock())

    def _expire(self, now: float) -> None:
        """Forget rates idle for an hour (Kafka's inactive sensor expiration)."""
        if len(self._rates) % 1024 == 0:
            for key in [k for k, r in self._rates.items() if now - r.last_record > 3600]:
                del self._rates[key]


def _rate_key(entity: Entity, user: str, client_id: str) -> tuple[str, str]:
    # KIP-55: a default user/client quota applies to each user/client separately.
    types = {t for t, _ in entity}
    return (user if USER in types else "", client_id if CLIENT_ID in types else "")


def _throttle_ms(rate: Rate, limit: float, now: float) -> int:
    value = rate.measure(now)
    if value <= limit:
        return 0
    return min(MAX_THROTTLE_MS, math.ceil((value - limit) / limit * rate.window_size(now) * 1000))
