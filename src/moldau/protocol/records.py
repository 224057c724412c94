"""Record batch v2 (Kafka's ``DefaultRecordBatch``): header access, produce validation, offset assignment.

The broker's hot path never decodes individual records (DESIGN decision 3): it reads the 61-byte header,
checks the CRC-32C, patches the base offset and partition leader epoch in place and writes the bytes out
unchanged. :func:`assign_offsets` and ``storage.log_validator`` (Kafka's ``LogValidator``) are that path.

The record-level half (:class:`Record`, :func:`build_batch`, :func:`decode_batch`) is for the CLI, log
compaction, ListOffsets-by-timestamp and tests. It handles every codec Kafka has: gzip, snappy (the xerial
framing of Kafka's Java producer and the raw blocks librdkafka sends), lz4 (the LZ4 frame format) and zstd.

>>> batch = build_batch([Record(0, 1_700_000_000_000, b"k", b"v", [])])
>>> header = read_batch_header(batch, 0)
>>> header.records_count, header.size_in_bytes == len(batch)
(1, True)
>>> decode_batch(batch)[0].value
b'v'
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import cramjam

from moldau.errors import MoldauError
from moldau.protocol.crc32c import crc32c
from moldau.protocol.errors import DecodeError, ErrorCode
from moldau.protocol.primitives import read_varlong

__all__ = [
    "HEADER_SIZE",
    "NO_PARTITION_LEADER_EPOCH",
    "NO_PRODUCER_ID",
    "NO_SEQUENCE",
    "NO_TIMESTAMP",
    "InvalidRecordError",
    "Record",
    "RecordBatchHeader",
    "RecordError",
    "assign_offsets",
    "batch_crc",
    "build_batch",
    "decode_batch",
    "iter_batches",
    "read_batch_header",
    "refuse_records",
]

# Offsets inside the batch header (Kafka's DefaultRecordBatch constants).
BASE_OFFSET_OFFSET = 0
LENGTH_OFFSET = 8
LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes batchLength does not count
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
LAST_OFFSET_DELTA_OFFSET = 23
BASE_TIMESTAMP_OFFSET = 27
MAX_TIMESTAMP_OFFSET = 35
HEADER_SIZE = 61  # Kafka's RECORD_BATCH_OVERHEAD
HEADER_SIZE_UP_TO_MAGIC = MAGIC_OFFSET + 1
LEGACY_RECORD_OVERHEAD_V0 = 14  # the smallest batchLength any magic allows (Kafka's nextBatchSize check)

MAGIC_V2 = 2
NO_TIMESTAMP = -1
NO_PRODUCER_ID = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40

COMPRESSION_NONE, COMPRESSION_GZIP, COMPRESSION_SNAPPY, COMPRESSION_LZ4, COMPRESSION_ZSTD = range(5)
TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME = 0, 1

BATCH_HEADER_STRUCT = struct.Struct(">qiibIhiqqqhii")
_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_INT16 = struct.Struct(">h")
assert BATCH_HEADER_STRUCT.size == HEADER_SIZE


class InvalidRecordError(MoldauError):
    """A record batch was refused; ``error_code`` is the Kafka error code the partition answers with.

    >>> InvalidRecordError(ErrorCode.CORRUPT_MESSAGE, "bad crc").error_code.name
    'CORRUPT_MESSAGE'
    """

    def __init__(self, error_code: ErrorCode, message: str, record_errors: list[RecordError] | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.record_errors = record_errors or []  # KIP-467: which records made the batch fail


RecordError = tuple[int, str]  # KIP-467: (index of the record in its batch, why it was refused)


def refuse_records(code: ErrorCode, errors: list[RecordError]) -> InvalidRecordError:
    """The batch fails because of these records: Kafka's ``LogValidator.processRecordErrors`` wording."""
    if code == ErrorCode.INVALID_TIMESTAMP:
        return InvalidRecordError(code, "One or more records have been rejected due to invalid timestamp", errors)
    shown = ", ".join(f"RecordError(batchIndex={index}, message='{message}')" for index, message in errors[:3])
    return InvalidRecordError(code, f"One or more records have been rejected due to {len(errors)} record errors "
                                    f"in total, and only showing the first three errors at most: [{shown}]", errors)


@dataclass(slots=True)
class RecordBatchHeader:
    """The 61-byte header of a v2 record batch, field by field (Kafka's names, snake_cased)."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def size_in_bytes(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def compression(self) -> int:
        """0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd."""
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        """0 CreateTime, 1 LogAppendTime."""
        return (self.attributes & TIMESTAMP_TYPE_MASK) >> 3

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id > NO_PRODUCER_ID


def read_batch_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> RecordBatchHeader:
    """Unpack the batch header at ``pos``; the caller makes sure 61 bytes are there."""
    return RecordBatchHeader(*BATCH_HEADER_STRUCT.unpack_from(buf, pos))


def batch_crc(buf: bytes | bytearray | memoryview, pos: int, end: int) -> int:
    """CRC-32C of ``buf[pos + 21:end]``: what a v2 batch starting at ``pos`` and ending at ``end`` stores."""
    return crc32c(buf, pos + ATTRIBUTES_OFFSET, end)


def _refuse(code: ErrorCode, message: str) -> InvalidRecordError:
    return InvalidRecordError(code, message)


def assign_offsets(
    buf: bytearray | memoryview, pos: int, base_offset: int, leader_epoch: int, log_append_time_ms: int | None
) -> None:
    """Stamp the offset and leader epoch on the batch at ``pos``, in place.

    Neither field is covered by the CRC. For a LogAppendTime topic (``log_append_time_ms`` given) set the
    timestamp-type bit and maxTimestamp and recompute the CRC, as Kafka's
    ``DefaultRecordBatch.setMaxTimestamp`` does; baseTimestamp stays as the client wrote it.
    """
    _INT64.pack_into(buf, pos + BASE_OFFSET_OFFSET, base_offset)
    _INT32.pack_into(buf, pos + PARTITION_LEADER_EPOCH_OFFSET, leader_epoch)
    if log_append_time_ms is None:
        return
    (attributes,) = _INT16.unpack_from(buf, pos + ATTRIBUTES_OFFSET)
    (max_timestamp,) = _INT64.unpack_from(buf, pos + MAX_TIMESTAMP_OFFSET)
    if attributes & TIMESTAMP_TYPE_MASK and max_timestamp == log_append_time_ms:
        return
    _INT16.pack_into(buf, pos + ATTRIBUTES_OFFSET, attributes | TIMESTAMP_TYPE_MASK)
    _INT64.pack_into(buf, pos + MAX_TIMESTAMP_OFFSET, log_append_time_ms)
    (batch_length,) = _INT32.unpack_from(buf, pos + LENGTH_OFFSET)
    _UINT32.pack_into(buf, pos + CRC_OFFSET, batch_crc(buf, pos, pos + LOG_OVERHEAD + batch_length))


def iter_batches(buf: bytes | bytearray | memoryview) -> Iterator[tuple[int, RecordBatchHeader]]:
    """Yield ``(position, header)`` of each complete batch; stop at a truncated final batch.

    A fetch response may end with a partial batch (Kafka's ``firstEntryIncomplete`` and max-bytes cut),
    so a short tail ends the iteration. A batch length smaller than the header is corruption.
    """
    n = len(buf)
    pos = 0
    while n - pos >= HEADER_SIZE:
        (batch_length,) = _INT32.unpack_from(buf, pos + LENGTH_OFFSET)
        size = batch_length + LOG_OVERHEAD
        if size < HEADER_SIZE:
            raise _refuse(ErrorCode.CORRUPT_MESSAGE, f"record batch at byte {pos} has a size of {size} bytes")
        if pos + size > n:
            return
        yield pos, read_batch_header(buf, pos)
        pos += size


@dataclass(slots=True)
class Record:
    """One record of a batch, with its absolute offset and timestamp."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)


# --- varints (zigzag, as in Kafka's ByteUtils) -------------------------------------------------------


def _write_varint(out: bytearray, value: int) -> None:
    v = (value << 1) ^ (value >> 63)  # zigzag; Python ints make 32- and 64-bit zigzag the same
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


# Records are read with the one zigzag reader, ``primitives.read_varlong`` (Kafka's record fields are
# varints, but a 10-byte limit covers both): its DecodeError becomes CORRUPT_MESSAGE in _decode_records.
_read_varint = read_varlong


def _write_bytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        _write_varint(out, -1)
    else:
        _write_varint(out, len(data))
        out += data


def _read_bytes(buf: bytes | memoryview, pos: int) -> tuple[bytes | None, int]:
    length, pos = _read_varint(buf, pos)
    if length < 0:
        return None, pos
    end = pos + length
    if end > len(buf):
        raise _refuse(ErrorCode.CORRUPT_MESSAGE, "record field runs past the end of the batch")
    return bytes(buf[pos:end]), end


def encode_record(out: bytearray, record: Record, offset_delta: int, timestamp_delta: int) -> None:
    body = bytearray(b"\x00")  # attributes: unused
    _write_varint(body, timestamp_delta)
    _write_varint(body, offset_delta)
    _write_bytes(body, record.key)
    _write_bytes(body, record.value)
    _write_varint(body, len(record.headers))
    for name, value in record.headers:
        _write_bytes(body, name.encode())
        _write_bytes(body, value)
    _write_varint(out, len(body))
    out += body


def _decode_records(
    data: bytes | memoryview, count: int, base_offset: int, base_timestamp: int, log_append_time: int | None
) -> list[Record]:
    try:
        return _decode_records_unchecked(data, count, base_offset, base_timestamp, log_append_time)
    except DecodeError as exc:
        raise _refuse(ErrorCode.CORRUPT_MESSAGE, f"record data: {exc}") from None


def _decode_records_unchecked(
    data: bytes | memoryview, count: int, base_offset: int, base_timestamp: int, log_append_time: int | None
) -> list[Record]:
    records = []
    pos = 0
    for _ in range(count):
        length, pos = _read_varint(data, pos)
        end = pos + length
        if length < 1 or end > len(data):
            raise _refuse(ErrorCode.CORRUPT_MESSAGE, f"record length {length} runs past the end of the batch")
        pos += 1  # attributes
        timestamp_delta, pos = _read_varint(data, pos)
        offset_delta, pos = _read_varint(data, pos)
        key, pos = _read_bytes(data, pos)
        value, pos = _read_bytes(data, pos)
        header_count, pos = _read_varint(data, pos)
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(max(header_count, 0)):
            name, pos = _read_bytes(data, pos)
            header_value, pos = _read_bytes(data, pos)
            headers.append(((name or b"").decode(), header_value))
        if pos != end:
            raise _refuse(
                ErrorCode.CORRUPT_MESSAGE, f"record at byte {pos} does not match its length {length}"
            )
        timestamp = log_append_time if log_append_time is not None else base_timestamp + timestamp_delta
        records.append(Record(base_offset + offset_delta, timestamp, key, value, headers))
    if pos != len(data):
        raise _refuse(ErrorCode.CORRUPT_MESSAGE, f"{len(data) - pos} bytes left after {count} records")
    return records


# --- compression -------------------------------------------------------------------------------------

_XERIAL_HEADER = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK_SIZE = 32 * 1024  # xerial's default, what Kafka's Java producer writes


def _snappy_compress(data: bytes) -> bytes:
    # Kafka's Java producer frames snappy the xerial way (SnappyOutputStream); every client reads it.
    out = bytearray(_XERIAL_HEADER)
    view = memoryview(data)
    for start in range(0, len(data), _XERIAL_BLOCK_SIZE):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK_SIZE]))
        out += _INT32.pack(len(block))
        out += block
    return bytes(out)


def _snappy_decompress(data: bytes) -> bytes:
    if data[:8] == _XERIAL_HEADER[:8]:
        out = bytearray()
        pos = len(_XERIAL_HEADER)
        while pos < len(data):
            (length,) = _INT32.unpack_from(data, pos)
            pos += 4
            out += bytes(cramjam.snappy.decompress_raw(data[pos : pos + length]))
            pos += length
        return bytes(out)
    if data[:10] == b"\xff\x06\x00\x00sNaPpY":  # the snappy framing format (not used by Kafka clients)
        return bytes(cramjam.snappy.decompress(data))
    return bytes(cramjam.snappy.decompress_raw(data))  # librdkafka: one raw snappy block


def _lz4_compress(data: bytes) -> bytes:
    # Kafka reads the LZ4 frame format; its KafkaLZ4BlockInputStream wants independent blocks.
    compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
    compressor.compress(data)
    return bytes(compressor.finish())


def compress(codec: int, data: bytes) -> bytes:
    if codec == COMPRESSION_NONE:
        return data
    if codec == COMPRESSION_GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec == COMPRESSION_SNAPPY:
        return _snappy_compress(data)
    if codec == COMPRESSION_LZ4:
        return _lz4_compress(data)
    if codec == COMPRESSION_ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise ValueError(
        f"unknown compression type id {codec}; Kafka has 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd"
    )


def decompress(codec: int, data: bytes) -> bytes:
    try:
        if codec == COMPRESSION_GZIP:
            return bytes(cramjam.gzip.decompress(data))
        if codec == COMPRESSION_SNAPPY:
            return _snappy_decompress(data)
        if codec == COMPRESSION_LZ4:
            return bytes(cramjam.lz4.decompress(data))
        if codec == COMPRESSION_ZSTD:
            return bytes(cramjam.zstd.decompress(data))
    except (cramjam.DecompressionError, struct.error, ValueError) as exc:
        raise _refuse(
            ErrorCode.CORRUPT_MESSAGE, f"cannot decompress record batch (codec {codec}): {exc}"
        ) from exc
    raise _refuse(ErrorCode.CORRUPT_MESSAGE, f"unknown compression type id {codec}")


# --- batches of records ------------------------------------------------------------------------------


def build_batch(
    records: Sequence[Record],
    *,
    base_offset: int = 0,
    compression: int = COMPRESSION_NONE,
    timestamp_type: int = TIMESTAMP_CREATE_TIME,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = NO_SEQUENCE,
    is_transactional: bool = False,
    is_control: bool = False,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    use_record_offsets: bool = False,
) -> bytes:
    """Encode ``records`` as one v2 batch with a correct CRC-32C.

    As a producer does, the records get offset deltas 0..n-1 and ``record.offset`` is ignored; with
    ``use_record_offsets`` (rewriting stored batches, e.g. compaction) each delta is
    ``record.offset - base_offset`` and gaps are kept. baseTimestamp is the first record's timestamp.
    """
    if not records:
        raise ValueError("a record batch needs at least one record")
    base_timestamp = records[0].timestamp
    body = bytearray()
    last_delta = -1
    for i, record in enumerate(records):
        delta = record.offset - base_offset if use_record_offsets else i
        if delta <= last_delta:
            raise ValueError(
                f"record offsets must increase from base_offset {base_offset}: got {record.offset}"
            )
        last_delta = delta
        encode_record(body, record, delta, record.timestamp - base_timestamp)
    payload = compress(compression, bytes(body))
    attributes = (
        compression
        | (TIMESTAMP_TYPE_MASK if timestamp_type == TIMESTAMP_LOG_APPEND_TIME else 0)
        | (TRANSACTIONAL_MASK if is_transactional else 0)
        | (CONTROL_MASK if is_control else 0)
    )
    header = bytearray(
        BATCH_HEADER_STRUCT.pack(
            base_offset,
            HEADER_SIZE - LOG_OVERHEAD + len(payload),
            partition_leader_epoch,
            MAGIC_V2,
            0,
            attributes,
            last_delta,
            base_timestamp,
            max(r.timestamp for r in records),
            producer_id,
            producer_epoch,
            base_sequence,
            len(records),
        )
    )
    batch = header + payload
    _UINT32.pack_into(batch, CRC_OFFSET, batch_crc(batch, 0, len(batch)))
    return bytes(batch)


def decode_batch(
    buf: bytes | bytearray | memoryview, pos: int = 0, *, check_crc: bool = True
) -> list[Record]:
    """Decode the records of the batch at ``pos`` (decompressing it if needed).

    Records of a LogAppendTime batch all carry the batch's maxTimestamp, as Kafka's readers report them.
    Raises :class:`InvalidRecordError` (CORRUPT_MESSAGE) on a short buffer, a bad CRC or bad record data.
    """
    if len(buf) - pos < HEADER_SIZE:
        raise _refuse(
            ErrorCode.CORRUPT_MESSAGE, f"{len(buf) - pos} bytes are too few for a record batch header"
        )
    header = read_batch_header(buf, pos)
    end = pos + header.size_in_bytes
    if header.magic != MAGIC_V2:
        raise _refuse(ErrorCode.CORRUPT_MESSAGE, f"record batch magic is {header.magic}, only 2 is supported")
    if header.size_in_bytes < HEADER_SIZE or end > len(buf):
        raise _refuse(
            ErrorCode.CORRUPT_MESSAGE,
            f"record batch of {header.size_in_bytes} bytes does not fit the {len(buf) - pos} bytes given",
        )
    if check_crc and batch_crc(buf, pos, end) != header.crc:
        raise _refuse(ErrorCode.CORRUPT_MESSAGE, f"record batch is corrupt (stored crc = {header.crc})")
    payload = bytes(buf[pos + HEADER_SIZE : end])
    if header.compression != COMPRESSION_NONE:
        payload = decompress(header.compression, payload)
    log_append_time = header.max_timestamp if header.timestamp_type == TIMESTAMP_LOG_APPEND_TIME else None
    return _decode_records(
        payload, header.records_count, header.base_offset, header.base_timestamp, log_append_time
    )
