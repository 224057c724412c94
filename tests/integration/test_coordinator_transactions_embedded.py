"""Given the transaction coordinator of an embedded broker, when producers init, add partitions, end and
fence transactions, then its state follows Kafka's TransactionCoordinator and survives a replay of
__transaction_state, in-flight (Prepare*) transactions included."""

from __future__ import annotations

import pytest

from moldau.broker.coordinator_partitions import build_transaction_coordinator
from moldau.coordinator.transaction_coordinator import TransactionCoordinator
from moldau.coordinator.transaction_metadata import TransactionState as S
from moldau.coordinator.transaction_metadata import decode_key, encode_key
from moldau.protocol.errors import ErrorCode as E
from moldau.testing import running_broker

TOPIC = "data"


@pytest.fixture
def embedded(tmp_path):
    with running_broker(tmp_path, num_partitions=2, transaction_state_log_num_partitions=3) as b:
        b.call(_create(b))
        yield b


async def _create(b) -> None:
    await b.broker.controller.create_topic(TOPIC, 2)


def test_init_add_commit_and_the_replayed_state(embedded):
    coordinator: TransactionCoordinator = embedded.broker.transaction_coordinator

    async def scenario():
        error, pid, epoch = await coordinator.init_producer_id("tx", 60000, -1, -1)
        assert (error, epoch) == (E.NONE, 0)
        assert await coordinator.add_partitions("tx", pid, epoch, [(TOPIC, 0), (TOPIC, 1)]) == E.NONE
        assert await coordinator.add_partitions("tx", pid, epoch + 1, [(TOPIC, 0)]) == E.PRODUCER_FENCED
        assert await coordinator.add_partitions("tx", pid + 1, epoch, [(TOPIC, 0)]) == E.INVALID_PRODUCER_ID_MAPPING
        assert await coordinator.end_txn("tx", pid, epoch, committed=True) == E.NONE
        assert await coordinator.end_txn("tx", pid, epoch, committed=True) == E.NONE  # a retry
        assert await coordinator.end_txn("tx", pid, epoch, committed=False) == E.INVALID_TXN_STATE
        assert (await coordinator.init_producer_id("tx", 60000, -1, -1))[2] == 1  # the epoch is bumped
        assert (await coordinator.init_producer_id("tx", 900001, -1, -1))[0] == E.INVALID_TRANSACTION_TIMEOUT
        return pid

    pid = embedded.call(scenario())
    m = coordinator.transactions["tx"]
    assert (m.producer_id, m.producer_epoch, m.state) == (pid, 1, S.EMPTY)
    # each partition got one commit marker
    for index in (0, 1):
        assert embedded.broker.replica_manager.partition(TOPIC, index).log.log_end_offset == 1
    replayed = build_transaction_coordinator(embedded.broker.config, embedded.broker.replica_manager,
                                             embedded.broker.controller,
                                             embedded.broker.producer_id_manager, embedded.broker.group_coordinator)
    replayed.load()
    assert replayed.transactions == coordinator.transactions


def test_a_new_producer_fences_and_aborts_the_open_transaction(embedded):
    coordinator: TransactionCoordinator = embedded.broker.transaction_coordinator

    async def scenario():
        _, pid, epoch = await coordinator.init_producer_id("tx", 60000, -1, -1)
        await coordinator.add_partitions("tx", pid, epoch, [(TOPIC, 0)])
        error, new_pid, new_epoch = await coordinator.init_producer_id("tx", 60000, -1, -1)
        assert (error, new_pid, new_epoch) == (E.NONE, pid, epoch + 2)  # +1 fenced the abort, +1 for the new one
        assert await coordinator.end_txn("tx", pid, epoch, committed=True) == E.PRODUCER_FENCED

    embedded.call(scenario())
    data = embedded.broker.replica_manager.partition(TOPIC, 0).log
    assert data.log_end_offset == 1  # the abort marker
    assert coordinator.transactions["tx"].state is S.EMPTY


def test_in_flight_prepare_commit_is_completed_after_a_restart(tmp_path):
    with running_broker(tmp_path, num_partitions=2, transaction_state_log_num_partitions=3) as b:
        b.call(_create(b))
        coordinator = b.broker.transaction_coordinator

        async def prepare_only():
            _, pid, epoch = await coordinator.init_producer_id("tx", 60000, -1, -1)
            await coordinator.add_partitions("tx", pid, epoch, [(TOPIC, 1)])
            m = coordinator.transactions["tx"]
            await coordinator.state.write(m.copy(state=S.PREPARE_COMMIT))  # then a "crash" before the markers

        b.call(prepare_only())
    with running_broker(tmp_path, num_partitions=2, transaction_state_log_num_partitions=3) as b:
        coordinator = b.broker.transaction_coordinator
        b.call(coordinator.complete_in_flight())
        assert coordinator.transactions["tx"].state is S.COMPLETE_COMMIT
        assert b.broker.replica_manager.partition(TOPIC, 1).log.log_end_offset == 1


def test_records_use_kafkas_key_framing():
    key = encode_key("my-txn")
    assert key[:2] == b"\x00\x00" and decode_key(key) == "my-txn"  # int16 version 0, then TransactionLogKey


def test_idle_transactional_ids_expire_but_open_transactions_stay(embedded):
    coordinator: TransactionCoordinator = embedded.broker.transaction_coordinator
    far_future = 10**15

    async def scenario():
        await coordinator.init_producer_id("idle", 60000, -1, -1)
        _, pid, epoch = await coordinator.init_producer_id("open", 60000, -1, -1)
        await coordinator.add_partitions("open", pid, epoch, [(TOPIC, 0)])
        assert await coordinator.remove_expired_transactional_ids(now_ms=0) == []  # nothing old yet
        return await coordinator.remove_expired_transactional_ids(now_ms=far_future)

    assert embedded.call(scenario()) == ["idle"]
    assert set(coordinator.transactions) == {"open"}
    replayed = build_transaction_coordinator(embedded.broker.config, embedded.broker.replica_manager,
                                             embedded.broker.controller,
                                             embedded.broker.producer_id_manager, embedded.broker.group_coordinator)
    replayed.load()
    assert set(replayed.transactions) == {"open"}  # the tombstone is part of the log
