"""Quotas on the request path: produce/fetch byte rates, request time, and connection admission.

Kafka's KIP-219 model: the broker answers at once with `throttle_time_ms` and then mutes the channel for
that long (the connection handles nothing, like Kafka's muted selector key), so a client that ignores the
throttle time is slowed anyway. Produce records the request size, Fetch the size of the data it returns,
every request its handling time as a percentage (`request_percentage`, KIP-124). KIP-612 limits how fast
connections are created, per listener (`max.connection.creation.rate`, which delays the new connection)
and per IP (`connection_creation_rate` quotas, which refuse it), and `max.connections[.per.ip]` cap them.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from moldau.clock import SYSTEM_CLOCK, Clock
from moldau.security.quota_config import IP, QuotaConfigs
from moldau.security.quota_manager import ClientQuotaManager, Rate
from moldau.security.rate_limited_log import RateLimitedLog

if TYPE_CHECKING:
    from moldau.broker.config import BrokerConfig
    from moldau.security.scram_store import SecurityMetadata

log = logging.getLogger(__name__)
refusals = RateLimitedLog(log, interval_s=10.0)
PRODUCE, FETCH = 0, 1
# Kafka exempts these from request quotas: a client must always be able to learn versions and log in.
# Fetch is left out too: its handling time here includes the long-poll wait, which Kafka (purgatory) does
# not count as request time; its bytes are what consumer_byte_rate limits.
REQUEST_QUOTA_EXEMPT = {FETCH, 17, 18, 36}


class QuotaEnforcer:
    def __init__(self, config: BrokerConfig, store: SecurityMetadata, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.configs = QuotaConfigs(store)
        samples, window = config["quota.window.num"], config["quota.window.size.seconds"]
        self.produce = ClientQuotaManager("producer_byte_rate", self.configs, samples, window, clock.monotonic)
        self.fetch = ClientQuotaManager("consumer_byte_rate", self.configs, samples, window, clock.monotonic)
        self.request = ClientQuotaManager("request_percentage", self.configs, samples, window, clock.monotonic)
        self._samples, self._window = samples, window
        self._listener_rates: dict[str, Rate] = {}
        self._ip_rates: dict[str, Rate] = {}
        self.connections_per_ip: Counter[str] = Counter()
        self.connection_count = 0

    @property
    def active(self) -> bool:
        return bool(self.configs.entries)

    # -- client quotas -----------------------------------------------------------------------------

    def after_request(self, user: str, client_id: str, api_key: int, frame_size: int, response: Any,
                      elapsed_s: float) -> int:
        """Record the request against the client's quotas; returns the throttle time in ms (0: none)."""
        throttle = 0
        if api_key == PRODUCE:
            throttle = self.produce.record(user, client_id, frame_size)
        elif api_key == FETCH and response is not None:
            throttle = self.fetch.record(user, client_id, fetch_response_size(response))
        if api_key not in REQUEST_QUOTA_EXEMPT:
            throttle = max(throttle, self.request.record(user, client_id, elapsed_s * 100))
        if throttle and response is not None and hasattr(response, "throttle_time_ms"):
            response.throttle_time_ms = max(response.throttle_time_ms or 0, throttle)
        return throttle

    # -- connection admission (KIP-612) ------------------------------------------------------------

    def admit(self, listener: str, listener_rate_limit: int, ip: str) -> tuple[bool, float]:
        """(accept?, seconds to delay the connection). Refusals are logged, rate-limited."""
        if self.connection_count >= self.config["max.connections"]:
            refusals.warning(("max", ip), "refusing a connection from %s: max.connections (%d) reached", ip,
                             self.config["max.connections"])
            return False, 0.0
        if self.connections_per_ip[ip] >= self.config["max.connections.per.ip"]:
            refusals.warning(("ip", ip), "refusing a connection from %s: max.connections.per.ip (%d) reached", ip,
                             self.config["max.connections.per.ip"])
            return False, 0.0
        now = self.clock.monotonic()
        ip_limit = self.configs.value(((IP, ip),), "connection_creation_rate")
        if ip_limit is None:
            ip_limit = self.configs.value(((IP, None),), "connection_creation_rate")
        if ip_limit is not None:
            rate = self._ip_rates.setdefault(ip, Rate(self._samples, self._window))
            rate.record(1, now)
            if rate.measure(now) > ip_limit:
                refusals.warning(("rate", ip), "refusing a connection from %s: connection_creation_rate quota %.1f/s "
                                 "exceeded (KIP-612)", ip, ip_limit)
                return False, 0.0
        delay = 0.0
        if listener_rate_limit < 2**31 - 1:
            rate = self._listener_rates.setdefault(listener, Rate(self._samples, self._window))
            rate.record(1, now)
            measured = rate.measure(now)
            if measured > listener_rate_limit:
                # Kafka's acceptor waits until the listener's rate is back under max.connection.creation.rate.
                delay = (measured - listener_rate_limit) / listener_rate_limit * rate.window_size(now)
        return True, delay

    def opened(self, ip: str) -> None:
        self.connection_count += 1
        self.connections_per_ip[ip] += 1

    def closed(self, ip: str) -> None:
        self.connection_count -= 1
        self.connections_per_ip[ip] -= 1
        if self.connections_per_ip[ip] <= 0:
            del self.connections_per_ip[ip]


def fetch_response_size(response: Any) -> int:
    size = 0
    for topic in response.responses or ():
        for partition in topic.partitions:
            records = partition.records
            if records is not None:
                size += records.size if hasattr(records, "size") else len(records)
    return size
