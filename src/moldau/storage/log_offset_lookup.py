"""Offset lookups on a partition's :class:`~moldau.storage.log.Log`: ListOffsets by timestamp (Kafka's
``UnifiedLog.fetchOffsetByTimestamp``) and OffsetForLeaderEpoch. Lock-free, like reads: they look at
one snapshot of the segment list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moldau.storage.log import Log

# ListOffsets special timestamps (Kafka's ListOffsetsRequest).
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5
EARLIEST_PENDING_UPLOAD_TIMESTAMP = -6


def fetch_offset_by_timestamp(log: Log, timestamp: int) -> tuple[int, int, int] | None:
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
    with log._storage_errors("searching by timestamp"):
        if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
            earliest = log.leader_epoch_cache.earliest_entry()
            epoch = earliest[0] if earliest is not None and earliest[1] <= log._log_start_offset else -1
            return log._log_start_offset, -1, epoch
        if timestamp == LATEST_TIMESTAMP:
            latest = log.leader_epoch_cache.latest_epoch()
            return log._log_end_offset, -1, latest if latest is not None else -1
        if timestamp in (LATEST_TIERED_TIMESTAMP, EARLIEST_PENDING_UPLOAD_TIMESTAMP):
            return -1, -1, -1
        segments = log._segments
        if timestamp == MAX_TIMESTAMP:
            best = segments[0]
            for segment in segments[1:]:
                if segment.max_timestamp_so_far > best.max_timestamp_so_far:
                    best = segment
            found = best.offset_of_max_timestamp()
            return (found[1], found[0], found[2]) if found is not None else None
        for segment in segments:
            if segment.largest_timestamp >= timestamp:
                found = segment.find_offset_by_timestamp(timestamp, log._log_start_offset)
                return (found[1], found[0], found[2]) if found is not None else None
        return None


def end_offset_for_epoch(log: Log, leader_epoch: int) -> tuple[int, int] | None:
    """OffsetForLeaderEpoch: ``(end_offset, epoch)`` (Kafka's ``OffsetAndEpoch``), None if unknown."""
    epoch, end_offset = log.leader_epoch_cache.end_offset_for(leader_epoch, log._log_end_offset)
    return None if end_offset < 0 else (end_offset, epoch)
