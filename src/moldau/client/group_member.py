"""Membership of a KIP-848 consumer group on the blocking `Client`, for `moldau consume --group`.

The coordinator computes the assignment (KIP-848's server-side assignors), so a member only heartbeats:
it joins with member epoch 0, learns its partitions from heartbeat responses, gives up revoked partitions
(committing their positions first) and acknowledges by reporting what it owns in the next heartbeat, and
leaves with epoch -1. This mirrors the Java client's `ConsumerMembershipManager`, without its threads: the
caller calls `poll()` between fetches.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from moldau.client.client import Client, ClientError
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

TopicPartition = tuple[str, int]
Request = messages.ConsumerGroupHeartbeatRequest
LEAVE_GROUP_MEMBER_EPOCH = -1  # KIP-848: a dynamic member leaves with epoch -1
REBALANCE_TIMEOUT_MS = 60_000
RETRY_BACKOFF_S = 0.1
# The coordinator is still loading, or moved: retried like the Java client does, within the request timeout.
RETRIABLE = {ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.NOT_COORDINATOR}
# The coordinator no longer knows this member as it was: give up every partition without committing, rejoin.
FENCED = {ErrorCode.FENCED_MEMBER_EPOCH, ErrorCode.UNKNOWN_MEMBER_ID}


class GroupMember:
    """One member of consumer group `group_id` subscribed to `topics`; `owned` is what it may fetch now."""

    def __init__(self, client: Client, group_id: str, topics: list[str], *,
                 on_revoke: Callable[[set[TopicPartition]], None],
                 on_lost: Callable[[set[TopicPartition]], None] | None = None, timeout_s: float = 30.0) -> None:
        self.client = client
        self.group_id = group_id
        self.topics = topics
        self.on_revoke = on_revoke
        self.on_lost = on_lost
        self.timeout_s = timeout_s
        self.member_id = str(uuid.uuid4())  # KIP-1082: the client chooses its member id
        self.member_epoch = 0
        self.owned: set[TopicPartition] = set()
        self.heartbeat_interval_s = 1.0
        self.received_assignment = False
        self.heartbeats = 0  # answered without error since this member (re)joined
        self._next_heartbeat = 0.0
        self._topic_names: dict[Any, str] = {}

    def poll(self) -> None:
        """Heartbeat if one is due (or an assignment change is still unacknowledged)."""
        if time.monotonic() >= self._next_heartbeat:
            self._heartbeat()

    def ensure_active(self) -> None:
        """Join (or rejoin) and wait for the first answer, retrying while the coordinator loads."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            error = self._heartbeat()
            if error is None:
                return
            if time.monotonic() >= deadline:
                raise ClientError(error, f"Join group {self.group_id}")
            time.sleep(RETRY_BACKOFF_S)

    def leave(self) -> None:
        """Leave the group so that its partitions move to other members now, not after the session timeout."""
        if self.member_epoch <= 0:
            return
        self.client.consumer_group_heartbeat(Request(
            group_id=self.group_id, member_id=self.member_id, member_epoch=LEAVE_GROUP_MEMBER_EPOCH))
        self.member_epoch = LEAVE_GROUP_MEMBER_EPOCH
        self.owned = set()

    def _heartbeat(self) -> ErrorCode | None:
        """One heartbeat; returns a retriable error, handles the rest (raising what cannot be handled)."""
        owned_by_id: dict[Any, list[int]] = {}
        ids = {name: topic_id for topic_id, name in self._topic_names.items()}
        for topic, partition in self.owned:
            owned_by_id.setdefault(ids[topic], []).append(partition)
        response = self.client.consumer_group_heartbeat(Request(
            group_id=self.group_id, member_id=self.member_id, member_epoch=self.member_epoch,
            rebalance_timeout_ms=REBALANCE_TIMEOUT_MS, subscribed_topic_names=self.topics,
            topic_partitions=[Request.TopicPartitions(topic_id=t, partitions=sorted(ps))
                              for t, ps in owned_by_id.items()]))
        error = ErrorCode(response.error_code)
        if error in RETRIABLE:
            self._next_heartbeat = time.monotonic() + RETRY_BACKOFF_S
            return error
        if error in FENCED:
            lost, self.owned = self.owned, set()  # lost, not revoked: another member may own them already
            if self.on_lost is not None and lost:
                self.on_lost(lost)
            self.member_epoch = 0
            self.heartbeats = 0
            self._next_heartbeat = 0.0
            return None
        if error:
            raise ClientError(error, f"Heartbeat of group {self.group_id}", response.error_message)
        self.member_epoch = response.member_epoch
        self.heartbeats += 1
        if response.heartbeat_interval_ms > 0:
            self.heartbeat_interval_s = response.heartbeat_interval_ms / 1000
        self._next_heartbeat = time.monotonic() + self.heartbeat_interval_s
        if response.assignment is not None:
            self.received_assignment = True
            self._reconcile(response.assignment)
        return None

    def _reconcile(self, assignment: Any) -> None:
        target: set[TopicPartition] = set()
        for tp in assignment.topic_partitions:
            name = self._topic_names.get(tp.topic_id) or self._resolve(tp.topic_id)
            target.update((name, p) for p in tp.partitions)
        revoked = self.owned - target
        if revoked:
            self.on_revoke(revoked)
        if target != self.owned:
            self.owned = target
            self._next_heartbeat = 0.0  # acknowledge the new assignment now: the coordinator waits for it

    def _resolve(self, topic_id: Any) -> str:
        for entry in self.client.metadata(self.topics).topics:
            self._topic_names[entry.topic_id] = entry.name
        if topic_id not in self._topic_names:
            raise ClientError(ErrorCode.UNKNOWN_TOPIC_ID, f"Assignment of group {self.group_id}: topic {topic_id}")
        return self._topic_names[topic_id]
