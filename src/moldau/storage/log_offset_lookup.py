"""Offset lookups of a partition's log: ListOffsets by timestamp (Kafka's ``UnifiedLog.fetchOffsetByTimestamp``)
and OffsetForLeaderEpoch, over the :class:`LocalLog`, the leader epoch cache and the unified log's log start
offset. Lock-free, like reads: they look at one snapshot of the segment list.
"""

from __future__ import annotations

from moldau.storage.leader_epoch_file_cache import LeaderEpochFileCache
from moldau.storage.local_log import LocalLog

# ListOffsets special timestamps (Kafka's ListOffsetsRequest).
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5
EARLIEST_PENDING_UPLOAD_TIMESTAMP = -6


def fetch_offset_by_timestamp(
    local: LocalLog, epochs: LeaderEpochFileCache, log_start_offset: int, timestamp: int
) -> tuple[int, int, int] | None:
    """ListOffsets: ``(offset, timestamp, leader_epoch)`` for ``timestamp``, or None if no record has
    a timestamp that large. Special timestamps as in Kafka's ``UnifiedLog.fetchOffsetByTimestamp``:

    - EARLIEST (-2) and EARLIEST_LOCAL (-4): the log start offset;
    - LATEST (-1): the log end offset (last offset + 1);
    - MAX_TIMESTAMP (-3): the first record carrying the largest timestamp;
    - LATEST_TIERED (-5), EARLIEST_PENDING_UPLOAD (-6): offset -1 (there is no tiered storage);
    - otherwise the first record with a timestamp >= ``timestamp`` (at or after the log start offset).

    The returned timestamp is -1 for the special values other than MAX_TIMESTAMP; an unknown leader
    epoch is -1.
    """
    with local.storage_errors("searching by timestamp"):
        if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
            earliest = epochs.earliest_entry()
            epoch = earliest[0] if earliest is not None and earliest[1] <= log_start_offset else -1
            return log_start_offset, -1, epoch
        if timestamp == LATEST_TIMESTAMP:
            latest = epochs.latest_epoch()
            return local.log_end_offset, -1, latest if latest is not None else -1
        if timestamp in (LATEST_TIERED_TIMESTAMP, EARLIEST_PENDING_UPLOAD_TIMESTAMP):
            return -1, -1, -1
        segments = local.segments
        if timestamp == MAX_TIMESTAMP:
            best = segments[0]
            for segment in segments[1:]:
                if segment.max_timestamp_so_far > best.max_timestamp_so_far:
                    best = segment
            found = best.offset_of_max_timestamp()
            return (found[1], found[0], found[2]) if found is not None else None
        for segment in segments:
            if segment.largest_timestamp >= timestamp:
                found = segment.find_offset_by_timestamp(timestamp, log_start_offset)
                return (found[1], found[0], found[2]) if found is not None else None
        return None


def end_offset_for_epoch(local: LocalLog, epochs: LeaderEpochFileCache, leader_epoch: int) -> tuple[int, int] | None:
    """OffsetForLeaderEpoch: ``(end_offset, epoch)`` (Kafka's ``OffsetAndEpoch``), None if unknown."""
    epoch, end_offset = epochs.end_offset_for(leader_epoch, local.log_end_offset)
    return None if end_offset < 0 else (end_offset, epoch)
