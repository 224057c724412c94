"""Given the group coordinator of an embedded broker, when members join, sync, leave and commit concurrently,
then the rebalance follows Kafka's classic protocol and its state survives a replay of __consumer_offsets."""

from __future__ import annotations

import asyncio
import random

import pytest

from moldau.broker.coordinator_partitions import build_group_coordinator
from moldau.coordinator.group_coordinator import JoinRequest
from moldau.coordinator.offsets import OffsetAndMetadata
from moldau.coordinator.records import OffsetCommitKey, decode_key, encode_key, partition_for
from moldau.coordinator.service import Coordinator
from moldau.protocol.errors import ErrorCode as E
from tests.fixtures import GROUP_TEST_OVERRIDES, embedded_broker, kafka_overrides

SESSION_MS = 2000


@pytest.fixture
def embedded():
    with embedded_broker(num_partitions=6, **kafka_overrides(GROUP_TEST_OVERRIDES)) as b:
        b.call(_ensure_topic(b))
        yield b


async def _ensure_topic(b) -> None:
    await b.broker.group_coordinator.log.ensure_topic()


def join_request(group: str, member_id: str = "", instance: str | None = None, meta: bytes = b"m",
                 session_ms: int = SESSION_MS) -> JoinRequest:
    return JoinRequest(group, member_id, instance, "consumer", [("range", meta)], session_ms, 3000, "c", "/h",
                       require_known_member_id=instance is None, supports_skip_assignment=True)


async def join(coordinator: Coordinator, group: str, instance: str | None = None, meta: bytes = b"m"):
    result = await coordinator.join_group(join_request(group, instance=instance, meta=meta))
    if result.error == E.MEMBER_ID_REQUIRED:
        result = await coordinator.join_group(join_request(group, result.member_id, instance, meta))
    return result


async def sync_all(coordinator: Coordinator, group: str, results) -> list:
    leader = next(r for r in results if r.members)
    assignment = {m: m.encode() for m, _, _ in leader.members}
    return await asyncio.gather(*(coordinator.sync_group(group, r.member_id, None, r.generation_id, "consumer",
                                                         "range", assignment if r is leader else {})
                                  for r in results))


def test_java_hash_partitioning_and_key_framing():
    assert partition_for("", 50) == 0
    assert partition_for("hello", 50) == 99162322 % 50
    key = encode_key(OffsetCommitKey("g", "t", 3))
    assert key[:2] == b"\x00\x01" and decode_key(key) == OffsetCommitKey("g", "t", 3)


def test_members_joining_concurrently_all_get_the_same_generation(embedded):
    async def scenario():
        coordinator = embedded.broker.group_coordinator
        first = await asyncio.gather(*(join(coordinator, "g") for _ in range(3)))
        assert {r.error for r in first} == {E.NONE} and len({r.generation_id for r in first}) == 1
        # A second wave joins while the first is between JoinGroup and SyncGroup, and rejoins.
        async def sync_then_rejoin():
            synced = await sync_all(coordinator, "g", first)
            assert {s.error for s in synced} == {E.REBALANCE_IN_PROGRESS}
            return await asyncio.gather(*(coordinator.join_group(join_request("g", r.member_id)) for r in first))

        second = await asyncio.gather(sync_then_rejoin(), *(join(coordinator, "g") for _ in range(4)))
        joined = [*second[0], *second[1:]]
        assert {r.error for r in joined} == {E.NONE}, [r.error for r in joined]
        assert len({r.generation_id for r in joined}) == 1 and joined[0].generation_id == first[0].generation_id + 1
        synced = await sync_all(coordinator, "g", joined)
        assert [s.error for s in synced] == [E.NONE] * 7
        assert [s.assignment for s in synced] == [r.member_id.encode() for r in joined]
        assert coordinator.groups["g"].state.value == "Stable"
        # Random leaves and joins at once, members behaving as clients do (rejoin on REBALANCE_IN_PROGRESS):
        # every valid member ends in the same generation; nobody is told UNKNOWN_MEMBER_ID.
        random.seed(4)
        leaving = random.sample(joined, 3)
        errors = coordinator.leave_group("g", [(r.member_id, None) for r in leaving])[1]
        assert errors == [E.NONE] * 3
        stay = [r.member_id for r in joined if r not in leaving]
        final = await asyncio.gather(*(client_loop(coordinator, "g", m) for m in [*stay, "", ""]))
        assert len({generation for _, generation, _ in final}) == 1
        assert sorted(a for _, _, a in final) == sorted(m.encode() for m, _, _ in final)
        assert len(coordinator.groups["g"].members) == 6 and coordinator.groups["g"].state.value == "Stable"
    embedded.call(scenario(), timeout=30)


async def client_loop(coordinator: Coordinator, group: str, member_id: str):
    """What a consumer does: JoinGroup, then SyncGroup (assigning if leader); rejoin while a rebalance runs."""
    while True:
        result = await coordinator.join_group(join_request(group, member_id))
        if result.error == E.MEMBER_ID_REQUIRED:
            member_id = result.member_id
            continue
        assert result.error == E.NONE, result.error
        member_id = result.member_id
        assignment = {m: m.encode() for m, _, _ in result.members}
        sync = await coordinator.sync_group(group, member_id, None, result.generation_id, None, None, assignment)
        if sync.error == E.REBALANCE_IN_PROGRESS:
            continue
        assert sync.error == E.NONE, sync.error
        return member_id, result.generation_id, sync.assignment


def test_expired_session_removes_member_and_rebalances(embedded):
    async def scenario():
        coordinator = embedded.broker.group_coordinator
        a, b = await asyncio.gather(join(coordinator, "g"), join(coordinator, "g"))
        await sync_all(coordinator, "g", [a, b])
        for _ in range(int(SESSION_MS / 400) + 3):  # only a keeps heartbeating
            await asyncio.sleep(0.4)
            error = coordinator.heartbeat("g", a.member_id, None, a.generation_id)
            if error == E.REBALANCE_IN_PROGRESS:
                break
        assert error == E.REBALANCE_IN_PROGRESS
        again = await coordinator.join_group(join_request("g", a.member_id))
        assert again.error == E.NONE and [m for m, _, _ in again.members] == [a.member_id]
        assert coordinator.heartbeat("g", b.member_id, None, a.generation_id) == E.UNKNOWN_MEMBER_ID
    embedded.call(scenario(), timeout=30)


def test_offset_commit_validation(embedded):
    async def scenario():
        coordinator = embedded.broker.group_coordinator
        assert coordinator.validate_commit("simple", "", None, -1) == E.NONE
        assert coordinator.validate_commit("unknown", "m", None, 3) == E.ILLEGAL_GENERATION
        a = await join(coordinator, "g")
        assert coordinator.validate_commit("g", a.member_id, None, a.generation_id) == E.REBALANCE_IN_PROGRESS
        await sync_all(coordinator, "g", [a])
        assert coordinator.validate_commit("g", a.member_id, None, a.generation_id) == E.NONE
        assert coordinator.validate_commit("g", a.member_id, None, a.generation_id + 1) == E.ILLEGAL_GENERATION
        assert coordinator.validate_commit("g", "stranger", None, a.generation_id) == E.UNKNOWN_MEMBER_ID
        assert coordinator.validate_commit("g", "", None, -1) == E.UNKNOWN_MEMBER_ID
    embedded.call(scenario())


def test_static_member_restart_replaces_member_id_without_rebalance(embedded):
    async def scenario():
        coordinator = embedded.broker.group_coordinator
        a, b = await asyncio.gather(join(coordinator, "g", "i-a"), join(coordinator, "g", "i-b"))
        await sync_all(coordinator, "g", [a, b])
        generation = coordinator.groups["g"].generation_id
        restarted = await join(coordinator, "g", "i-b")
        assert restarted.error == E.NONE and restarted.generation_id == generation
        assert restarted.member_id != b.member_id
        group = coordinator.groups["g"]
        assert group.state.value == "Stable" and group.static_members["i-b"] == restarted.member_id
        sync = await coordinator.sync_group("g", restarted.member_id, "i-b", generation, None, None, {})
        assert sync.error == E.NONE and sync.assignment == b.member_id.encode()
        assert coordinator.heartbeat("g", b.member_id, "i-b", generation) == E.FENCED_INSTANCE_ID
    embedded.call(scenario())


def test_state_is_a_replay_of_consumer_offsets_and_expires(embedded):
    async def scenario():
        coordinator = embedded.broker.group_coordinator
        a = await join(coordinator, "g")
        await sync_all(coordinator, "g", [a])
        offsets = {("t", 0): OffsetAndMetadata(42, 0, "meta \u00e9\x00", 1000)}
        await coordinator.commit_offsets("g", offsets)
        await coordinator.commit_offsets("simple", {("t", 1): OffsetAndMetadata(7, -1, "", 1000)})
        replayed = build_group_coordinator(embedded.broker.config, embedded.broker.replica_manager,
                                           embedded.broker.controller)
        replayed.load()
        assert replayed.offsets.of_group("g") == offsets
        group = replayed.groups["g"]
        assert (group.state.value, group.generation_id, list(group.members)) == ("Stable", 1, [a.member_id])
        assert group.members[a.member_id].assignment == a.member_id.encode()
        replayed.shutdown()
        assert await coordinator.expire_offsets(now_ms=10**15) == 1  # only the empty (simple) group's offset
        assert "simple" not in coordinator.groups and coordinator.offsets.of_group("g") == offsets
    embedded.call(scenario())
