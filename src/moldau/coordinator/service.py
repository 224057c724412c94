"""The group coordinator as the broker uses it: membership (`GroupCoordinator`) plus offsets and admin.

Offsets follow Kafka's `OffsetMetadataManager`: commits are validated against the group's generation and
member, written as OffsetCommit records (acks=-1) and replayed into memory by the same `replay` the
loader uses; `offsets.retention.minutes` expires the offsets of empty groups.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Collection

from moldau.coordinator.classic_group import ClassicGroup, GroupState
from moldau.coordinator.consumer_group_coordinator import ConsumerGroupCoordinator
from moldau.coordinator.offsets import OffsetAndMetadata, TopicPartition
from moldau.coordinator.records import GroupMetadataKey, encode_key
from moldau.protocol.errors import ErrorCode

log = logging.getLogger(__name__)
E = ErrorCode
GROUP_TYPE_CLASSIC = "classic"


class Coordinator(ConsumerGroupCoordinator):
    # -- offsets ------------------------------------------------------------------------------------

    def validate_commit(self, group_id: str, member_id: str, instance_id: str | None, generation_id: int,
                        partitions: Collection[tuple[uuid.UUID, int]] = ()) -> ErrorCode:
        """Kafka's `ClassicGroup.validateOffsetCommit`; may create a simple group for a non-member commit.
        `partitions` (topic id, partition) are the ones committed, which KIP-1251 checks for consumer groups."""
        self.check_available(group_id)
        consumer_group = self.consumer_groups.get(group_id)
        if consumer_group is not None:
            return self.validate_consumer_commit(consumer_group, member_id, generation_id, partitions)
        group = self.groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                return E.ILLEGAL_GENERATION  # a member commit for a group this coordinator does not know
            self._create_group(group_id)
            return E.NONE
        if group.is_in(GroupState.DEAD):
            return E.COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and group.is_in(GroupState.EMPTY):
            return E.NONE  # a simple consumer's commit (assign(), no group management)
        if generation_id >= 0 or member_id or instance_id is not None:
            error = self._validate_member(group, member_id, instance_id)
            if error is not None:
                return error
            if generation_id != group.generation_id:
                return E.ILLEGAL_GENERATION
        elif not group.is_in(GroupState.EMPTY):
            return E.UNKNOWN_MEMBER_ID
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            return E.REBALANCE_IN_PROGRESS
        if member_id in group.members:
            self._reschedule_heartbeat(group, group.members[member_id])  # a commit counts as a heartbeat
        return E.NONE

    async def commit_offsets(self, group_id: str, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Write and apply validated commits; raises if the append fails (after undoing the replay)."""
        if not offsets:
            return
        previous = {tp: self.offsets.get(group_id, *tp) for tp in offsets}
        records = [self.offset_record(group_id, t, p, o) for (t, p), o in offsets.items()]
        for key, value in records:
            self.replay(key, value)
        try:
            await self.write(group_id, records)
        except Exception:
            for (topic, partition), old in previous.items():
                self.offsets.replay(group_id, topic, partition, old)
            raise

    def fetch_offsets(self, group_id: str, partitions: list[TopicPartition] | None,
                      ) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """Committed offsets of `partitions`, or of every partition the group has offsets for (None)."""
        self.check_available(group_id)
        if partitions is None:
            return dict(self.offsets.of_group(group_id))
        return {tp: self.offsets.get(group_id, *tp) for tp in partitions}

    async def delete_offsets(self, group_id: str, partitions: list[TopicPartition],
                             ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """OffsetDelete: refused for topics a non-empty consumer group still subscribes to."""
        self.check_available(group_id)
        group = self.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return E.GROUP_ID_NOT_FOUND, {}
        subscribed: set[str] = set()
        if not group.is_in(GroupState.EMPTY):
            topics = group.subscribed_topics()
            if topics is None:
                return E.NON_EMPTY_GROUP, {}
            subscribed = topics
        errors: dict[TopicPartition, ErrorCode] = {}
        records = []
        for tp in partitions:
            if tp[0] in subscribed:
                errors[tp] = E.GROUP_SUBSCRIBED_TO_TOPIC
                continue
            errors[tp] = E.NONE
            if self.offsets.get(group_id, *tp) is not None:
                records.append(self.offset_record(group_id, tp[0], tp[1], None))
        for key, value in records:
            self.replay(key, value)
        await self.write(group_id, records)
        return E.NONE, errors

    # -- admin --------------------------------------------------------------------------------------

    def list_groups(self, states: list[str], types: list[str]) -> list[ClassicGroup]:
        wanted_states = {s.lower() for s in states}
        wanted_types = {t.lower() for t in types}
        if wanted_types and GROUP_TYPE_CLASSIC not in wanted_types:
            return []
        return [g for g in self.groups.values()
                if not wanted_states or g.state.value.lower() in wanted_states]

    def describe_group(self, group_id: str) -> ClassicGroup | None:
        self.check_available(group_id)
        return self.groups.get(group_id)

    async def delete_groups(self, group_ids: list[str]) -> dict[str, ErrorCode]:
        """DeleteGroups: only empty groups; their offsets and metadata get tombstones."""
        results: dict[str, ErrorCode] = {}
        for group_id in group_ids:
            self.check_available(group_id)
            group = self.groups.get(group_id)
            if group_id in self.consumer_groups:
                results[group_id] = await self.delete_consumer_group(group_id)
            elif group is None or group.is_in(GroupState.DEAD):
                results[group_id] = E.GROUP_ID_NOT_FOUND
            elif not group.is_in(GroupState.EMPTY):
                results[group_id] = E.NON_EMPTY_GROUP
            else:
                await self._delete_group(group)
                results[group_id] = E.NONE
        return results

    async def _delete_group(self, group: ClassicGroup) -> None:
        group.transition_to(GroupState.DEAD, int(time.time() * 1000))
        self._cancel_group_timers(group.group_id)
        records = [self.offset_record(group.group_id, t, p, None)
                   for t, p in self.offsets.delete_group(group.group_id)]
        records.append((encode_key(GroupMetadataKey(group.group_id)), None))
        self.groups.pop(group.group_id, None)
        await self.write(group.group_id, records)
        log.info("deleted group %s", group.group_id)

    # -- offsets.retention.minutes ------------------------------------------------------------------

    async def expire_offsets(self, now_ms: int | None = None) -> int:
        """Tombstone offsets of empty groups (classic and KIP-848) older than the retention; drop groups left
        with nothing."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        retention_ms = self.config["offsets.retention.minutes"] * 60_000
        expired_total = 0
        for group in list(self.groups.values()):
            if not group.is_in(GroupState.EMPTY):
                continue
            # A group that used group management counts from when it became empty; a simple one from commits.
            base = group.state_timestamp_ms if group.protocol_type else None
            expired = self.offsets.expired(group.group_id, now, retention_ms, base)
            records = [self.offset_record(group.group_id, t, p, None) for t, p in expired]
            for key, value in records:
                self.replay(key, value)
            if not self.offsets.has_offsets(group.group_id) and group.generation_id >= 0:
                records.append((encode_key(GroupMetadataKey(group.group_id)), None))
                group.transition_to(GroupState.DEAD, now)
                self.groups.pop(group.group_id, None)
            if records:
                expired_total += len(expired)
                await self.write(group.group_id, records)
        for group_id, consumer_group in list(self.consumer_groups.items()):
            if consumer_group.members:
                continue
            # KIP-848 groups: an empty group's offsets expire by their commit time (Kafka's
            # ConsumerGroup.offsetExpirationCondition); an empty group left without offsets is deleted.
            expired = self.offsets.expired(group_id, now, retention_ms, None)
            if expired:
                records = [self.offset_record(group_id, t, p, None) for t, p in expired]
                for key, value in records:
                    self.replay(key, value)
                expired_total += len(expired)
                await self.write(group_id, records)
                if not self.offsets.has_offsets(group_id):
                    await self.delete_consumer_group(group_id)
        if expired_total:
            log.info("expired %d offset(s) (offsets.retention.minutes)", expired_total)
        return expired_total

    async def run_expiry(self) -> None:
        interval = self.config["offsets.retention.check.interval.ms"] / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_offsets()
            except Exception:
                log.exception("offset expiration failed; retrying")
