"""The record-level half of log cleaning: scanning a batch's records for keys, and rebuilding a batch
from the records that stay (Kafka's ``MemoryRecords.filterTo`` / ``buildRetainedRecordsInto``).

A v2 record stores its offset and timestamp as deltas from the batch's ``baseOffset`` and
``baseTimestamp``. The cleaner keeps a batch's base offset, so while the base timestamp stays too, a
retained record's bytes are copied unchanged: only the records' keys and value lengths are parsed. A
batch whose base timestamp changes (it gets a delete horizon, KIP-534) is decoded and re-encoded.

>>> from moldau.protocol.records import Record, build_batch, read_batch_header
>>> batch = build_batch([Record(0, 1000, b"a", b"1"), Record(1, 1001, b"b", None)])
>>> [(r.offset_delta, r.key, r.is_tombstone) for r in scan_records(batch_payload(batch, read_batch_header(batch)), 2)]
[(0, b'a', False), (1, b'b', True)]
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from moldau.protocol.errors import DecodeError, ErrorCode
from moldau.protocol.primitives import read_varlong
from moldau.protocol.records import (
    BATCH_HEADER_STRUCT,
    COMPRESSION_MASK,
    COMPRESSION_NONE,
    CRC_OFFSET,
    DELETE_HORIZON_MASK,
    HEADER_SIZE,
    LOG_OVERHEAD,
    TIMESTAMP_LOG_APPEND_TIME,
    InvalidRecordError,
    Record,
    RecordBatchHeader,
    batch_crc,
    compress,
    decompress,
    encode_record,
)

_UINT32 = struct.Struct(">I")


class ScannedRecord(NamedTuple):
    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    is_tombstone: bool
    start: int  # the record's bytes in the decompressed payload
    end: int


def _corrupt(message: str) -> InvalidRecordError:
    return InvalidRecordError(ErrorCode.CORRUPT_MESSAGE, message)


def batch_payload(data: bytes, header: RecordBatchHeader) -> bytes:
    """The batch's records section, decompressed; checks the CRC-32C first."""
    if batch_crc(data, 0, len(data)) != header.crc:
        raise _corrupt(f"record batch at offset {header.base_offset} is corrupt (stored crc = {header.crc})")
    payload = data[HEADER_SIZE:]
    if header.compression != COMPRESSION_NONE:
        payload = decompress(header.compression, payload)
    return payload


_varint = read_varlong  # the one zigzag reader; its DecodeError is CORRUPT_MESSAGE in scan_records


def scan_records(payload: bytes, count: int) -> list[ScannedRecord]:
    """Each record's offset and timestamp deltas, key, whether its value is null, and where it lies."""
    out = []
    pos = 0
    try:
        for _ in range(count):
            length, p = _varint(payload, pos)
            end = p + length
            timestamp_delta, p = _varint(payload, p + 1)  # + 1: the record's attributes byte
            offset_delta, p = _varint(payload, p)
            key_length, p = _varint(payload, p)
            key = None
            if key_length >= 0:
                key = payload[p : p + key_length]
                p += key_length
            value_length, p = _varint(payload, p)
            if p > end or end > len(payload):
                raise _corrupt(f"record at byte {pos} runs past its length {length}")
            out.append(ScannedRecord(offset_delta, timestamp_delta, key, value_length < 0, pos, end))
            pos = end
    except (IndexError, DecodeError):
        raise _corrupt(f"record data ends inside record {len(out)} of {count}") from None
    if pos != len(payload):
        raise _corrupt(f"{len(payload) - pos} bytes left after {count} records")
    return out


def _finish(header_fields: tuple[object, ...], payload: bytes) -> bytes:
    batch = bytearray(BATCH_HEADER_STRUCT.pack(*header_fields)) + payload
    _UINT32.pack_into(batch, CRC_OFFSET, batch_crc(batch, 0, len(batch)))
    return bytes(batch)


def copy_retained_records(header: RecordBatchHeader, payload: bytes, retained: list[ScannedRecord]) -> bytes:
    """The batch with only ``retained`` (non-empty), their bytes copied, recompressed with its codec;
    base offset, base timestamp, producer fields and leader epoch unchanged."""
    body = b"".join(payload[r.start : r.end] for r in retained)
    if header.timestamp_type == TIMESTAMP_LOG_APPEND_TIME:
        max_timestamp = header.max_timestamp
    else:
        max_timestamp = header.base_timestamp + max(r.timestamp_delta for r in retained)
    compressed = compress(header.compression, body)
    return _finish(
        (header.base_offset, HEADER_SIZE - LOG_OVERHEAD + len(compressed), header.partition_leader_epoch, 2, 0,
         header.attributes, retained[-1].offset_delta, header.base_timestamp, max_timestamp,
         header.producer_id, header.producer_epoch, header.base_sequence, len(retained)),
        compressed,
    )


def build_retained_batch(header: RecordBatchHeader, records: list[Record], horizon_ms: int | None) -> bytes:
    """Re-encode ``records`` of the batch ``header`` (Kafka's ``buildRetainedRecordsInto``): same base
    offset, codec, producer fields and leader epoch; with ``horizon_ms`` it is the ``baseTimestamp`` and
    the delete-horizon attribute bit is set. No records: Kafka's empty batch header (``RETAIN_EMPTY``,
    so that a producer's last sequence survives)."""
    attributes = header.attributes & ~DELETE_HORIZON_MASK
    if not records:
        timestamp = header.max_timestamp
        return _finish(
            (header.base_offset, HEADER_SIZE - LOG_OVERHEAD, header.partition_leader_epoch, 2, 0,
             attributes & ~COMPRESSION_MASK, header.last_offset_delta, timestamp, timestamp,
             header.producer_id, header.producer_epoch, header.base_sequence, 0),
            b"",
        )
    if horizon_ms is not None:
        attributes |= DELETE_HORIZON_MASK
    base_timestamp = horizon_ms if horizon_ms is not None else records[0].timestamp
    body = bytearray()
    for record in records:
        encode_record(body, record, record.offset - header.base_offset, record.timestamp - base_timestamp)
    compressed = compress(header.compression, bytes(body))
    if header.timestamp_type == TIMESTAMP_LOG_APPEND_TIME:
        max_timestamp = header.max_timestamp
    else:
        max_timestamp = max(r.timestamp for r in records)
    return _finish(
        (header.base_offset, HEADER_SIZE - LOG_OVERHEAD + len(compressed), header.partition_leader_epoch, 2, 0,
         attributes, records[-1].offset - header.base_offset, base_timestamp, max_timestamp,
         header.producer_id, header.producer_epoch, header.base_sequence, len(records)),
        compressed,
    )
