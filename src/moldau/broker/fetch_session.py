"""Incremental fetch sessions (KIP-227), as Kafka's `FetchSession` / `FetchSessionCache`.

A client opens a session with a full fetch (session id 0, epoch 0). Later requests with the
session id and the next epoch list only partitions that changed; the broker remembers the rest
and answers with only the partitions that have news (records, an error, or moved offsets).
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from moldau.clock import SYSTEM_CLOCK, Clock
from moldau.protocol.errors import ErrorCode

INITIAL_EPOCH = 0
FINAL_EPOCH = -1
INVALID_SESSION_ID = 0

PartitionKey = tuple[Any, int]  # (topic name or topic id, partition index)


@dataclass(slots=True)
class CachedPartition:
    fetch_offset: int
    max_bytes: int
    current_leader_epoch: int
    # What the client was last told; a change means the partition goes into the next incremental response.
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1

    def needs_response(self, high_watermark: int, last_stable_offset: int, log_start_offset: int) -> bool:
        changed = (
            high_watermark != self.high_watermark
            or last_stable_offset != self.last_stable_offset
            or log_start_offset != self.log_start_offset
        )
        self.high_watermark = high_watermark
        self.last_stable_offset = last_stable_offset
        self.log_start_offset = log_start_offset
        return changed


@dataclass(slots=True)
class FetchSession:
    session_id: int
    epoch: int
    partitions: OrderedDict[PartitionKey, CachedPartition] = field(default_factory=OrderedDict)
    last_used: float = field(default_factory=time.monotonic)


class FetchSessionError(Exception):
    def __init__(self, error_code: ErrorCode) -> None:
        super().__init__(error_code.name)
        self.error_code = error_code


class FetchSessionCache:
    """Kafka's `max.incremental.fetch.session.cache.slots` (1000) sessions, least recently used evicted."""

    def __init__(self, max_sessions: int = 1000, eviction_ms: int = 120_000, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.max_sessions = max_sessions
        self.eviction_s = eviction_ms / 1000
        self.sessions: OrderedDict[int, FetchSession] = OrderedDict()

    def _new_id(self) -> int:
        while True:
            session_id = random.randint(1, 2**31 - 1)
            if session_id not in self.sessions:
                return session_id

    def create(self) -> FetchSession | None:
        now = self.clock.monotonic()
        while self.sessions:
            oldest_id, oldest = next(iter(self.sessions.items()))
            if len(self.sessions) < self.max_sessions and now - oldest.last_used < self.eviction_s:
                break
            del self.sessions[oldest_id]
        if len(self.sessions) >= self.max_sessions:
            return None
        session = FetchSession(self._new_id(), epoch=1)
        self.sessions[session.session_id] = session
        return session

    def get(self, session_id: int, epoch: int) -> FetchSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise FetchSessionError(ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
        if session.epoch != epoch:
            raise FetchSessionError(ErrorCode.INVALID_FETCH_SESSION_EPOCH)
        session.epoch += 1
        session.last_used = self.clock.monotonic()
        self.sessions.move_to_end(session_id)
        return session

    def remove(self, session_id: int) -> None:
        self.sessions.pop(session_id, None)
