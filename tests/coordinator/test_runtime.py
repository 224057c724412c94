"""Given the coordinators on the coordinator runtime over an in-memory partition log, with no network and a
fake clock, when an append fails, then the shard's state is what it was before the operation (offset
commit, classic join/sync, KIP-848 heartbeat, transaction state change), the client gets the coordinator
error Kafka maps the append error to, and what was written replays into the same state."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys

import pytest

from moldau.clock import ManualClock
from moldau.coordinator.classic_group import GroupState
from moldau.coordinator.consumer_group_coordinator import HeartbeatRequest
from moldau.coordinator.group_coordinator import JoinRequest
from moldau.coordinator.offsets import OffsetAndMetadata
from moldau.coordinator.records import OFFSETS_TOPIC
from moldau.coordinator.runtime import (
    CoordinatorError,
    CoordinatorResult,
    CoordinatorRuntime,
    TopicSpec,
)
from moldau.coordinator.transaction_metadata import TRANSACTION_STATE_TOPIC
from moldau.coordinator.transaction_metadata import TransactionState as S
from moldau.protocol.errors import ErrorCode as E
from tests.coordinator.conftest import InMemoryPartitionWriter, group_coordinator, transaction_coordinator

TIMEOUT_S = 10


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT_S))


def test_no_network_socket_can_be_opened():
    import socket

    with pytest.raises(RuntimeError):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_coordinator_package_imports_nothing_from_the_broker():
    code = ("import sys, pkgutil, importlib, moldau.coordinator as c\n"
            "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('moldau.coordinator.' + m.name)\n"
            "print(sorted(m for m in sys.modules if m.startswith('moldau.broker')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# -- the runtime itself ----------------------------------------------------------------------------


class Counter:
    def __init__(self, runtime_registry) -> None:
        self.values: dict[bytes, bytes | None] = {}
        self.registry = runtime_registry

    def replay(self, key: bytes, value: bytes | None, timestamp_ms: int) -> None:
        if self.registry.active:
            previous, existed = self.values.get(key), key in self.values
            self.registry.record(lambda: self.values.__setitem__(key, previous) if existed
                                 else self.values.pop(key, None))
        self.values[key] = value


def make_runtime(writer: InMemoryPartitionWriter) -> tuple[CoordinatorRuntime, Counter]:
    runtime = CoordinatorRuntime(TopicSpec("__state", 2, 1, {}), writer, writer, lambda *a: None, ManualClock())
    state = Counter(runtime.registry)
    runtime.replay = state.replay
    return runtime, state


def test_runtime_writes_replays_and_reverts_in_one_order(writer):
    runtime, state = make_runtime(writer)

    async def scenario():
        assert await runtime.write("a", lambda: CoordinatorResult([(b"k", b"1")], "ok")) == "ok"
        assert state.values == {b"k": b"1"} and writer.records("__state") == 1
        writer.fail_next(E.KAFKA_STORAGE_ERROR)
        with pytest.raises(CoordinatorError) as failed:
            await runtime.write("a", lambda: CoordinatorResult([(b"k", b"2"), (b"j", b"3")], "no"))
        assert failed.value.error_code == E.NOT_COORDINATOR  # Kafka: a failed disk -> find the coordinator
        assert state.values == {b"k": b"1"} and writer.records("__state") == 1

        def raising() -> CoordinatorResult[None]:
            state.replay(b"k", b"4", 0)
            raise ValueError("bug")

        with pytest.raises(ValueError):
            await runtime.write("a", raising)
        assert state.values == {b"k": b"1"}

    run(scenario())


def test_runtime_loads_and_unloads_shards(writer):
    runtime, _ = make_runtime(writer)

    async def scenario():
        await runtime.write("a", lambda: CoordinatorResult([(b"k", b"1")], None))
        partition = runtime.partition_of("a")
        reloaded, reloaded_state = make_runtime(writer)
        assert reloaded.load_all() == 1 and reloaded_state.values == {b"k": b"1"}
        reloaded.unload(partition)
        with pytest.raises(CoordinatorError) as unloaded:
            await reloaded.write("a", lambda: CoordinatorResult([(b"k", b"2")], None))
        assert unloaded.value.error_code == E.NOT_COORDINATOR
        assert reloaded.load(partition) == 1
        await reloaded.write("a", lambda: CoordinatorResult([(b"k", b"2")], None))
        assert reloaded_state.values == {b"k": b"2"}

    run(scenario())


# -- offsets ---------------------------------------------------------------------------------------


def test_failed_offset_commit_reverts_the_offset_and_the_simple_group(writer, clock):
    async def scenario():
        c = group_coordinator(writer, clock)
        c.load()
        first = {("t", 0): OffsetAndMetadata(5, -1, "", clock.time_ms())}
        await c.commit_offsets("g", first)
        writer.fail_next()
        with pytest.raises(CoordinatorError) as failed:
            await c.commit_offsets("g", {("t", 0): OffsetAndMetadata(9, -1, "", clock.time_ms()),
                                         ("t", 1): OffsetAndMetadata(3, -1, "", clock.time_ms())})
        assert failed.value.error_code == E.NOT_COORDINATOR
        assert c.fetch_offsets("g", None) == first
        writer.fail_next(E.NOT_ENOUGH_REPLICAS)
        with pytest.raises(CoordinatorError) as failed:
            await c.commit_offsets("h", {("t", 2): OffsetAndMetadata(1, -1, "", clock.time_ms())})
        assert failed.value.error_code == E.COORDINATOR_NOT_AVAILABLE
        assert "h" not in c.groups and c.fetch_offsets("h", None) == {}
        replayed = group_coordinator(writer, clock)
        replayed.load()
        assert replayed.fetch_offsets("g", None) == first and "h" not in replayed.groups

    run(scenario())


def test_offsets_expire_on_the_fake_clock_and_unload_drops_the_shard(writer, clock):
    async def scenario():
        c = group_coordinator(writer, clock)
        c.load()
        await c.commit_offsets("g", {("t", 0): OffsetAndMetadata(5, -1, "", clock.time_ms())})
        clock.advance(c.config.offsets_retention_minutes * 60_000 - 1)
        assert await c.expire_offsets() == 0
        clock.advance(1)
        assert await c.expire_offsets() == 1
        assert "g" not in c.groups and c.fetch_offsets("g", None) == {}
        await c.commit_offsets("k", {("t", 0): OffsetAndMetadata(1, -1, "", clock.time_ms())})
        c.unload_partition(c.log.partition_of("k"))
        assert "k" not in c.groups
        with pytest.raises(CoordinatorError) as unloaded:
            c.fetch_offsets("k", None)
        assert unloaded.value.error_code == E.NOT_COORDINATOR
        c.load_partition(c.log.partition_of("k"))
        assert c.fetch_offsets("k", None)[("t", 0)].committed_offset == 1

    run(scenario())


# -- classic groups --------------------------------------------------------------------------------


def join_request(member_id: str = "", instance: str | None = None) -> JoinRequest:
    return JoinRequest("cg", member_id, instance, "consumer", [("range", b"meta")], 1000, 1000, "c", "/h",
                       require_known_member_id=False, supports_skip_assignment=True)


def test_failed_sync_reverts_the_assignment_and_rebalances(writer, clock):
    async def scenario():
        c = group_coordinator(writer, clock)
        c.load()
        joined = await c.join_group(join_request())
        assert joined.error == E.NONE and joined.leader == joined.member_id
        group = c.groups["cg"]
        assert group.is_in(GroupState.COMPLETING_REBALANCE)
        writer.fail_next()
        synced = await c.sync_group("cg", joined.member_id, None, joined.generation_id, "consumer", "range",
                                    {joined.member_id: b"assignment"})
        assert synced.error == E.NOT_COORDINATOR
        assert group.members[joined.member_id].assignment == b""  # reverted, never handed out
        assert group.is_in(GroupState.PREPARING_REBALANCE)
        assert writer.records(OFFSETS_TOPIC) == 0
        c.shutdown()

    run(scenario())


def test_failed_static_member_rejoin_puts_the_old_member_back(writer, clock):
    async def scenario():
        c = group_coordinator(writer, clock)
        c.load()
        joined = await c.join_group(join_request(instance="i1"))
        synced = await c.sync_group("cg", joined.member_id, "i1", joined.generation_id, "consumer", "range",
                                    {joined.member_id: b"a"})
        assert synced.error == E.NONE and synced.assignment == b"a"
        group = c.groups["cg"]
        writer.fail_next()
        rejoined = await c.join_group(join_request(instance="i1"))
        assert rejoined.error == E.NOT_COORDINATOR
        assert group.static_members == {"i1": joined.member_id}
        assert list(group.members) == [joined.member_id] and group.leader_id == joined.member_id
        assert group.members[joined.member_id].assignment == b"a" and group.is_in(GroupState.STABLE)
        rejoined = await c.join_group(join_request(instance="i1"))
        assert rejoined.error == E.NONE and group.static_members["i1"] == rejoined.member_id != joined.member_id
        # A member parked in JoinGroup when the shard is unloaded gets NOT_COORDINATOR (Kafka's onUnloaded).
        parked = asyncio.ensure_future(c.join_group(join_request(instance="i2")))  # waits for i1 to rejoin
        await asyncio.sleep(0)  # one loop turn: the join runs up to its parked future
        assert not parked.done()
        c.unload_partition(c.log.partition_of("cg"))
        assert (await parked).error == E.NOT_COORDINATOR and "cg" not in c.groups
        c.shutdown()

    run(scenario())


# -- KIP-848 consumer groups -----------------------------------------------------------------------


def hb(member: str, epoch: int, topics: list[str] | None = None) -> HeartbeatRequest:
    return HeartbeatRequest("kg", member, epoch, rebalance_timeout_ms=1000 if epoch == 0 else -1,
                            subscribed_topic_names=topics)


def test_failed_heartbeat_reverts_the_consumer_group(writer, clock):
    async def scenario():
        c = group_coordinator(writer, clock)
        c.load()
        writer.fail_next()
        failed = await c.consumer_group_heartbeat(hb("m1", 0, ["t"]))
        assert failed.error == E.NOT_COORDINATOR and "kg" not in c.consumer_groups
        joined = await c.consumer_group_heartbeat(hb("m1", 0, ["t"]))
        assert joined.error == E.NONE and joined.member_epoch == 1
        assert sum(len(p) for p in joined.assignment.values()) == 3
        before = copy.deepcopy(c.consumer_groups["kg"])
        epoch = before.group_epoch
        writer.fail_next()
        failed = await c.consumer_group_heartbeat(hb("m2", 0, ["t"]))  # would bump the epoch, move partitions
        assert failed.error == E.NOT_COORDINATOR
        assert c.consumer_groups["kg"] == before  # every field of the group and of its members
        writer.fail_next()
        failed = await c.consumer_group_heartbeat(hb("m1", 1, []))  # would drop its subscription
        assert failed.error == E.NOT_COORDINATOR and not writer.failures and c.consumer_groups["kg"] == before
        group = c.consumer_groups["kg"]
        assert group.group_epoch == epoch and list(group.members) == ["m1"]
        replayed = group_coordinator(writer, clock)
        replayed.load()
        assert replayed.consumer_groups["kg"].group_epoch == epoch
        assert list(replayed.consumer_groups["kg"].members) == ["m1"]
        c.shutdown()
        replayed.shutdown()

    run(scenario())


# -- transactions ----------------------------------------------------------------------------------


def test_failed_transaction_state_change_reverts_the_transaction(writer, clock):
    async def scenario():
        groups = group_coordinator(writer, clock)
        groups.load()
        c = transaction_coordinator(writer, clock, groups)
        c.load()
        writer.fail_next()
        with pytest.raises(CoordinatorError) as failed:
            await c.init_producer_id("tx", 60_000, -1, -1)
        assert failed.value.error_code == E.NOT_COORDINATOR and "tx" not in c.transactions
        error, producer_id, epoch = await c.init_producer_id("tx", 60_000, -1, -1)
        assert error == E.NONE and epoch == 0
        writer.fail_next()
        with pytest.raises(CoordinatorError):
            await c.add_partitions("tx", producer_id, epoch, [(OFFSETS_TOPIC, 0)])
        assert c.transactions["tx"].state is S.EMPTY and not c.transactions["tx"].partitions
        assert await c.add_partitions("tx", producer_id, epoch, [(OFFSETS_TOPIC, 0)]) == E.NONE
        assert await c.end_txn("tx", producer_id, epoch, committed=True) == E.NONE
        assert c.transactions["tx"].state is S.COMPLETE_COMMIT
        c.state.unload_partition(c.state.partition_of("tx"))
        with pytest.raises(CoordinatorError) as unloaded:
            await c.end_txn("tx", producer_id, epoch, committed=True)
        assert unloaded.value.error_code == E.NOT_COORDINATOR
        replayed = transaction_coordinator(writer, clock, groups)
        replayed.load()
        assert replayed.transactions["tx"].state is S.COMPLETE_COMMIT
        assert writer.records(TRANSACTION_STATE_TOPIC) == 4  # init, add, prepare, complete
        groups.shutdown()

    run(scenario())


def test_failed_transactional_offset_commit_holds_nothing_and_commit_marker_applies_the_rest(writer, clock):
    async def scenario():
        groups = group_coordinator(writer, clock)
        groups.load()
        c = transaction_coordinator(writer, clock, groups)
        c.load()
        _, producer_id, epoch = await c.init_producer_id("tx", 60_000, -1, -1)
        partition = groups.log.partition_of("g")
        assert await c.add_partitions("tx", producer_id, epoch, [(OFFSETS_TOPIC, partition)]) == E.NONE
        offset = OffsetAndMetadata(7, -1, "", clock.time_ms())
        writer.fail_next()
        with pytest.raises(CoordinatorError) as failed:
            await groups.commit_transactional_offsets("g", producer_id, epoch,
                                                      [groups.offset_record("g", "t", 0, offset)])
        assert failed.value.error_code == E.NOT_COORDINATOR
        assert not groups.pending_txn_offsets.has_pending(producer_id)
        await groups.commit_transactional_offsets("g", producer_id, epoch, [groups.offset_record("g", "t", 1, offset)])
        assert groups.pending_txn_offsets.pending_partitions("g") == {("t", 1)}
        assert groups.fetch_offsets("g", None) == {}  # held until the marker
        assert await c.end_txn("tx", producer_id, epoch, committed=True) == E.NONE
        assert groups.fetch_offsets("g", None) == {("t", 1): offset}
        replayed = group_coordinator(writer, clock)
        replayed.load()
        assert replayed.fetch_offsets("g", None) == {("t", 1): offset}
        groups.shutdown()

    run(scenario())
