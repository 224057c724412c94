"""Appends to a partition's log (Kafka's ``UnifiedLog.appendAsLeader``/``appendAsFollower`` and the
coordinator's transaction markers): validation (``log_validator``), offsets, leader epochs and producer
state, then the bytes to the :class:`~moldau.storage.local_log.LocalLog`. Never fsyncs.

:class:`AppendTarget` names the parts of the unified :class:`~moldau.storage.log.Log` an append uses, so
this module does not import the Log; each function takes the local log's lock.
"""

from __future__ import annotations

from typing import Protocol

from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import InvalidRecordError, assign_offsets, read_batch_header
from moldau.storage import log_producer_state
from moldau.storage.append_info import AppendInfo
from moldau.storage.errors import UnexpectedAppendOffsetError
from moldau.storage.leader_epoch_file_cache import LeaderEpochFileCache
from moldau.storage.local_log import LocalLog
from moldau.storage.log_validator import PRODUCER, validate_records, validate_replica_batches
from moldau.storage.producer_state_manager import AppendOrigin, ProducerStateManager, control_marker


class AppendTarget(Protocol):
    local: LocalLog
    producer_state: ProducerStateManager
    leader_epoch_cache: LeaderEpochFileCache

    @property
    def log_start_offset(self) -> int: ...


def append_as_leader(
    p: AppendTarget,
    records: bytes | bytearray | memoryview,
    *,
    leader_epoch: int,
    now_ms: int,
    in_place: bool = False,
    compression_type: str = PRODUCER,
) -> AppendInfo:
    """Validate produced batches (``log_validator``, once; re-encoded if the topic's
    ``compression.type`` is another codec), give them offsets from the log end, and write them.
    Never fsyncs.

    Raises :class:`InvalidRecordError` (with the Kafka error code) for a batch Kafka would refuse.
    """
    config = p.local.config
    validated = validate_records(records, config, now_ms, compression_type=compression_type,
                                 topic_partition=p.local.dir.name)
    batches = validated.batches
    valid_bytes = validated.valid_bytes
    view = memoryview(validated.records)[:valid_bytes]
    # The broker hands over a view of a request frame that nobody reads again (`in_place`): patch
    # offsets into it rather than copying the batch once more. Anything else is copied first
    # (a re-encoded batch is our own buffer already).
    buf = view if (in_place or validated.recompressed) and not view.readonly else bytearray(view)
    p.local.check_fits_segment(valid_bytes)
    log_append_time = now_ms if config.log_append_time else None
    with p.local.lock, p.local.storage_errors("appending"):
        p.local.check_writable()
        first_offset = offset = p.local.log_end_offset
        producer_appends = None
        if any(header.producer_id >= 0 for _, header in batches):
            producer_appends, duplicate = log_producer_state.analyze_producer_state(
                p.producer_state, batches, first_offset
            )
            if duplicate is not None:
                # A producer's retry: Kafka answers with the original batch's offsets and no error.
                return AppendInfo(duplicate.first_offset, duplicate.last_offset, duplicate.timestamp,
                                  p.log_start_offset, 0)
        max_timestamp, offset_of_max_timestamp, num_messages = -1, -1, 0
        for pos, header in batches:
            assign_offsets(buf, pos, offset, leader_epoch, log_append_time)
            last = offset + header.last_offset_delta
            timestamp = log_append_time if log_append_time is not None else header.max_timestamp
            if timestamp > max_timestamp:
                max_timestamp, offset_of_max_timestamp = timestamp, last
            num_messages += header.records_count
            offset = last + 1
        if leader_epoch >= 0:
            p.leader_epoch_cache.assign(leader_epoch, first_offset)
        p.local.append(buf, first_offset, offset - 1, max_timestamp, offset_of_max_timestamp, now_ms)
        if producer_appends:
            for producer_append in producer_appends.values():
                p.producer_state.update(producer_append)
        p.producer_state.update_map_end_offset(offset)
        return AppendInfo(
            first_offset=first_offset,
            last_offset=offset - 1,
            log_append_time=now_ms if log_append_time is not None else -1,
            log_start_offset=p.log_start_offset,
            num_messages=num_messages,
            max_timestamp=max_timestamp,
            valid_bytes=valid_bytes,
        )

def append_as_follower(
    p: AppendTarget, records: bytes | bytearray | memoryview, *, now_ms: int | None = None
) -> AppendInfo:
    """Append batches that already carry offsets and epochs (replication), after checking their
    structure and CRC. The first offset must be >= the log end offset (Kafka's
    UnexpectedAppendOffsetException otherwise); gaps are allowed (compacted leaders)."""
    now = p.local.now_ms() if now_ms is None else now_ms
    headers = validate_replica_batches(records)
    if not headers:
        return AppendInfo(-1, -1, -1, p.log_start_offset, 0)
    valid_bytes = sum(h.size_in_bytes for _, h in headers)
    p.local.check_fits_segment(valid_bytes)
    with p.local.lock, p.local.storage_errors("appending as follower"):
        p.local.check_writable()
        first, last = headers[0][1].base_offset, headers[-1][1].last_offset
        if first < p.local.log_end_offset:
            raise UnexpectedAppendOffsetError(
                f"first offset {first} of a follower append to {p.local.dir.name} is below the log end offset "
                f"{p.local.log_end_offset}"
            )
        max_timestamp, offset_of_max_timestamp = -1, -1
        for _, header in headers:
            if header.max_timestamp > max_timestamp:
                max_timestamp, offset_of_max_timestamp = header.max_timestamp, header.last_offset
            if header.partition_leader_epoch >= 0:
                p.leader_epoch_cache.assign(header.partition_leader_epoch, header.base_offset)
        data = memoryview(records)[:valid_bytes]
        p.local.append(data, first, last, max_timestamp, offset_of_max_timestamp, now)
        # Markers too (Kafka's appendAsFollower → updateProducers / completeTxn / updateTxnIndex): a follower
        # that becomes leader must know which transactions ended and index the aborted ones, or its
        # read_committed readers would see aborted records and stop at a transaction that long ended.
        for pos, header in headers:  # batch by batch, so each aborted txn is indexed with the LSO of its time
            if header.producer_id < 0:
                continue
            if not header.is_control:
                p.producer_state.load_from_batches([header])
                continue
            marker = control_marker(data, pos)
            if marker is not None:
                completed = p.producer_state.apply_marker(header.producer_id, header.producer_epoch, marker[0],
                                                          marker[1], header.base_offset, header.max_timestamp,
                                                          AppendOrigin.REPLICATION)
                if completed is not None:
                    log_producer_state.record_completed(p.producer_state, p.local.segment_view, [completed])
        p.producer_state.update_map_end_offset(last + 1)
        return AppendInfo(
            first_offset=first,
            last_offset=last,
            log_append_time=-1,
            log_start_offset=p.log_start_offset,
            num_messages=sum(h.records_count for _, h in headers),
            max_timestamp=max_timestamp,
            valid_bytes=valid_bytes,
        )

def append_as_coordinator(p: AppendTarget, batch: bytes, *, leader_epoch: int, now_ms: int) -> AppendInfo:
    """Append one batch a coordinator built: a transaction marker (ends the producer's open transaction
    and, for an abort, records it in the segment's ``.txnindex``), or transactional data without
    sequence numbers (TxnOffsetCommit records).

    Raises :class:`InvalidProducerEpochError` if a marker's epoch is older than the producer's.
    """
    header = read_batch_header(batch)
    marker = control_marker(batch, 0) if header.is_control else None
    if header.producer_id < 0 or not header.is_transactional or (header.is_control and marker is None):
        raise InvalidRecordError(ErrorCode.INVALID_RECORD, "a coordinator append must be transactional")
    buf = bytearray(batch)
    with p.local.lock, p.local.storage_errors("appending a coordinator batch"):
        p.local.check_writable()
        offset = p.local.log_end_offset
        last = offset + header.last_offset_delta
        completed = None
        if marker is not None:
            info = p.producer_state.prepare_update(header.producer_id, AppendOrigin.CLIENT)
            completed = info.append_end_txn_marker(marker[0], marker[1], header.producer_epoch, offset,
                                                   now_ms)
        else:
            info = p.producer_state.prepare_update(header.producer_id, AppendOrigin.REPLICATION)
            info.append_data_batch(header.producer_epoch, header.base_sequence, header.base_sequence,
                                   header.max_timestamp, offset, last, True)
        assign_offsets(buf, 0, offset, leader_epoch, None)
        if leader_epoch >= 0:
            p.leader_epoch_cache.assign(leader_epoch, offset)
        p.local.append(buf, offset, last, header.max_timestamp, last, now_ms)
        p.producer_state.update(info)
        p.producer_state.update_map_end_offset(last + 1)
        if completed is not None:
            log_producer_state.record_completed(p.producer_state, p.local.segment_view, [completed])
        return AppendInfo(first_offset=offset, last_offset=last, log_append_time=-1,
                          log_start_offset=p.log_start_offset, num_messages=header.records_count,
                          max_timestamp=header.max_timestamp, valid_bytes=len(buf))

# -- producer state (log_producer_state) ----------------------------------------------------------------
