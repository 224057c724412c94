"""Replication throttles (KIP-73), used to bound the traffic of reassignments: Kafka's ReplicationQuotaManager.

A broker has one quota per side: `follower.replication.throttled.rate` bounds the bytes/s its replica
fetchers fetch for *throttled* replicas, `leader.replication.throttled.rate` the bytes/s it serves them as
leader. Which replicas are throttled is a topic config, `follower.replication.throttled.replicas` /
`leader.replication.throttled.replicas`: "*" (every replica of the topic) or "partition:broker,..." (the
entries naming this broker). A replica in the ISR is never throttled (Kafka's shouldFollowerThrottle /
shouldLeaderThrottle), so throttling slows a catch-up but never an acks=all produce.

The rate is measured as Kafka's `Rate` over `replication.quota.window.num` samples of
`replication.quota.window.size.seconds`: bytes in the kept samples over their elapsed time, padded to at
least (samples - 1) windows, so a quiet replica may first burst (samples - 1) windows' worth (10 s of the
rate with Kafka's defaults). When the quota is
exceeded, the follower leaves the throttled partitions out of its next Fetch (and backs off when nothing
is left), as Kafka's ReplicaFetcherThread does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

FOLLOWER_REPLICAS = "follower.replication.throttled.replicas"
LEADER_REPLICAS = "leader.replication.throttled.replicas"


def is_throttled(topic_configs: Mapping[str, str], key: str, partition: int, broker_id: int) -> bool:
    """Whether `partition`'s replica on `broker_id` is listed in the topic's throttled-replicas config `key`."""
    value = topic_configs.get(key)
    if not value:
        return False
    for entry in value.split(","):
        entry = entry.strip()
        if entry == "*":
            return True
        partition_text, _, broker_text = entry.partition(":")
        if partition_text.strip() == str(partition) and broker_text.strip() == str(broker_id):
            return True
    return False


class ReplicationQuota:
    """One side's byte rate, bounded by `limit()` (read each time: the rate is a dynamic broker config)."""

    def __init__(self, limit: Callable[[], int], window_num: int = 11, window_size_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_num = max(1, window_num)
        self.window_size_s = window_size_s
        self.clock = clock
        self._samples: deque[list[float]] = deque()  # [window start, bytes]

    def _purge(self, now: float) -> None:
        horizon = now - self.window_num * self.window_size_s
        while self._samples and self._samples[0][0] + self.window_size_s <= horizon:
            self._samples.popleft()

    def record(self, nbytes: int) -> None:
        now = self.clock()
        self._purge(now)
        if not self._samples or now >= self._samples[-1][0] + self.window_size_s:
            self._samples.append([now, 0.0])
        self._samples[-1][1] += nbytes

    def rate(self) -> float:
        now = self.clock()
        self._purge(now)
        if not self._samples:
            return 0.0
        # Kafka's Rate.windowSize: the kept samples' span, padded to at least (samples - 1) full windows.
        elapsed = now - self._samples[0][0]
        full_windows = int(elapsed // self.window_size_s)
        if full_windows < self.window_num - 1:
            elapsed += (self.window_num - 1 - full_windows) * self.window_size_s
        return sum(b for _, b in self._samples) / max(elapsed, 1e-3)

    def exceeded(self) -> bool:
        return self.rate() > self.limit()


class ReplicationQuotas:
    """This broker's two replication quotas (Kafka's `QuotaFactory` leader and follower replication quotas)."""

    def __init__(self, config: Any) -> None:  # a BrokerConfig (not imported: it is read by name only)
        get = config.__getitem__
        window_num, window_s = int(get("replication.quota.window.num")), float(get(
            "replication.quota.window.size.seconds"))
        self.leader = ReplicationQuota(lambda: int(get("leader.replication.throttled.rate")), window_num, window_s)
        self.follower = ReplicationQuota(lambda: int(get("follower.replication.throttled.rate")), window_num,
                                         window_s)


def leader_throttled(topic_configs: Mapping[str, str], partition: int, leader_id: int, isr: tuple[int, ...],
                     replica_id: int) -> bool:
    """Kafka's shouldLeaderThrottle (before the quota check): a follower outside the ISR, fetching a
    partition whose leader.replication.throttled.replicas names this (leader) broker's replica."""
    return replica_id not in isr and is_throttled(topic_configs, LEADER_REPLICAS, partition, leader_id)
