"""Given the group coordinator of an embedded broker, when KIP-848 members heartbeat, then partitions move
only after their owner revoked them, stale or unknown members are fenced, and the group is a replay of its
records in __consumer_offsets."""

from __future__ import annotations

import asyncio

import pytest

from moldau.broker.coordinator_partitions import build_group_coordinator
from moldau.coordinator.consumer_group_coordinator import HeartbeatRequest
from moldau.protocol.errors import ErrorCode as E
from tests.fixtures import GROUP_TEST_OVERRIDES, embedded_broker, kafka_overrides

TOPIC = "events"


@pytest.fixture
def embedded():
    with embedded_broker(num_partitions=6, **kafka_overrides(GROUP_TEST_OVERRIDES)) as b:
        b.call(_setup(b))
        yield b


async def _setup(b) -> None:
    await b.broker.group_coordinator.log.ensure_topic()
    await b.broker.controller.create_topic(TOPIC, 6, 1)


def hb(member: str, epoch: int, owned=None, topics=(TOPIC,), group: str = "g", **extra) -> HeartbeatRequest:
    return HeartbeatRequest(group, member, epoch, rebalance_timeout_ms=30000 if epoch == 0 else -1,
                            subscribed_topic_names=list(topics) if epoch == 0 else None, owned=owned, **extra)


def parts(result) -> set[int]:
    return set().union(*result.assignment.values()) if result.assignment else set()


def test_partitions_move_only_after_revocation(embedded):
    async def scenario():
        c = embedded.broker.group_coordinator
        topic_id = embedded.broker.replica_manager.topics[TOPIC].topic_id
        a = await c.consumer_group_heartbeat(hb("a", 0))
        assert (a.error, a.member_epoch, parts(a)) == (E.NONE, 1, set(range(6)))
        b = await c.consumer_group_heartbeat(hb("b", 0))
        assert (b.error, b.member_epoch, parts(b)) == (E.NONE, 2, set())  # a still owns everything
        a = await c.consumer_group_heartbeat(hb("a", 1, {topic_id: set(range(6))}))
        assert a.member_epoch == 1 and len(parts(a)) == 3  # revoke three, keep the epoch
        kept = parts(a)
        b = await c.consumer_group_heartbeat(hb("b", 2, {}))
        assert parts(b) == set()  # not released yet
        a = await c.consumer_group_heartbeat(hb("a", 1, {topic_id: kept}))
        assert a.member_epoch == 2
        b = await c.consumer_group_heartbeat(hb("b", 2, {}))
        assert parts(b) == set(range(6)) - kept
        assert c.consumer_groups["g"].state.value == "Stable"
        # The group is a replay of its records.
        replayed = build_group_coordinator(embedded.broker.config, embedded.broker.replica_manager,
                                           embedded.broker.controller)
        replayed.load()
        group, again = c.consumer_groups["g"], replayed.consumer_groups["g"]
        assert (again.group_epoch, again.assignment_epoch) == (group.group_epoch, group.assignment_epoch)
        for m in ("a", "b"):
            old, new = group.members[m], again.members[m]
            assert (new.member_epoch, new.assigned_partitions, new.target, new.subscribed_topic_names) == (
                old.member_epoch, old.assigned_partitions, old.target, old.subscribed_topic_names)
        assert again.partition_epochs == group.partition_epochs
        replayed.shutdown()
    embedded.call(scenario(), timeout=30)


def test_fencing_leaving_and_commit_validation(embedded):
    async def scenario():
        c = embedded.broker.group_coordinator
        a = await c.consumer_group_heartbeat(hb("a", 0))
        assert (await c.consumer_group_heartbeat(hb("a", 5))).error == E.FENCED_MEMBER_EPOCH
        assert (await c.consumer_group_heartbeat(hb("zz", 1))).error == E.UNKNOWN_MEMBER_ID
        topic_id = embedded.broker.replica_manager.topics[TOPIC].topic_id
        assert c.validate_commit("g", "a", None, a.member_epoch, [(topic_id, 0)]) == E.NONE
        assert c.validate_commit("g", "a", None, a.member_epoch - 1, [(topic_id, 0)]) == E.STALE_MEMBER_EPOCH
        assert c.validate_commit("g", "a", None, a.member_epoch + 1, [(topic_id, 0)]) == E.STALE_MEMBER_EPOCH
        assert c.validate_commit("g", "x", None, 1) == E.UNKNOWN_MEMBER_ID
        assert c.validate_consumer_fetch("g", "a", a.member_epoch + 1) == E.STALE_MEMBER_EPOCH
        left = await c.consumer_group_heartbeat(hb("a", -1))
        assert (left.error, left.member_epoch) == (E.NONE, -1)
        group = c.consumer_groups["g"]
        assert not group.members and group.state.value == "Empty" and group.group_epoch == 2
        assert c.validate_commit("g", "", None, -1) == E.NONE  # admin commit to an empty group
        await c.consumer_group_heartbeat(hb("b", 0, group="busy"))
        assert await c.delete_groups(["g", "busy"]) == {"g": E.NONE, "busy": E.NON_EMPTY_GROUP}
        assert "g" not in c.consumer_groups
    embedded.call(scenario(), timeout=30)


def test_commit_with_the_epoch_before_a_bump_is_accepted_for_partitions_held_since(embedded):
    """KIP-1251 (Kafka 4.3): a member commits with the epoch it knows while the heartbeat that bumps it is in
    flight; Kafka accepts that commit for partitions it held since that epoch, and fences the rest."""
    async def scenario():
        c = embedded.broker.group_coordinator
        topic_id = embedded.broker.replica_manager.topics[TOPIC].topic_id
        await c.consumer_group_heartbeat(hb("a", 0))  # a: epoch 1, all six partitions
        await c.consumer_group_heartbeat(hb("b", 0))  # group epoch 2: a must give up three
        a = await c.consumer_group_heartbeat(hb("a", 1, {topic_id: set(range(6))}))
        kept = parts(a)
        a = await c.consumer_group_heartbeat(hb("a", 1, {topic_id: kept}))
        assert a.member_epoch == 2  # the bump that a client may not have seen when it commits
        revoked = next(iter(set(range(6)) - kept))
        for p in kept:
            assert c.validate_commit("g", "a", None, 1, [(topic_id, p)]) == E.NONE
        assert c.validate_commit("g", "a", None, 1, [(topic_id, revoked)]) == E.STALE_MEMBER_EPOCH
        assert c.validate_commit("g", "a", None, 1, [(topic_id, min(kept)), (topic_id, revoked)]) == (
            E.STALE_MEMBER_EPOCH)  # one fenced partition fences the whole commit, as in Kafka
        b = await c.consumer_group_heartbeat(hb("b", 2, {}))
        assert parts(b) == set(range(6)) - kept
        assert c.validate_commit("g", "b", None, 2, [(topic_id, revoked)]) == E.NONE
        assert c.validate_commit("g", "b", None, 1, [(topic_id, revoked)]) == E.STALE_MEMBER_EPOCH
        # The assignment epochs are in the records: a reloaded coordinator judges the same.
        replayed = build_group_coordinator(embedded.broker.config, embedded.broker.replica_manager,
                                           embedded.broker.controller)
        replayed.load()
        try:
            assert replayed.consumer_groups["g"].members["a"].assignment_epochs == (
                c.consumer_groups["g"].members["a"].assignment_epochs)
            assert replayed.validate_commit("g", "a", None, 1, [(topic_id, min(kept))]) == E.NONE
        finally:
            replayed.shutdown()
    embedded.call(scenario(), timeout=30)


def test_static_member_rejoins_with_its_assignment(embedded):
    async def scenario():
        c = embedded.broker.group_coordinator
        await c.consumer_group_heartbeat(hb("a", 0, instance_id="i-a"))
        b = await c.consumer_group_heartbeat(hb("b", 0, instance_id="i-b"))
        busy = await c.consumer_group_heartbeat(hb("b2", 0, instance_id="i-b"))
        assert busy.error == E.UNRELEASED_INSTANCE_ID
        gone = await c.consumer_group_heartbeat(hb("b", -2, instance_id="i-b"))
        assert (gone.error, gone.member_epoch) == (E.NONE, -2)
        epoch = c.consumer_groups["g"].group_epoch
        back = await c.consumer_group_heartbeat(hb("b2", 0, instance_id="i-b"))
        assert back.error == E.NONE and back.member_epoch == b.member_epoch
        assert set(c.consumer_groups["g"].members) == {"a", "b2"}
        assert c.consumer_groups["g"].group_epoch == epoch  # no rebalance
    embedded.call(scenario(), timeout=30)


def test_new_partitions_bump_the_group_epoch(embedded):
    async def scenario():
        c = embedded.broker.group_coordinator
        a = await c.consumer_group_heartbeat(hb("a", 0))
        await embedded.broker.controller.create_partitions(TOPIC, 8)
        a = await c.consumer_group_heartbeat(hb("a", a.member_epoch))
        assert a.member_epoch == 2 and parts(a) == set(range(8))
    embedded.call(scenario(), timeout=30)


def test_bad_requests_get_kafka_errors(embedded):
    async def scenario():
        c = embedded.broker.group_coordinator
        assert (await c.consumer_group_heartbeat(hb("", 0))).error == E.INVALID_REQUEST
        assert (await c.consumer_group_heartbeat(hb("a", 0, server_assignor="sticky"))).error == \
            E.UNSUPPORTED_ASSIGNOR
        bad = HeartbeatRequest("g", "a", 0, rebalance_timeout_ms=1000, subscribed_topic_regex="(")
        assert (await c.consumer_group_heartbeat(bad)).error == E.INVALID_REGULAR_EXPRESSION
        regex = HeartbeatRequest("r", "a", 0, rebalance_timeout_ms=1000, subscribed_topic_regex="ev.*")
        result = await c.consumer_group_heartbeat(regex)
        assert result.error == E.NONE and parts(result) == set(range(6))
        assert (await c.consumer_group_heartbeat(hb("a", 0, group=""))).error == E.INVALID_GROUP_ID
    embedded.call(scenario(), timeout=30)


def test_member_that_does_not_revoke_within_its_rebalance_timeout_is_fenced(embedded):
    async def scenario():
        c = embedded.broker.group_coordinator
        topic_id = embedded.broker.replica_manager.topics[TOPIC].topic_id
        slow = HeartbeatRequest("g", "slow", 0, rebalance_timeout_ms=200, subscribed_topic_names=[TOPIC])
        await c.consumer_group_heartbeat(slow)
        await c.consumer_group_heartbeat(hb("b", 0))
        a = await c.consumer_group_heartbeat(hb("slow", 1, {topic_id: set(range(6))}))
        assert len(parts(a)) == 3  # asked to revoke three; it never confirms
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while "slow" in c.consumer_groups["g"].members:  # the rebalance timer fires on the broker's loop
            assert loop.time() < deadline
            await asyncio.sleep(0.05)
        b = await c.consumer_group_heartbeat(hb("b", 2, {}))
        assert parts(b) == set(range(6))
    embedded.call(scenario(), timeout=30)


def test_offsets_of_an_empty_consumer_group_expire_and_the_group_goes(embedded):
    async def scenario():
        from moldau.coordinator.offsets import OffsetAndMetadata

        c = embedded.broker.group_coordinator
        joined = await c.consumer_group_heartbeat(hb("a", 0, group="expiring"))
        assert joined.error == E.NONE
        await c.commit_offsets("expiring", {(TOPIC, 0): OffsetAndMetadata(7, -1, "", commit_timestamp_ms=1000)})
        # A member is still there: nothing expires, however old the commit.
        assert await c.expire_offsets(now_ms=10**15) == 0
        await c.consumer_group_heartbeat(hb("a", -1, group="expiring"))
        assert await c.expire_offsets(now_ms=10**15) == 1
        assert "expiring" not in c.consumer_groups
        assert c.offsets.get("expiring", TOPIC, 0) is None
    embedded.call(scenario(), timeout=30)
