"""How a partition's log keeps its producer state (KIP-98 idempotence and transactions) in step with its
records: duplicate detection on append, the aborted-transaction index, the last stable offset, rebuilding
after a restart or truncation, and the snapshot on close.

Functions over the :class:`ProducerStateManager` and the :class:`LocalLog` (segments, reads), called by the
unified :class:`~moldau.storage.log.Log` with its lock held; they never see the Log itself.
"""

from __future__ import annotations

import logging
from bisect import bisect_right

from moldau.protocol.records import RecordBatchHeader
from moldau.storage.local_log import LocalLog, SegmentView
from moldau.storage.producer_state_entry import BatchMetadata
from moldau.storage.producer_state_manager import (
    AppendOrigin,
    CompletedTxn,
    ProducerAppendInfo,
    ProducerStateManager,
)
from moldau.storage.transaction_index import AbortedTxn

logger = logging.getLogger(__name__)

PRODUCER_STATE_REBUILD_READ_BYTES = 1 << 20


def record_completed(state: ProducerStateManager, view: SegmentView, completed: list[CompletedTxn]) -> None:
    """Index aborted transactions in the segment holding their marker (Kafka's ``updateTxnIndex``)."""
    bases, segments = view
    for txn in completed:
        if not txn.is_aborted:
            continue
        unstable = state.first_unstable_offset()
        lso = txn.last_offset + 1 if unstable is None else unstable
        index = max(bisect_right(bases, txn.last_offset) - 1, 0)
        segments[index].txn_index.append(AbortedTxn(txn.producer_id, txn.first_offset, txn.last_offset, lso))


def last_stable_offset(state: ProducerStateManager, high_watermark: int) -> int:
    """KIP-98: read_committed consumers read below the first open transaction, never past the HW."""
    unstable = state.first_unstable_offset()
    return high_watermark if unstable is None else min(unstable, high_watermark)


def collect_aborted_transactions(view: SegmentView, start_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
    """Aborted transactions overlapping [start_offset, upper_bound_offset) (Kafka's
    ``collectAbortedTransactions``)."""
    bases, segments = view
    first = max(bisect_right(bases, start_offset) - 1, 0)
    result: list[AbortedTxn] = []
    for segment in segments[first:]:
        result.extend(segment.txn_index.collect_aborted(start_offset, upper_bound_offset))
    return result


def analyze_producer_state(
    state: ProducerStateManager, batches: list[tuple[int, RecordBatchHeader]], first_offset: int
) -> tuple[dict[int, ProducerAppendInfo], BatchMetadata | None]:
    with_offsets = []
    offset = first_offset
    for _, header in batches:
        with_offsets.append((header, offset))
        offset += header.last_offset_delta + 1
    return state.analyze(with_offsets, AppendOrigin.CLIENT)


def rebuild_producer_state(state: ProducerStateManager, local: LocalLog, log_start_offset: int) -> None:
    """Reload the producer state from the latest snapshot at or below the log end and replay the
    batches after it (Kafka's ``rebuildProducerState``), then snapshot at the log end."""
    end = local.log_end_offset
    state.truncate_and_reload(log_start_offset, end)
    offset = max(state.map_end_offset, log_start_offset)
    while offset < end:
        info = local.read(offset, PRODUCER_STATE_REBUILD_READ_BYTES, end, True, log_start_offset)
        if info.records is None:
            break
        next_offset, completed = state.load_from_data(info.records.read_bytes(), offset)
        if next_offset <= offset:
            break
        record_completed(state, local.segment_view, completed)
        offset = next_offset
    state.update_map_end_offset(end)
    try:
        state.take_snapshot()
    except OSError as exc:  # a full disk: the state is in memory; a torn snapshot fails its CRC at the next load
        local.failure_channel.maybe_add_offline_log_dir(local.dir.parent, f"snapshotting {local.dir.name}", exc)


def snapshot_producer_state_on_close(state: ProducerStateManager, local: LocalLog) -> None:
    """Kafka's ``UnifiedLog.close``: a synced snapshot at the log end, so a clean restart replays nothing."""
    state.update_map_end_offset(local.log_end_offset)
    try:
        state.take_snapshot(sync=True)
    except OSError as exc:  # a torn snapshot fails its CRC on load, and an older one is used
        local.failure_channel.maybe_add_offline_log_dir(local.dir.parent, f"snapshotting {local.dir.name}", exc)
