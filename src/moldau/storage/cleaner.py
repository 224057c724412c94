"""One cleaning pass over one compacted log (Kafka's ``Cleaner``, inside ``LogCleaner.scala``).

1. Build an offset map (key -> latest offset) over the dirty section, from the first dirty offset up to
   the first uncleanable offset, until the map is full (``log.cleaner.dedupe.buffer.size``).
2. Rewrite every segment below the map's end, in groups of at most ``segment.bytes``: a record stays if
   it is its key's latest, or past the map's end. A tombstone (null value) stays until its batch's
   delete horizon (v2 ``hasDeleteHorizonMs`` attribute, the horizon in ``baseTimestamp``; KIP-534), set
   to now + ``delete.retention.ms`` the first time a clean keeps it. Batches keep their base offset,
   producer id/epoch/base sequence, leader epoch and codec; a batch whose records all stay is copied
   as it is, otherwise the bytes of the records that stay are (see :mod:`cleaner_records`).
3. Each group becomes one ``*.cleaned`` segment, swapped in with :meth:`Log.replace_segments`.

Plain synchronous code: the :class:`~moldau.storage.log_cleaner.LogCleaner` thread runs it. It reads
immutable (non-active) segments without the log's lock and takes the lock only for the swap. Between
batches, at least every millisecond, it calls ``pause`` (``time.sleep(0)``) so that the event loop
thread gets the GIL back.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import (
    DELETE_HORIZON_MASK,
    HEADER_SIZE,
    LOG_OVERHEAD,
    RecordBatchHeader,
    decode_batch,
    read_batch_header,
)
from moldau.storage.cleaner_records import (
    ScannedRecord,
    batch_payload,
    build_retained_batch,
    copy_retained_records,
    scan_records,
)
from moldau.storage.errors import StorageError
from moldau.storage.log import Log
from moldau.storage.log_cleaner_manager import LogToClean

# Kept importable from here (callers of the compacted-key check, tests); it lives in the validator.
from moldau.storage.log_validator import validate_compacted_keys  # noqa: F401
from moldau.storage.offset_map import SkimpyOffsetMap
from moldau.storage.segment import (
    CLEANED_FILE_SUFFIX,
    LogSegment,
    log_file,
    offset_index_file,
    time_index_file,
)

log = logging.getLogger(__name__)

READ_CHUNK = 512 * 1024  # log.cleaner.io.buffer.size
PAUSE_INTERVAL_S = 0.001
_BATCH_LENGTH = struct.Struct(">i")


class CleaningAbortedError(StorageError):
    """The clean was stopped (shutdown, log deleted or changed); nothing was swapped in."""

    error_code = ErrorCode.UNKNOWN_SERVER_ERROR  # internal: the cleaner retries later


@dataclass(slots=True)
class CleanerStats:
    """What one clean did (Kafka's ``CleanerStats``); logged as one line per clean."""

    bytes_read: int = 0
    bytes_written: int = 0
    map_bytes_read: int = 0
    map_messages_read: int = 0
    messages_read: int = 0
    messages_written: int = 0
    invalid_messages: int = 0
    segments: int = 0
    start_s: float = field(default_factory=time.monotonic)
    map_done_s: float = 0.0
    end_s: float = 0.0

    @property
    def elapsed_s(self) -> float:
        return max((self.end_s or time.monotonic()) - self.start_s, 1e-9)


def delete_horizon_ms(header: RecordBatchHeader) -> int | None:
    """KIP-534: the batch's delete horizon if its ``hasDeleteHorizonMs`` attribute bit is set."""
    return header.base_timestamp if header.attributes & DELETE_HORIZON_MASK else None


def read_batches(segment: LogSegment, start_position: int = 0) -> Iterator[tuple[RecordBatchHeader, bytes]]:
    """Whole batches of ``segment`` from ``start_position``, read in 512 KiB chunks."""
    fd = segment.file.fileno()
    end = segment.size
    pos = start_position
    while end - pos >= HEADER_SIZE:
        chunk = os.pread(fd, max(READ_CHUNK, HEADER_SIZE), pos)
        off = 0
        while len(chunk) - off >= HEADER_SIZE:
            (length,) = _BATCH_LENGTH.unpack_from(chunk, off + 8)
            size = length + LOG_OVERHEAD
            if size < HEADER_SIZE:
                raise CleaningAbortedError(f"corrupt batch size {size} at {pos + off} in {segment.log_path}")
            if off + size > len(chunk):
                if off == 0:  # one batch bigger than the chunk
                    chunk = os.pread(fd, size, pos)
                    if len(chunk) < size:
                        return
                    continue
                break
            yield read_batch_header(chunk, off), chunk[off : off + size]
            off += size
        if off == 0:
            return
        pos += off


def group_segments_by_size(
    segments: list[LogSegment], max_size: int, max_index_size: int, first_uncleanable_offset: int
) -> list[list[LogSegment]]:
    """Kafka's ``groupSegmentsBySize``: consecutive segments whose total log size fits ``max_size``,
    whose indexes fit ``max_index_size`` and whose offsets fit one segment's 32-bit relative offsets."""
    groups: list[list[LogSegment]] = []
    rest = list(segments)
    while rest:
        group = [rest.pop(0)]
        log_size = group[0].size
        index_size = group[0].offset_index.entries * 8
        time_index_size = group[0].time_index.entries * 12
        while rest:
            nxt = rest[0]
            upper = rest[1].base_offset if len(rest) > 1 else first_uncleanable_offset
            if (
                log_size + nxt.size > max_size
                or index_size + nxt.offset_index.entries * 8 > max_index_size
                or time_index_size + nxt.time_index.entries * 12 > max_index_size
                or (nxt.size > 0 and upper - 1 - group[0].base_offset > 2**31 - 1)
            ):
                break
            group.append(rest.pop(0))
            log_size += nxt.size
            index_size += nxt.offset_index.entries * 8
            time_index_size += nxt.time_index.entries * 12
        groups.append(group)
    return groups


class Cleaner:
    """Cleans one log at a time with one offset map (one per cleaner thread)."""

    def __init__(
        self,
        offset_map: SkimpyOffsetMap,
        *,
        time_ms: Callable[[], int],
        check_done: Callable[[Log], None] = lambda _log: None,
        pause: Callable[[], None] = lambda: time.sleep(0),
    ) -> None:
        self.offset_map = offset_map
        self.time_ms = time_ms
        self.check_done = check_done
        self.pause = pause
        self._last_pause = time.perf_counter()

    def _maybe_pause(self) -> None:
        # The event loop thread waits for the GIL while we hold it: give it back at least every
        # PAUSE_INTERVAL_S (a pause after every batch costs ~15% of the throughput).
        now = time.perf_counter()
        if now - self._last_pause >= PAUSE_INTERVAL_S:
            self.pause()
            self._last_pause = time.perf_counter()

    def clean(self, to_clean: LogToClean) -> tuple[int, CleanerStats]:
        """Clean ``to_clean.log``; returns the new first dirty offset and the stats."""
        log_ = to_clean.log
        stats = CleanerStats()
        try:
            self.build_offset_map(log_, to_clean.first_dirty_offset, to_clean.first_uncleanable_offset, stats)
            end_offset = self.offset_map.latest_offset + 1
            stats.map_done_s = time.monotonic()
            now = self.time_ms()
            last_data_offsets = self._last_data_offsets_of_producers(log_)
            segments = [s for s in log_.segments[:-1] if s.base_offset < end_offset]
            groups = group_segments_by_size(
                segments, log_.config.segment_bytes, log_.config.segment_index_bytes, end_offset
            )
            for group in groups:
                self.clean_segments(log_, group, now, stats, last_data_offsets)
        except (ValueError, OSError) as exc:
            # A segment file closed or renamed away under us: retention, truncation or topic deletion.
            raise CleaningAbortedError(f"a segment of {log_.dir.name} went away while it was being cleaned: "
                                       f"{exc}") from exc
        stats.end_s = time.monotonic()
        return end_offset, stats

    # -- offset map ----------------------------------------------------------------------------------------

    def build_offset_map(self, log_: Log, start: int, end: int, stats: CleanerStats) -> None:
        """Kafka's ``buildOffsetMap``: keys of the records in [start, end), until the map is full."""
        offset_map = self.offset_map
        offset_map.clear()
        offset_map.update_latest_offset(start - 1)
        segments = log_.segments
        for i, segment in enumerate(segments[:-1]):
            upper = segments[i + 1].base_offset
            if upper <= start or segment.base_offset >= end:
                continue
            self.check_done(log_)
            found = segment.translate_offset(start) if start > segment.base_offset else None
            if self._build_offset_map_for_segment(segment, found.position if found else 0, start, end, stats):
                return
            offset_map.update_latest_offset(min(upper, end) - 1)

    def _build_offset_map_for_segment(
        self, segment: LogSegment, position: int, start: int, end: int, stats: CleanerStats
    ) -> bool:
        offset_map = self.offset_map
        for header, data in read_batches(segment, position):
            if header.base_offset >= end:
                return False
            stats.map_bytes_read += len(data)
            if not header.is_control and header.records_count:
                base = header.base_offset
                for record in scan_records(batch_payload(data, header), header.records_count):
                    offset = base + record.offset_delta
                    key = record.key
                    if key is not None and start <= offset < end:
                        if offset_map.full and offset_map.contains_new_key(key):
                            return True
                        offset_map.put(key, offset)
                stats.map_messages_read += header.records_count
            if header.last_offset >= start:
                offset_map.update_latest_offset(min(header.last_offset, end - 1))
            self._maybe_pause()
        return False

    def _last_data_offsets_of_producers(self, log_: Log) -> dict[int, int]:
        """Per producer id, the last offset of its last data batch (Kafka's ``lastRecordsOfActiveProducers``,
        from batch headers while the log has no producer state manager)."""
        last: dict[int, int] = {}
        for segment in log_.segments:
            for batch_header in _headers(segment):
                if batch_header.producer_id >= 0 and not batch_header.is_control:
                    last[batch_header.producer_id] = batch_header.last_offset
                self._maybe_pause()
        return last

    # -- rewriting -----------------------------------------------------------------------------------------

    def clean_segments(
        self,
        log_: Log,
        group: list[LogSegment],
        now_ms: int,
        stats: CleanerStats,
        last_data_offsets: dict[int, int],
    ) -> None:
        """Kafka's ``cleanSegments``: one ``*.cleaned`` segment for ``group``, then the swap."""
        base = group[0].base_offset
        for path in (log_file(log_.dir, base, CLEANED_FILE_SUFFIX), offset_index_file(log_.dir, base, CLEANED_FILE_SUFFIX),
                     time_index_file(log_.dir, base, CLEANED_FILE_SUFFIX)):
            path.unlink(missing_ok=True)
        config = replace(log_.config, segment_index_bytes=max(log_.config.segment_index_bytes, 1 << 30))
        cleaned = LogSegment(log_.dir, base, config, time_ms=self.time_ms, suffix=CLEANED_FILE_SUFFIX)
        swapped = False
        try:
            sizes = [s.size for s in group]
            for segment in group:
                self.check_done(log_)
                self._clean_into(log_, segment, cleaned, now_ms, stats, last_data_offsets)
                stats.segments += 1
            cleaned.on_become_inactive_segment()
            cleaned.flush()
            modified_ns = os.stat(group[-1].log_path).st_mtime_ns
            os.utime(cleaned.log_path, ns=(modified_ns, modified_ns))
            self.check_done(log_)
            swapped = log_.replace_segments(cleaned, group, sizes)
            if not swapped:
                raise CleaningAbortedError(f"{log_.dir.name} changed while it was being cleaned")
        finally:
            if not swapped:
                cleaned.delete()

    def _clean_into(
        self,
        log_: Log,
        source: LogSegment,
        dest: LogSegment,
        now_ms: int,
        stats: CleanerStats,
        last_data_offsets: dict[int, int],
    ) -> None:
        delete_retention_ms = log_.config.delete_retention_ms
        offset_map = self.offset_map
        latest_offset = offset_map.latest_offset
        for header, data in read_batches(source):
            stats.bytes_read += len(data)
            stats.messages_read += header.records_count
            out = self._filter_batch(header, data, now_ms, delete_retention_ms, latest_offset, stats,
                                     last_data_offsets)
            if out is not None:
                written = read_batch_header(out)
                dest.append(written.last_offset, written.max_timestamp, written.last_offset, out)
                stats.bytes_written += len(out)
                stats.messages_written += written.records_count
            self._maybe_pause()

    def _filter_batch(
        self,
        header: RecordBatchHeader,
        data: bytes,
        now_ms: int,
        delete_retention_ms: int,
        latest_offset: int,
        stats: CleanerStats,
        last_data_offsets: dict[int, int],
    ) -> bytes | None:
        """Kafka's ``MemoryRecords.filterTo`` with the cleaner's record filter, for one batch."""
        if header.is_control:
            # Transaction markers stay until their transaction's data is gone; without transactions
            # (no producer state or aborted-transaction index yet) every marker is kept as it is.
            return data
        offset_map = self.offset_map
        horizon = delete_horizon_ms(header)
        retain_deletes = horizon is None or now_ms < horizon
        payload = batch_payload(data, header) if header.records_count else b""
        scanned = scan_records(payload, header.records_count)
        retained: list[ScannedRecord] = []
        has_tombstones = False
        base = header.base_offset
        for record in scanned:
            offset = base + record.offset_delta
            if offset > latest_offset:
                keep = True
            elif record.key is None:
                stats.invalid_messages += 1  # Kafka: compacted topics refuse keyless records
                keep = False
            else:
                keep = offset >= offset_map.get(record.key) and (not record.is_tombstone or retain_deletes)
            if keep:
                retained.append(record)
                has_tombstones = has_tombstones or record.is_tombstone
        need_horizon = has_tombstones and horizon is None
        if len(retained) == len(scanned) and not need_horizon:
            return data
        if need_horizon:
            kept = {r.offset_delta for r in retained}
            records = [r for r in decode_batch(data) if r.offset - base in kept]
            return build_retained_batch(header, records, now_ms + delete_retention_ms)
        if retained:
            return copy_retained_records(header, payload, retained)
        if header.producer_id >= 0 and last_data_offsets.get(header.producer_id) == header.last_offset:
            return build_retained_batch(header, [], None)  # RETAIN_EMPTY: keep the producer's last sequence
        return None


def _headers(segment: LogSegment) -> Iterator[RecordBatchHeader]:
    fd = segment.file.fileno()
    for batch in segment.batches(0):  # a header walk of the segment
        yield read_batch_header(os.pread(fd, HEADER_SIZE, batch.position))
