"""The transaction coordinator (Kafka's ``TransactionCoordinator``, KIP-98, without KIP-890's TV2).

Per transactional id, requests are handled one at a time (a lock per id). Every state change is a
``__transaction_state`` record written before the answer. Ending a transaction writes PrepareCommit or
PrepareAbort, then the markers to every partition of the transaction, then CompleteCommit or
CompleteAbort; a Prepare* state found on start (a crash in between) is completed the same way.
A new InitProducerId for an id with an open transaction fences the old producer: the open transaction
is aborted with the epoch bumped (so the old producer's writes and EndTxn are refused) and the new
producer gets the next epoch. Transactions open longer than their timeout are aborted the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from moldau.clock import Clock, SystemClock
from moldau.coordinator.config import TransactionCoordinatorConfig
from moldau.coordinator.runtime import (
    CoordinatorError,
    CoordinatorLoader,
    PartitionWriter,
)
from moldau.coordinator.service import Coordinator
from moldau.coordinator.transaction_marker_writer import TransactionMarkerWriter
from moldau.coordinator.transaction_metadata import TopicPartition, TransactionMetadata, TransactionState
from moldau.coordinator.transaction_state_manager import TransactionStateManager
from moldau.protocol.errors import ErrorCode

log = logging.getLogger(__name__)
E = ErrorCode
S = TransactionState
NO_PRODUCER_ID = -1
MAX_PRODUCER_EPOCH = 32767 - 1  # Kafka bumps to a new producer id at Short.MaxValue - 1
COORDINATOR_EPOCH = 0  # one broker: the coordinator never moves


class ProducerIdGenerator(Protocol):
    """Hands out producer ids (the broker's ``ProducerIdManager``)."""

    async def generate_producer_id(self) -> int: ...


class TransactionCoordinator:
    def __init__(self, config: TransactionCoordinatorConfig, writer: PartitionWriter, loader: CoordinatorLoader,
                 producer_id_manager: ProducerIdGenerator, group_coordinator: Coordinator,
                 clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.state = TransactionStateManager(config, writer, loader, self.clock)
        self.producer_id_manager = producer_id_manager
        self.group_coordinator = group_coordinator
        self.max_timeout_ms = config.transaction_max_timeout_ms
        self.abort_interval_ms = config.transaction_abort_timed_out_transaction_cleanup_interval_ms
        self.id_expiration_ms = config.transactional_id_expiration_ms
        self.remove_interval_ms = config.transaction_remove_expired_transaction_cleanup_interval_ms
        self.markers = TransactionMarkerWriter(writer, self._on_offsets_marker, self.clock)
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def transactions(self) -> dict[str, TransactionMetadata]:
        return self.state.transactions

    def _lock(self, transactional_id: str) -> asyncio.Lock:
        return self._locks.setdefault(transactional_id, asyncio.Lock())

    def _on_offsets_marker(self, offsets_partition: int, producer_id: int, committed: bool) -> None:
        group = self.group_coordinator
        group.pending_txn_offsets.complete(offsets_partition, producer_id, committed, group.replay, group.now_ms())

    # -- lifecycle ----------------------------------------------------------------------------------

    def load(self) -> None:
        count = self.state.load()
        log.info("transaction coordinator loaded %d record(s): %d transactional id(s)", count,
                 len(self.transactions))

    async def complete_in_flight(self) -> None:
        """Finish transactions a crash left between Prepare* and Complete* (Kafka does it on load)."""
        for transactional_id, m in list(self.transactions.items()):
            if m.state.is_prepare:
                async with self._lock(transactional_id):
                    current = self.transactions.get(transactional_id)
                    if current is not None and current.state.is_prepare:
                        log.info("completing in-flight transaction %s (%s)", transactional_id,
                                 current.state.display_name)
                        await self._write_markers_and_complete(current)

    async def run(self) -> None:
        """Recover in-flight transactions, then abort timed-out ones every cleanup interval."""
        try:
            await self.complete_in_flight()
        except Exception:
            log.exception("completing in-flight transactions failed; the expiry loop retries")
        last_removal = self.clock.time_ms()
        while True:
            await asyncio.sleep(self.abort_interval_ms / 1000)
            try:
                await self.complete_in_flight()
                await self.abort_timed_out_transactions()
                if self.clock.time_ms() - last_removal >= self.remove_interval_ms:
                    last_removal = self.clock.time_ms()
                    await self.remove_expired_transactional_ids()
            except Exception:
                log.exception("transaction expiry failed; retrying")

    async def remove_expired_transactional_ids(self, now_ms: int | None = None) -> list[str]:
        """Kafka's `transactional.id.expiration.ms`: forget ids with no open transaction and no recent use."""
        now = self.clock.time_ms() if now_ms is None else now_ms
        removable = (S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT)
        removed = []
        for transactional_id, m in list(self.transactions.items()):
            if m.state in removable and m.txn_last_update_timestamp_ms + self.id_expiration_ms <= now:
                async with self._lock(transactional_id):
                    current = self.transactions.get(transactional_id)
                    if current is None or current.state not in removable or current is not m:
                        continue
                    await self.state.remove(transactional_id)
                    removed.append(transactional_id)
        if removed:
            log.info("removed %d expired transactional id(s) (transactional.id.expiration.ms)", len(removed))
        return removed

    async def abort_timed_out_transactions(self, now_ms: int | None = None) -> list[str]:
        now = self.clock.time_ms() if now_ms is None else now_ms
        aborted = []
        for transactional_id, m in list(self.transactions.items()):
            if m.state is S.ONGOING and m.txn_start_timestamp_ms + m.txn_timeout_ms < now:
                async with self._lock(transactional_id):
                    current = self.transactions.get(transactional_id)
                    if current is None or current.state is not S.ONGOING or current.producer_id != m.producer_id:
                        continue
                    log.info("aborting transaction %s of producer %d: open longer than %d ms", transactional_id,
                             current.producer_id, current.txn_timeout_ms)
                    await self._end(current, committed=False, bump_epoch=True)
                    aborted.append(transactional_id)
        return aborted

    # -- InitProducerId -----------------------------------------------------------------------------

    async def init_producer_id(self, transactional_id: str, txn_timeout_ms: int, expected_producer_id: int,
                               expected_epoch: int) -> tuple[ErrorCode, int, int]:
        """Kafka's ``handleInitProducerId`` for a transactional id: (error, producer id, epoch)."""
        self.state.check(transactional_id)
        if not 0 < txn_timeout_ms <= self.max_timeout_ms:
            return E.INVALID_TRANSACTION_TIMEOUT, NO_PRODUCER_ID, -1
        async with self._lock(transactional_id):
            m = self.transactions.get(transactional_id)
            if m is None:
                producer_id = await self.producer_id_manager.generate_producer_id()
                m = TransactionMetadata(transactional_id, producer_id, 0, txn_timeout_ms,
                                        txn_last_update_timestamp_ms=self.clock.time_ms())
                await self.state.write(m)
                log.info("init_producer_id transactional_id=%s producer_id=%d epoch=0 (new)", transactional_id,
                         producer_id)
                return E.NONE, producer_id, 0
            if expected_producer_id != NO_PRODUCER_ID and (
                    expected_producer_id != m.producer_id or expected_epoch not in (m.producer_epoch,
                                                                                    m.last_producer_epoch)):
                return E.PRODUCER_FENCED, NO_PRODUCER_ID, -1  # KIP-360: only the current producer may bump
            if m.state.is_prepare or m.state is S.PREPARE_EPOCH_FENCE:
                return E.CONCURRENT_TRANSACTIONS, NO_PRODUCER_ID, -1
            if m.state is S.ONGOING:
                # A new instance of the producer: abort what the old one left open and fence it.
                m = await self._end(m, committed=False, bump_epoch=True)
            producer_id, epoch = m.producer_id, m.producer_epoch + 1
            if epoch >= MAX_PRODUCER_EPOCH:
                producer_id, epoch = await self.producer_id_manager.generate_producer_id(), 0
            updated = m.copy(producer_id=producer_id, producer_epoch=epoch, last_producer_epoch=m.producer_epoch,
                             txn_timeout_ms=txn_timeout_ms, state=S.EMPTY, partitions=set(),
                             txn_start_timestamp_ms=-1, txn_last_update_timestamp_ms=self.clock.time_ms())
            await self.state.write(updated)
            log.info("init_producer_id transactional_id=%s producer_id=%d epoch=%d", transactional_id, producer_id,
                     epoch)
            return E.NONE, producer_id, epoch

    # -- AddPartitionsToTxn / AddOffsetsToTxn -------------------------------------------------------

    def _validate(self, m: TransactionMetadata | None, producer_id: int, epoch: int) -> ErrorCode:
        if m is None or m.producer_id != producer_id:
            return E.INVALID_PRODUCER_ID_MAPPING
        if epoch != m.producer_epoch:
            return E.PRODUCER_FENCED
        if m.state.is_prepare or m.state is S.PREPARE_EPOCH_FENCE:
            return E.CONCURRENT_TRANSACTIONS
        return E.NONE

    async def add_partitions(self, transactional_id: str, producer_id: int, epoch: int,
                             partitions: Iterable[TopicPartition]) -> ErrorCode:
        self.state.check(transactional_id)
        wanted = set(partitions)
        async with self._lock(transactional_id):
            m = self.transactions.get(transactional_id)
            error = self._validate(m, producer_id, epoch)
            if error is not E.NONE or m is None:
                return error
            if m.state is S.ONGOING and wanted <= m.partitions:
                return E.NONE
            now = self.clock.time_ms()
            start = m.txn_start_timestamp_ms if m.state is S.ONGOING else now
            await self.state.write(m.copy(state=S.ONGOING, partitions=m.partitions | wanted,
                                          txn_start_timestamp_ms=start, txn_last_update_timestamp_ms=now))
            return E.NONE

    def verify_partitions(self, transactional_id: str, producer_id: int, epoch: int,
                          partitions: Iterable[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """AddPartitionsToTxn v4 verify_only (KIP-890 part 1): are the partitions in the open transaction?"""
        m = self.transactions.get(transactional_id)
        error = self._validate(m, producer_id, epoch)
        result: dict[TopicPartition, ErrorCode] = {}
        for tp in partitions:
            if error is not E.NONE:
                result[tp] = error
            else:
                assert m is not None
                result[tp] = E.NONE if m.state is S.ONGOING and tp in m.partitions else E.INVALID_TXN_STATE
        return result

    def check_producer(self, transactional_id: str, producer_id: int, epoch: int) -> ErrorCode:
        """For TxnOffsetCommit: the producer must be the current one of an open transaction."""
        m = self.transactions.get(transactional_id)
        error = self._validate(m, producer_id, epoch)
        if error is E.NONE and m is not None and m.state is not S.ONGOING:
            return E.INVALID_TXN_STATE
        return error

    # -- EndTxn -------------------------------------------------------------------------------------

    async def end_txn(self, transactional_id: str, producer_id: int, epoch: int, committed: bool) -> ErrorCode:
        self.state.check(transactional_id)
        async with self._lock(transactional_id):
            m = self.transactions.get(transactional_id)
            if m is None or m.producer_id != producer_id:
                return E.INVALID_PRODUCER_ID_MAPPING
            if epoch != m.producer_epoch:
                return E.PRODUCER_FENCED if epoch < m.producer_epoch else E.INVALID_PRODUCER_EPOCH
            if m.state is S.ONGOING:
                await self._end(m, committed, bump_epoch=False)
                return E.NONE
            if m.state is S.COMPLETE_COMMIT:
                return E.NONE if committed else E.INVALID_TXN_STATE  # a retry of the commit
            if m.state is S.COMPLETE_ABORT:
                return E.NONE if not committed else E.INVALID_TXN_STATE
            if m.state.is_prepare:
                return E.CONCURRENT_TRANSACTIONS
            return E.INVALID_TXN_STATE

    async def _end(self, m: TransactionMetadata, committed: bool, bump_epoch: bool) -> TransactionMetadata:
        """Prepare, write markers, complete; with ``bump_epoch`` the old producer epoch is fenced."""
        epoch = m.producer_epoch + 1 if bump_epoch else m.producer_epoch
        prepare = m.copy(state=S.PREPARE_COMMIT if committed else S.PREPARE_ABORT, producer_epoch=epoch,
                         last_producer_epoch=m.producer_epoch if bump_epoch else m.last_producer_epoch,
                         txn_last_update_timestamp_ms=self.clock.time_ms())
        await self.state.write(prepare)
        return await self._write_markers_and_complete(prepare)

    async def _write_markers_and_complete(self, prepare: TransactionMetadata) -> TransactionMetadata:
        committed = prepare.state is S.PREPARE_COMMIT
        errors = await self.markers.write(prepare.producer_id, prepare.producer_epoch, COORDINATOR_EPOCH,
                                          committed, prepare.partitions)
        failed = {tp: e for tp, e in errors.items() if e is not E.NONE}
        if failed:
            # Stay in Prepare*: clients get CONCURRENT_TRANSACTIONS and the expiry loop retries the markers.
            raise CoordinatorError(E.UNKNOWN_SERVER_ERROR, f"transaction markers failed for {sorted(failed)}")
        complete = prepare.copy(state=S.COMPLETE_COMMIT if committed else S.COMPLETE_ABORT, partitions=set(),
                                txn_last_update_timestamp_ms=self.clock.time_ms())
        await self.state.write(complete)
        log.info("transaction %s of producer %d epoch %d %s on %d partition(s)", prepare.transactional_id,
                 prepare.producer_id, prepare.producer_epoch, "committed" if committed else "aborted",
                 len(prepare.partitions))
        return self.transactions[prepare.transactional_id]

    # -- admin --------------------------------------------------------------------------------------

    def list_transactions(self, states: list[str], producer_ids: list[int], min_duration_ms: int = -1,
                          ) -> list[TransactionMetadata]:
        wanted_states = {s.lower() for s in states}
        now = self.clock.time_ms()
        result = []
        for m in self.transactions.values():
            if wanted_states and m.state.display_name.lower() not in wanted_states:
                continue
            if producer_ids and m.producer_id not in producer_ids:
                continue
            if min_duration_ms >= 0 and (m.txn_start_timestamp_ms < 0
                                         or now - m.txn_start_timestamp_ms < min_duration_ms):
                continue
            result.append(m)
        return result
