"""Given a compacted log of 1M records over 10k keys in gzip and zstd batches, with tombstones, when the
cleaner runs, then a full read gives exactly the latest value of each live key at increasing offsets,
and after delete.retention.ms the deleted keys are gone."""

from __future__ import annotations

import itertools

import pytest

from moldau.clock import ManualClock
from moldau.protocol.records import COMPRESSION_GZIP, COMPRESSION_ZSTD, Record, build_batch
from moldau.storage import Log
from tests.storage.conftest import NOW
from tests.storage.test_log_cleaner import cleaner_for, read_records

RECORDS = 1_000_000
KEYS = 10_000
BATCH = 250
DELETE_RETENTION_MS = 60_000


def key_of(i: int) -> bytes:
    return b"key-%05d" % (i % KEYS)


def is_tombstone(i: int) -> bool:
    # In the last round every 50th key is deleted.
    return i >= RECORDS - KEYS and (i % KEYS) % 50 == 0


def write(log: Log) -> dict[bytes, bytes | None]:
    expected: dict[bytes, bytes | None] = {}
    for n, base in enumerate(range(0, RECORDS, BATCH)):
        records = []
        for i in range(base, base + BATCH):
            value = None if is_tombstone(i) else b"value-%07d" % i
            records.append(Record(i, NOW, key_of(i), value))
            expected[key_of(i)] = value
        codec = COMPRESSION_GZIP if n % 2 else COMPRESSION_ZSTD
        log.append_as_leader(build_batch(records, compression=codec), leader_epoch=0, now_ms=NOW)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    return expected


@pytest.mark.timeout(300)
def test_one_million_records_over_ten_thousand_keys(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("scale-0", clock=clock.time_ms, cleanup_policy="compact", segment_bytes=1 << 20,
                   file_delete_delay_ms=0, delete_retention_ms=DELETE_RETENTION_MS, min_cleanable_dirty_ratio=0.0)
    expected = write(log)
    assert len(log.segments) > 5
    cleaner = cleaner_for(log, clock)

    stats = cleaner.clean_once()

    assert stats is not None and stats.messages_read == RECORDS
    after = read_records(log)
    offsets = [r.offset for r in after]
    assert all(a < b for a, b in itertools.pairwise(offsets))
    assert len(after) == KEYS
    assert {r.key: r.value for r in after} == expected  # tombstones still there: horizon not reached

    clock.now_ms = NOW + DELETE_RETENTION_MS
    log.append_as_leader(build_batch([Record(0, clock.now_ms, b"late", b"1")]), leader_epoch=0, now_ms=clock.now_ms)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    assert cleaner.clean_once() is not None

    final = read_records(log)
    live = {k: v for k, v in expected.items() if v is not None} | {b"late": b"1"}
    assert {r.key: r.value for r in final} == live
    assert len(final) == len(live) == KEYS - KEYS // 50 + 1
