"""Produce validation in one place (Kafka's ``LogValidator``, with ``UnifiedLog.analyzeAndValidateRecords``).

:func:`validate_records` is what a leader append runs, once per request and partition, in Kafka's order:

1. the batch structure, size and CRC-32C of every batch (:func:`validate_produce_batches`), once: nothing
   later checks or CRCs a batch again;
2. per batch, the keys of a compacted topic (``LogValidator.validateKey``; this alone decodes records)
   and the timestamps (``message.timestamp.before/after.max.ms``, batch-level, DESIGN decision 3);
3. the topic's ``compression.type`` when it is a codec the batch does not use: the batch is re-encoded
   from the records decoded in step 2 (or decoded now), without another CRC check.

With ``compression.type=producer`` on a non-compacted topic no record is decoded and the bytes are
untouched (zero-copy). Followers' batches take :func:`validate_replica_batches` (structure and CRC only).
Every refusal is an :class:`~moldau.protocol.records.InvalidRecordError` carrying Kafka's error code.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import (
    COMPRESSION_ZSTD,
    HEADER_SIZE,
    HEADER_SIZE_UP_TO_MAGIC,
    LEGACY_RECORD_OVERHEAD_V0,
    LENGTH_OFFSET,
    LOG_OVERHEAD,
    MAGIC_OFFSET,
    MAGIC_V2,
    NO_TIMESTAMP,
    InvalidRecordError,
    Record,
    RecordBatchHeader,
    batch_crc,
    build_batch,
    decode_batch,
    iter_batches,
    read_batch_header,
    refuse_records,
)
from moldau.storage.config import LogConfig

_INT32 = struct.Struct(">i")

PRODUCER = "producer"  # compression.type: keep the producer's codec
CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

Batches = list[tuple[int, RecordBatchHeader]]


@dataclass(slots=True)
class ValidatedRecords:
    """The bytes to append (the request's own, or re-encoded) and each batch's position and header."""

    records: bytes | bytearray | memoryview
    batches: Batches
    recompressed: bool = False

    @property
    def valid_bytes(self) -> int:
        pos, header = self.batches[-1]
        return pos + header.size_in_bytes


def validate_records(
    records: bytes | bytearray | memoryview,
    config: LogConfig,
    now_ms: int,
    *,
    compression_type: str = PRODUCER,
    topic_partition: str = "",
) -> ValidatedRecords:
    """Validate produced batches for a leader append (see the module docstring); refuses with
    :class:`InvalidRecordError`."""
    batches = validate_produce_batches(records, config.max_message_bytes)
    target = None if compression_type == PRODUCER else CODECS[compression_type]
    recompress = target is not None and any(
        header.compression != target and not header.is_control for _, header in batches
    )
    check_timestamps = not config.log_append_time
    if not config.compact and not recompress:  # the zero-copy path: headers only
        if check_timestamps:
            for pos, header in batches:
                validate_timestamps(header, now_ms, config.message_timestamp_before_max_ms,
                                    config.message_timestamp_after_max_ms, records, pos)
        return ValidatedRecords(records, batches)
    out = bytearray() if recompress else None
    view = memoryview(records)
    for pos, header in batches:
        end = pos + header.size_in_bytes
        decoded = None
        if config.compact and not header.is_control:
            decoded = decode_batch(view, pos, check_crc=False)  # step 1 checked the CRC
            validate_keys(decoded, topic_partition)
        if check_timestamps:
            validate_timestamps(header, now_ms, config.message_timestamp_before_max_ms,
                                config.message_timestamp_after_max_ms, view, pos, decoded)
        if out is None:
            continue
        if header.compression == target or header.is_control:
            out += view[pos:end]
        else:
            out += _rebuild(header, decoded or decode_batch(view, pos, check_crc=False), target or 0)
    if out is None:
        return ValidatedRecords(records, batches)
    # Built here with correct CRCs and offsets: read the headers back, no second check.
    return ValidatedRecords(out, list(iter_batches(out)), recompressed=True)


def _rebuild(header: RecordBatchHeader, records: list[Record], codec: int) -> bytes:
    return build_batch(
        records,
        compression=codec,
        timestamp_type=header.timestamp_type,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        is_transactional=header.is_transactional,
        partition_leader_epoch=header.partition_leader_epoch,
    )


def validate_keys(records: list[Record], topic_partition: str) -> None:
    """Kafka's ``LogValidator.validateKey``: a compacted topic refuses records without a key
    (INVALID_RECORD); the cleaner could not tell which of them is the latest. KIP-467: every keyless record
    is named by its index in the batch, and the batch fails as a whole."""
    errors = [(index, f"Compacted topic cannot accept message without key in topic partition {topic_partition}.")
              for index, record in enumerate(records) if record.key is None]
    if errors:
        raise refuse_records(ErrorCode.INVALID_RECORD, errors)


def validate_compacted_keys(
    records: bytes | bytearray | memoryview, topic_partition: str, *, check_crc: bool = True
) -> None:
    """:func:`validate_keys` for every non-control batch of ``records`` (:func:`validate_records` does
    this itself; kept for callers that check keys alone)."""
    for pos, header in iter_batches(records):
        if not header.is_control:
            validate_keys(decode_batch(records, pos, check_crc=check_crc), topic_partition)


def validate_replica_batches(records: bytes | bytearray | memoryview) -> Batches:
    """Structure and CRC checks for batches a follower copies from its leader (no client rules)."""
    batches = list(iter_batches(records))
    expected = None
    for pos, header in batches:
        if header.magic != 2 or header.last_offset_delta < 0:
            raise InvalidRecordError(
                ErrorCode.CORRUPT_MESSAGE, f"invalid record batch at byte {pos} in a follower append"
            )
        if batch_crc(records, pos, pos + header.size_in_bytes) != header.crc:
            raise InvalidRecordError(
                ErrorCode.CORRUPT_MESSAGE,
                f"record batch at byte {pos} is corrupt (stored crc = {header.crc})",
            )
        if expected is not None and header.base_offset < expected:
            raise InvalidRecordError(
                ErrorCode.INVALID_RECORD,
                f"out of order offsets in a follower append: {header.base_offset} < {expected}",
            )
        expected = header.last_offset + 1
    return batches


def validate_produce_batches(
    buf: bytes | bytearray | memoryview, max_message_bytes: int
) -> list[tuple[int, RecordBatchHeader]]:
    """Check produced record batches the way Kafka's leader does before it assigns offsets.

    Returns ``(position, header)`` for each complete batch. Follows, in Kafka's order,
    ``ProduceRequest.validateRecords`` (magic 2 only: older magic is INVALID_RECORD since Kafka 4.0),
    ``UnifiedLog.analyzeAndValidateRecords`` (baseOffset 0, size against ``max.message.bytes`` ->
    MESSAGE_TOO_LARGE, CRC-32C -> CORRUPT_MESSAGE) and ``LogValidator.validateBatch`` (offset range vs
    recordsCount, no control batches from clients, a sequence for idempotent batches -> INVALID_RECORD).

    Like Kafka's ``MemoryRecords`` iterator, bytes after the last complete batch are ignored (Kafka trims
    them); no complete batch at all is INVALID_RECORD ("must have at least one record batch").

    Deliberately not done (DESIGN decision 3): Kafka also walks the records of a compressed batch to count
    them and check each offset delta and timestamp; we trust the header's recordsCount, lastOffsetDelta
    and maxTimestamp. Several batches are accepted here; "exactly one batch per partition" is the Produce
    handler's rule (ProduceRequest v3+).
    """
    n = len(buf)
    pos = 0
    batches: list[tuple[int, RecordBatchHeader]] = []
    while n - pos >= LOG_OVERHEAD:
        (batch_length,) = _INT32.unpack_from(buf, pos + LENGTH_OFFSET)
        if batch_length < LEGACY_RECORD_OVERHEAD_V0:
            raise InvalidRecordError(
                ErrorCode.CORRUPT_MESSAGE,
                f"record batch at byte {pos} has batchLength {batch_length}, "
                f"less than the minimum record overhead ({LEGACY_RECORD_OVERHEAD_V0})",
            )
        if n - pos < HEADER_SIZE_UP_TO_MAGIC:
            break
        magic = struct.unpack_from(">b", buf, pos + MAGIC_OFFSET)[0]
        if magic < 0 or magic > MAGIC_V2:
            raise InvalidRecordError(ErrorCode.CORRUPT_MESSAGE, f"invalid magic {magic} in record batch at byte {pos}")
        size = batch_length + LOG_OVERHEAD
        if n - pos < size:
            break
        if magic != MAGIC_V2:
            raise InvalidRecordError(
                ErrorCode.INVALID_RECORD,
                f"produce requests may only contain record batches with magic 2, got magic {magic}",
            )
        if size < HEADER_SIZE:
            raise InvalidRecordError(
                ErrorCode.CORRUPT_MESSAGE,
                f"record batch is corrupt (the size {size} is smaller than the minimum allowed overhead "
                f"{HEADER_SIZE})",
            )
        header = read_batch_header(buf, pos)
        _check_produced_batch(buf, pos, header, max_message_bytes)
        batches.append((pos, header))
        pos += size
    if not batches:
        raise InvalidRecordError(
            ErrorCode.INVALID_RECORD, "produce request must have at least one complete record batch"
        )
    return batches


def _check_produced_batch(
    buf: bytes | bytearray | memoryview, pos: int, header: RecordBatchHeader, max_message_bytes: int
) -> None:
    size = header.size_in_bytes
    if header.base_offset != 0:
        raise InvalidRecordError(
            ErrorCode.INVALID_RECORD,
            f"the baseOffset of a produced record batch should be 0, but it is {header.base_offset}",
        )
    if size > max_message_bytes:
        raise InvalidRecordError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"the record batch size is {size} bytes, which exceeds max.message.bytes ({max_message_bytes})",
        )
    crc = batch_crc(buf, pos, pos + size)
    if crc != header.crc:
        raise InvalidRecordError(
            ErrorCode.CORRUPT_MESSAGE,
            f"record batch is corrupt (stored crc = {header.crc}, computed crc = {crc})",
        )
    if header.compression > COMPRESSION_ZSTD:
        raise InvalidRecordError(ErrorCode.INVALID_RECORD, f"unknown compression type id {header.compression}")
    if header.last_offset_delta < 0:
        raise InvalidRecordError(
            ErrorCode.INVALID_RECORD,
            f"batch has an invalid offset range: lastOffsetDelta {header.last_offset_delta}",
        )
    if header.records_count <= 0:
        raise InvalidRecordError(
            ErrorCode.INVALID_RECORD, f"invalid reported count for record batch: {header.records_count}"
        )
    if header.records_count != header.last_offset_delta + 1:
        raise InvalidRecordError(
            ErrorCode.INVALID_RECORD,
            f"inconsistent batch offset range [0, {header.last_offset_delta}] and count of records "
            f"{header.records_count}",
        )
    if header.is_control:
        raise InvalidRecordError(ErrorCode.INVALID_RECORD, "clients are not allowed to write control records")
    if header.has_producer_id and header.base_sequence < 0:
        raise InvalidRecordError(
            ErrorCode.INVALID_RECORD,
            f"invalid sequence number {header.base_sequence} in record batch with producerId "
            f"{header.producer_id}",
        )


def validate_timestamps(
    header: RecordBatchHeader, now_ms: int, before_max_ms: int, after_max_ms: int,
    buf: bytes | bytearray | memoryview | None = None, pos: int = 0, decoded: list[Record] | None = None,
) -> None:
    """``message.timestamp.before.max.ms`` / ``after.max.ms`` for a CreateTime topic.

    Kafka checks every record (LogValidator.validateTimestamp). The header's maxTimestamp settles the
    future bound without decoding; the past bound needs every record's timestamp (the header has no
    minimum), so a batch is decoded (unless already `decoded`) when `buf` holds it at `pos` and the topic
    sets a past bound (`message.timestamp.before.max.ms` is unlimited by default), or when it fails, to
    name its bad records (KIP-467).
    """
    too_new = header.max_timestamp != NO_TIMESTAMP and header.max_timestamp - now_ms > after_max_ms
    too_old = header.base_timestamp != NO_TIMESTAMP and now_ms - header.base_timestamp > before_max_ms
    if buf is not None and (too_new or too_old or before_max_ms < now_ms):
        low, high = now_ms - before_max_ms, now_ms + after_max_ms
        records = decoded if decoded is not None else decode_batch(buf, pos, check_crc=False)
        errors = [(index, (f"Timestamp {record.timestamp} of message with offset {record.offset} is out of range. "
                           f"The timestamp should be within [{low}, {high}]"))
                  for index, record in enumerate(records)
                  if record.timestamp != NO_TIMESTAMP and not low <= record.timestamp <= high]
        if errors:
            raise refuse_records(ErrorCode.INVALID_TIMESTAMP, errors)
    if too_new:
        raise InvalidRecordError(
            ErrorCode.INVALID_TIMESTAMP,
            f"timestamp {header.max_timestamp} is more than message.timestamp.after.max.ms "
            f"({after_max_ms}) after the broker time {now_ms}",
        )
    if too_old:
        raise InvalidRecordError(
            ErrorCode.INVALID_TIMESTAMP,
            f"timestamp {header.base_timestamp} is more than message.timestamp.before.max.ms "
            f"({before_max_ms}) before the broker time {now_ms}",
        )
