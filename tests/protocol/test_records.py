"""Record batch v2: round trips, compatibility with independent decoders, and produce validation."""

from __future__ import annotations

import struct

import cramjam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import (
    HEADER_SIZE,
    InvalidRecordError,
    Record,
    RecordBatchHeader,
    assign_offsets,
    batch_crc,
    build_batch,
    decode_batch,
    iter_batches,
    read_batch_header,
)
from moldau.storage.log_validator import validate_produce_batches, validate_timestamps

CODECS = [0, 1, 2, 3, 4]
NOW = 1_700_000_000_000


def sample_records(n: int = 5) -> list[Record]:
    return [
        Record(
            offset=i,
            timestamp=NOW + i * 7 - (3 if i == 2 else 0),
            key=None if i % 3 == 0 else f"key-{i}".encode(),
            value=None if i == 4 else bytes(range(i * 11 % 256)) * 3,
            headers=[("trace", b"abc"), ("empty", None)] if i % 2 else [],
        )
        for i in range(n)
    ]


def as_tuples(records) -> list[tuple]:
    return [(r.offset, r.timestamp, r.key, r.value, [(h[0], h[1]) for h in r.headers]) for r in records]


# -- round trips ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_build_decode_round_trip(codec: int) -> None:
    records = sample_records()
    batch = build_batch(
        records, base_offset=0, compression=codec, producer_id=7, producer_epoch=1, base_sequence=3
    )
    header = read_batch_header(batch)
    assert header.compression == codec
    assert header.size_in_bytes == len(batch)
    assert header.records_count == 5 and header.last_offset_delta == 4
    assert header.base_timestamp == records[0].timestamp
    assert header.max_timestamp == max(r.timestamp for r in records)
    assert header.crc == batch_crc(batch, 0, len(batch))
    assert decode_batch(batch) == records


def test_build_batch_flags_and_offsets() -> None:
    records = [Record(100, NOW, b"k", b"v"), Record(103, NOW + 1, b"k", b"w")]  # a gap, as after compaction
    batch = build_batch(
        records, base_offset=100, is_transactional=True, partition_leader_epoch=4, use_record_offsets=True
    )
    header = read_batch_header(batch)
    assert (header.base_offset, header.last_offset, header.partition_leader_epoch) == (100, 103, 4)
    assert header.is_transactional and not header.is_control
    assert [r.offset for r in decode_batch(batch)] == [100, 103]
    with pytest.raises(ValueError):
        build_batch([Record(5, NOW, None, b"x"), Record(5, NOW, None, b"y")], use_record_offsets=True)
    # A producer's batch: offsets are positions, whatever the records say.
    plain = build_batch([Record(0, NOW, None, b"x"), Record(0, NOW, None, b"y")], base_offset=10)
    assert [r.offset for r in decode_batch(plain)] == [10, 11]
    with pytest.raises(ValueError):
        build_batch([])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-(2**40), 2**40),
            st.none() | st.binary(max_size=40),
            st.none() | st.binary(max_size=200),
            st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=8)), max_size=3),
        ),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from(CODECS),
)
def test_round_trip_property(rows, codec: int) -> None:
    records = [
        Record(i, NOW + ts, key, value, list(headers)) for i, (ts, key, value, headers) in enumerate(rows)
    ]
    assert decode_batch(build_batch(records, compression=codec)) == records


# -- compatibility with independent implementations -----------------------------------------------------


@pytest.mark.parametrize("codec", [0, 1])
def test_kafka_python_decodes_our_batches(codec: int) -> None:
    from kafka.record.default_records import DefaultRecordBatch

    records = sample_records()
    theirs = DefaultRecordBatch(build_batch(records, compression=codec))
    assert theirs.validate_crc()
    assert as_tuples(theirs) == as_tuples(records)


@pytest.mark.parametrize("codec", [0, 1])
def test_we_decode_kafka_python_batches(codec: int) -> None:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    records = sample_records()
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for r in records:
        builder.append(r.offset, timestamp=r.timestamp, key=r.key, value=r.value, headers=r.headers)
    raw = bytes(builder.build())
    assert validate_produce_batches(raw, 1 << 20)[0][1].records_count == 5
    assert decode_batch(raw) == records


@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_decodes_our_batches(codec: int) -> None:
    from aiokafka.record.default_records import DefaultRecordBatch

    records = sample_records()
    theirs = DefaultRecordBatch(build_batch(records, compression=codec))
    assert theirs.validate_crc()
    assert as_tuples(theirs) == as_tuples(records)


@pytest.mark.parametrize("codec", CODECS)
def test_we_decode_aiokafka_batches(codec: int) -> None:
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    records = sample_records()
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for r in records:
        builder.append(r.offset, timestamp=r.timestamp, key=r.key, value=r.value, headers=r.headers)
    assert decode_batch(bytes(builder.build())) == records


def _with_payload(batch: bytes, payload: bytes) -> bytes:
    """Replace the records blob of ``batch`` and fix its length and CRC."""
    out = bytearray(batch[:HEADER_SIZE] + payload)
    struct.pack_into(">i", out, 8, len(out) - 12)
    struct.pack_into(">I", out, 17, batch_crc(out, 0, len(out)))
    return bytes(out)


def test_snappy_raw_block_as_librdkafka_sends_it() -> None:
    records = sample_records()
    plain = build_batch(records)
    snappy = bytearray(build_batch(records, compression=2))
    raw = bytes(cramjam.snappy.compress_raw(plain[HEADER_SIZE:]))
    assert decode_batch(_with_payload(bytes(snappy), raw)) == records


def test_snappy_is_xerial_framed_like_the_java_producer() -> None:
    batch = build_batch(sample_records(), compression=2)
    assert batch[HEADER_SIZE : HEADER_SIZE + 8] == b"\x82SNAPPY\x00"


def test_lz4_frame_has_independent_blocks() -> None:
    batch = build_batch(sample_records(), compression=3)
    blob = batch[HEADER_SIZE:]
    assert blob[:4] == b"\x04\x22\x4d\x18"  # LZ4 frame magic
    assert blob[4] & 0x20  # FLG.B.Indep: Kafka's KafkaLZ4BlockInputStream decodes block by block


# -- produce validation ------------------------------------------------------------------------------------


def refusal(buf: bytes | bytearray, max_message_bytes: int = 1 << 20) -> ErrorCode:
    with pytest.raises(InvalidRecordError) as info:
        validate_produce_batches(buf, max_message_bytes)
    return info.value.error_code


def test_valid_batches_return_positions_and_headers() -> None:
    a, b = build_batch(sample_records(3)), build_batch(sample_records(2), compression=4)
    result = validate_produce_batches(a + b, 1 << 20)
    assert [pos for pos, _ in result] == [0, len(a)]
    assert all(isinstance(h, RecordBatchHeader) for _, h in result)
    assert validate_produce_batches(memoryview(bytearray(a)), 1 << 20)[0][1].records_count == 3


def test_flipped_byte_is_corrupt_message() -> None:
    batch = bytearray(build_batch(sample_records()))
    batch[HEADER_SIZE + 5] ^= 0x01
    assert refusal(batch) == ErrorCode.CORRUPT_MESSAGE


def test_flipped_byte_in_crc_covered_header_is_corrupt_message() -> None:
    batch = bytearray(build_batch(sample_records()))
    batch[40] ^= 0x80  # inside maxTimestamp
    assert refusal(batch) == ErrorCode.CORRUPT_MESSAGE


def test_magic_1_is_invalid_record() -> None:
    # A legacy v1 message set: offset, size, crc, magic 1, attributes, timestamp, key, value.
    body = struct.pack(">bbqi", 1, 0, NOW, -1) + struct.pack(">i", 3) + b"abc"
    legacy = struct.pack(">qiI", 0, len(body) + 4, 0) + body
    assert refusal(legacy) == ErrorCode.INVALID_RECORD


def test_bad_magic_is_corrupt_message() -> None:
    batch = bytearray(build_batch(sample_records()))
    batch[16] = 7
    assert refusal(batch) == ErrorCode.CORRUPT_MESSAGE


def test_truncated_batch_is_refused() -> None:
    batch = build_batch(sample_records())
    # Kafka: the only batch being incomplete means no batch at all (ProduceRequest.validateRecords).
    assert refusal(batch[:-1]) == ErrorCode.INVALID_RECORD
    assert refusal(batch[:30]) == ErrorCode.INVALID_RECORD
    assert refusal(b"") == ErrorCode.INVALID_RECORD
    # A whole batch followed by a partial one: Kafka keeps the whole one and trims the rest.
    assert len(validate_produce_batches(batch + batch[:40], 1 << 20)) == 1


def test_batch_length_below_minimum_is_corrupt_message() -> None:
    batch = bytearray(build_batch(sample_records()))
    struct.pack_into(">i", batch, 8, 10)
    assert refusal(batch) == ErrorCode.CORRUPT_MESSAGE
    struct.pack_into(">i", batch, 8, 30)  # a v2 batch shorter than its own header
    assert refusal(batch) == ErrorCode.CORRUPT_MESSAGE


def test_oversized_batch_is_message_too_large() -> None:
    batch = build_batch([Record(0, NOW, None, b"x" * 2000)])
    assert refusal(batch, max_message_bytes=len(batch) - 1) == ErrorCode.MESSAGE_TOO_LARGE
    assert validate_produce_batches(batch, len(batch))


def _patched(batch: bytes, fmt: str, offset: int, value: int) -> bytearray:
    out = bytearray(batch)
    struct.pack_into(fmt, out, offset, value)
    struct.pack_into(">I", out, 17, batch_crc(out, 0, len(out)))
    return out


def test_batch_level_rules_are_invalid_record() -> None:
    batch = build_batch(sample_records())
    assert refusal(_patched(batch, ">q", 0, 5)) == ErrorCode.INVALID_RECORD  # baseOffset must be 0
    assert refusal(_patched(batch, ">i", 57, 4)) == ErrorCode.INVALID_RECORD  # count != lastOffsetDelta + 1
    assert refusal(_patched(batch, ">i", 57, 0)) == ErrorCode.INVALID_RECORD
    assert refusal(_patched(batch, ">i", 23, -1)) == ErrorCode.INVALID_RECORD
    assert refusal(_patched(batch, ">h", 21, 0x20)) == ErrorCode.INVALID_RECORD  # control batch from a client
    assert refusal(_patched(batch, ">h", 21, 0x06)) == ErrorCode.INVALID_RECORD  # compression id 6
    idempotent = build_batch(sample_records(), producer_id=9, producer_epoch=0, base_sequence=0)
    assert refusal(_patched(idempotent, ">i", 53, -1)) == ErrorCode.INVALID_RECORD


def test_timestamp_bounds() -> None:
    header = read_batch_header(build_batch([Record(0, NOW, None, b"x")]))
    validate_timestamps(header, NOW, 10, 10)
    with pytest.raises(InvalidRecordError) as future:
        validate_timestamps(header, NOW - 11, 2**63 - 1, 10)
    assert future.value.error_code == ErrorCode.INVALID_TIMESTAMP
    with pytest.raises(InvalidRecordError) as past:
        validate_timestamps(header, NOW + 11, 10, 2**63 - 1)
    assert past.value.error_code == ErrorCode.INVALID_TIMESTAMP


# -- offset assignment ------------------------------------------------------------------------------------


def test_assign_offsets_patches_offset_and_epoch_only() -> None:
    batch = build_batch(sample_records())
    buf = bytearray(b"xx" + batch)
    assign_offsets(buf, 2, 1234, 9, None)
    header = read_batch_header(buf, 2)
    assert (header.base_offset, header.partition_leader_epoch, header.last_offset) == (1234, 9, 1238)
    assert buf[2 + 17 :] == batch[17:]  # CRC and everything it covers unchanged
    assert [r.offset for r in decode_batch(buf, 2)] == list(range(1234, 1239))


@pytest.mark.parametrize("codec", [0, 1, 3])
def test_assign_offsets_log_append_time(codec: int) -> None:
    from aiokafka.record.default_records import DefaultRecordBatch

    batch = build_batch(sample_records(), compression=codec, is_transactional=True)
    buf = bytearray(batch)
    assign_offsets(buf, 0, 50, 2, NOW + 999)
    header = read_batch_header(buf)
    assert header.timestamp_type == 1 and header.is_transactional and header.compression == codec
    assert header.max_timestamp == NOW + 999 and header.base_timestamp == NOW
    assert header.crc == batch_crc(buf, 0, len(buf))
    assert [r.timestamp for r in decode_batch(buf)] == [NOW + 999] * 5
    theirs = DefaultRecordBatch(bytes(buf))
    assert theirs.validate_crc() and theirs.timestamp_type == 1


# -- iteration ----------------------------------------------------------------------------------------------


def test_iter_batches_stops_at_truncated_tail() -> None:
    a, b = build_batch(sample_records(2)), build_batch(sample_records(3))
    data = a + b + a
    assert [pos for pos, _ in iter_batches(data)] == [0, len(a), len(a) + len(b)]
    assert [pos for pos, _ in iter_batches(data[:-1])] == [0, len(a)]
    assert [pos for pos, _ in iter_batches(data[: len(a) + 20])] == [0]
    assert list(iter_batches(b"")) == []


def test_decode_batch_rejects_corruption() -> None:
    batch = bytearray(build_batch(sample_records(), compression=1))
    batch[-3] ^= 0xFF
    with pytest.raises(InvalidRecordError) as info:
        decode_batch(batch)
    assert info.value.error_code == ErrorCode.CORRUPT_MESSAGE
    with pytest.raises(InvalidRecordError):
        decode_batch(batch[:50])
