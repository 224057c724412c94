"""LogValidator: one pass over produced batches (structure, CRC, keys, timestamps, recompression)."""

from __future__ import annotations

import pytest

from moldau.protocol import records as records_module
from moldau.protocol.records import InvalidRecordError, Record, build_batch, decode_batch, iter_batches
from moldau.storage import log_validator
from moldau.storage.config import LogConfig
from moldau.storage.log_validator import validate_records

from .conftest import NOW, OpenLog, read_all_batches

COMPACT = {"cleanup_policy": "compact"}


def two_batches(compression: int = 0) -> bytes:
    return b"".join(
        build_batch([Record(0, NOW, b"k%d" % i, b"v" * 50) for i in range(3)], compression=compression)
        for _ in range(2)
    )


def test_recompressing_a_compacted_append_checks_each_crc_once(open_log: OpenLog, monkeypatch) -> None:
    # Before: recompress validated (CRC), decoded (CRC), the compacted-key check decoded again (CRC) and
    # the append validated the re-encoded batches (CRC): four checks per batch. Now one check, plus the
    # CRC that build_batch computes for each re-encoded batch.
    calls = []
    produced = two_batches(compression=0)

    def counting_crc(buf, pos, end):  # type: ignore[no-untyped-def]
        calls.append(end - pos)
        return real_crc(buf, pos, end)

    real_crc = records_module.batch_crc
    monkeypatch.setattr(records_module, "batch_crc", counting_crc)
    monkeypatch.setattr(log_validator, "batch_crc", counting_crc)
    log = open_log("users-0", **COMPACT)
    info = log.append_as_leader(produced, leader_epoch=0, now_ms=NOW, compression_type="gzip")
    assert len(calls) == 2 + 2
    assert (info.first_offset, info.last_offset) == (0, 5)
    stored = read_all_batches(log)
    assert [h.compression for h in stored] == [1, 1]


def test_producer_codec_on_a_plain_topic_decodes_nothing(monkeypatch) -> None:
    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("the zero-copy path decoded records")

    monkeypatch.setattr(log_validator, "decode_batch", no_decode)
    data = two_batches(compression=4)
    validated = validate_records(data, LogConfig(), NOW)
    assert validated.records is data and not validated.recompressed
    assert [pos for pos, _ in validated.batches] == [pos for pos, _ in iter_batches(data)]


def test_compacted_topic_refuses_keyless_records_before_recompressing() -> None:
    keyless = build_batch([Record(0, NOW, None, b"v")], compression=2)
    with pytest.raises(InvalidRecordError) as refused:
        validate_records(keyless, LogConfig(**COMPACT), NOW, compression_type="zstd", topic_partition="users-0")
    assert refused.value.error_code.name == "INVALID_RECORD" and "users-0" in str(refused.value)


def test_recompressed_batches_keep_records_and_producer_fields() -> None:
    batch = build_batch([Record(0, NOW + i, b"k", b"v%d" % i) for i in range(4)], compression=3,
                        producer_id=7, producer_epoch=2, base_sequence=10)
    validated = validate_records(batch, LogConfig(), NOW, compression_type="snappy")
    (_, header), = validated.batches
    assert validated.recompressed and header.compression == 2
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 2, 10)
    assert [r.value for r in decode_batch(bytes(validated.records))] == [b"v%d" % i for i in range(4)]
