"""How a partition's :class:`~moldau.storage.log.Log` keeps its producer state (KIP-98 idempotence and
transactions) in step with its records: duplicate detection on append, the aborted-transaction index,
the last stable offset, rebuilding after a restart or truncation, and the snapshot on close.

Locking is the Log's: each function either takes ``log._lock`` or is called with it held.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from typing import TYPE_CHECKING

from moldau.protocol.records import RecordBatchHeader
from moldau.storage.producer_state_entry import BatchMetadata, ProducerStateEntry
from moldau.storage.producer_state_manager import AppendOrigin, CompletedTxn, ProducerAppendInfo
from moldau.storage.transaction_index import AbortedTxn

if TYPE_CHECKING:
    from moldau.storage.log import Log

logger = logging.getLogger(__name__)

PRODUCER_STATE_REBUILD_READ_BYTES = 1 << 20


def record_completed(log: Log, completed: list[CompletedTxn]) -> None:
    """Index aborted transactions in the segment holding their marker (Kafka's ``updateTxnIndex``)."""
    bases, segments = log._view
    for txn in completed:
        if not txn.is_aborted:
            continue
        unstable = log.producer_state.first_unstable_offset()
        lso = txn.last_offset + 1 if unstable is None else unstable
        index = max(bisect_right(bases, txn.last_offset) - 1, 0)
        segments[index].txn_index.append(AbortedTxn(txn.producer_id, txn.first_offset, txn.last_offset, lso))


def last_stable_offset(log: Log) -> int:
    """KIP-98: read_committed consumers read below the first open transaction, never past the HW."""
    unstable = log.producer_state.first_unstable_offset()
    return log._high_watermark if unstable is None else min(unstable, log._high_watermark)


def collect_aborted_transactions(log: Log, start_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
    """Aborted transactions overlapping [start_offset, upper_bound_offset) (Kafka's
    ``collectAbortedTransactions``)."""
    bases, segments = log._view
    first = max(bisect_right(bases, start_offset) - 1, 0)
    result: list[AbortedTxn] = []
    for segment in segments[first:]:
        result.extend(segment.txn_index.collect_aborted(start_offset, upper_bound_offset))
    return result


def analyze_producer_state(
    log: Log, batches: list[tuple[int, RecordBatchHeader]], first_offset: int
) -> tuple[dict[int, ProducerAppendInfo], BatchMetadata | None]:
    with_offsets = []
    offset = first_offset
    for _, header in batches:
        with_offsets.append((header, offset))
        offset += header.last_offset_delta + 1
    return log.producer_state.analyze(with_offsets, AppendOrigin.CLIENT)


def rebuild_producer_state(log: Log) -> None:
    """Reload the producer state from the latest snapshot at or below the log end and replay the
    batches after it (Kafka's ``rebuildProducerState``), then snapshot at the log end."""
    state = log.producer_state
    end = log._log_end_offset
    state.truncate_and_reload(log._log_start_offset, end)
    offset = max(state.map_end_offset, log._log_start_offset)
    while offset < end:
        info = log.read(offset, PRODUCER_STATE_REBUILD_READ_BYTES, max_offset=end)
        if info.records is None:
            break
        next_offset, completed = state.load_from_data(info.records.read_bytes(), offset)
        if next_offset <= offset:
            break
        record_completed(log, completed)
        offset = next_offset
    state.update_map_end_offset(end)
    try:
        state.take_snapshot()
    except OSError as exc:  # a full disk: the state is in memory; a torn snapshot fails its CRC at the next load
        log.failure_channel.maybe_add_offline_log_dir(log.dir.parent, f"snapshotting {log.dir.name}", exc)


def active_producers(log: Log) -> list[ProducerStateEntry]:
    """Copies of the producers this partition knows (DescribeProducers)."""
    with log._lock:
        return [entry.copy() for entry in log.producer_state.active_producers.values()]


def remove_expired_producers(log: Log, now_ms: int, expiration_ms: int) -> int:
    """Forget producers idle longer than ``producer.id.expiration.ms``; returns how many."""
    with log._lock:
        return len(log.producer_state.remove_expired_producers(now_ms, expiration_ms))


def snapshot_producer_state_on_close(log: Log) -> None:
    """Kafka's ``UnifiedLog.close``: a synced snapshot at the log end, so a clean restart replays nothing."""
    log.producer_state.update_map_end_offset(log._log_end_offset)
    try:
        log.producer_state.take_snapshot(sync=True)
    except OSError as exc:  # a torn snapshot fails its CRC on load, and an older one is used
        log.failure_channel.maybe_add_offline_log_dir(log.dir.parent, f"snapshotting {log.dir.name}", exc)
