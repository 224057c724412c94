"""Given a compacted log with small segments, when the cleaner runs, then each key keeps only its latest
record, offsets are preserved, tombstones go after delete.retention.ms, and batches keep their fields."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from moldau.clock import ManualClock
from moldau.protocol.records import (
    COMPRESSION_GZIP,
    COMPRESSION_LZ4,
    COMPRESSION_NONE,
    COMPRESSION_SNAPPY,
    COMPRESSION_ZSTD,
    DELETE_HORIZON_MASK,
    InvalidRecordError,
    Record,
    build_batch,
    decode_batch,
    iter_batches,
    read_batch_header,
)
from moldau.storage import Log
from moldau.storage.checkpoint_file import CheckpointFile
from moldau.storage.cleaner import (
    Cleaner,
    CleaningAbortedError,
    group_segments_by_size,
    validate_compacted_keys,
)
from moldau.storage.cleaner_records import build_retained_batch
from moldau.storage.log_cleaner import CleanerConfig, LogCleaner
from moldau.storage.log_cleaner_manager import CLEANER_OFFSET_CHECKPOINT_FILE, LogToClean
from moldau.storage.offset_map import SkimpyOffsetMap
from tests.storage.conftest import NOW

COMPACT = {"cleanup_policy": "compact", "segment_bytes": 2048, "file_delete_delay_ms": 0,
           "min_cleanable_dirty_ratio": 0.0}


def append(log: Log, records: list[tuple[bytes | None, bytes | None]], *, compression: int = COMPRESSION_NONE,
           timestamp: int = NOW, **batch_fields: object) -> None:
    batch = build_batch([Record(0, timestamp + i, k, v, [("h", b"x")]) for i, (k, v) in enumerate(records)],
                        compression=compression, **batch_fields)  # type: ignore[arg-type]
    log.append_as_leader(batch, leader_epoch=3, now_ms=NOW)
    log.update_high_watermark(log.log_end_offset)


def read_records(log: Log) -> list[Record]:
    out: list[Record] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        info = log.read(offset, 1 << 20)
        if info.records is None:
            break
        data = info.records.read_bytes()
        for pos, header in iter_batches(data):
            out.extend(decode_batch(data, pos))
            offset = header.last_offset + 1
    return out


def batches(log: Log) -> list[tuple[int, bytes]]:
    out = []
    for segment in log.segments:
        data = segment.read(segment.base_offset, 1 << 24)
        if data is None or data.records is None:
            continue
        raw = data.records.read_bytes()
        out += [(pos, raw[pos: pos + h.size_in_bytes]) for pos, h in iter_batches(raw)]
    return out


def latest_by_key(records: list[Record]) -> dict[bytes, bytes | None]:
    latest: dict[bytes, bytes | None] = {}
    for record in records:
        assert record.key is not None
        latest[record.key] = record.value
    return latest


def cleaner_for(log: Log, clock: ManualClock, **config: object) -> LogCleaner:
    return LogCleaner(CleanerConfig(**config), [log.dir.parent], lambda: [log], time_ms=clock.time_ms)


def fill(log: Log, rounds: int, keys: int, *, compression: int = COMPRESSION_NONE) -> dict[bytes, bytes | None]:
    expected: dict[bytes, bytes | None] = {}
    for r in range(rounds):
        records = [(f"k{(r * 7 + i) % keys}".encode(), f"v{r}-{i}".encode()) for i in range(5)]
        append(log, records, compression=compression)
        expected.update(records)
    log.roll()
    return expected


def test_clean_keeps_the_latest_record_of_each_key_and_preserves_offsets(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **COMPACT)
    expected = fill(log, 60, 13)
    before = read_records(log)
    size_before = log.size_in_bytes

    stats = cleaner_for(log, clock).clean_once()

    assert stats is not None and stats.messages_written == 13
    after = read_records(log)
    assert {r.key: r.value for r in after} == expected
    assert [r.offset for r in after] == sorted({r.offset for r in after})
    by_offset = {r.offset: r for r in before}
    for record in after:  # same offset, same record
        assert by_offset[record.offset] == record
    assert log.size_in_bytes < size_before
    assert log.log_end_offset == before[-1].offset + 1
    assert not [p for p in log.dir.iterdir() if p.name.endswith((".cleaned", ".swap"))]


@pytest.mark.parametrize("codec", [COMPRESSION_GZIP, COMPRESSION_SNAPPY, COMPRESSION_LZ4, COMPRESSION_ZSTD])
def test_rewritten_batches_keep_codec_producer_fields_epoch_and_headers(open_log, codec: int) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **COMPACT)
    for i in range(30):
        append(log, [(b"a", f"a{i}".encode()), (f"b{i % 3}".encode(), b"b")], compression=codec,
               producer_id=42, producer_epoch=5, base_sequence=2 * i)
    log.roll()

    cleaner_for(log, clock).clean_once()

    headers = [read_batch_header(raw) for _, raw in batches(log)]
    assert {h.compression for h in headers} == {codec}
    assert {(h.producer_id, h.producer_epoch, h.partition_leader_epoch) for h in headers} == {(42, 5, 3)}
    records = read_records(log)
    assert latest_by_key(records) == {b"a": b"a29", b"b0": b"b", b"b1": b"b", b"b2": b"b"}
    assert all(r.headers == [("h", b"x")] for r in records)
    assert [r.timestamp for r in records] == [NOW + (r.offset % 2) for r in records]


def test_tombstones_get_a_delete_horizon_and_go_after_delete_retention_ms(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, delete_retention_ms=1000, **COMPACT)
    append(log, [(b"a", b"1"), (b"b", b"1"), (b"c", b"1")])
    append(log, [(b"a", None), (b"b", b"2")])
    log.roll()
    cleaner = cleaner_for(log, clock)

    cleaner.clean_once()

    assert latest_by_key(read_records(log)) == {b"a": None, b"b": b"2", b"c": b"1"}
    tombstone_batch = [read_batch_header(raw) for _, raw in batches(log) if read_batch_header(raw).base_offset == 3]
    assert tombstone_batch[0].attributes & DELETE_HORIZON_MASK
    assert tombstone_batch[0].base_timestamp == NOW + 1000  # the horizon, in baseTimestamp (KIP-534)

    append(log, [(b"d", b"1")])  # new dirty data so that the log is picked again
    log.roll()
    clock.now_ms = NOW + 999
    cleaner.clean_once()
    assert b"a" in latest_by_key(read_records(log))

    append(log, [(b"e", b"1")])
    log.roll()
    clock.now_ms = NOW + 1000
    cleaner.clean_once()
    assert latest_by_key(read_records(log)) == {b"b": b"2", b"c": b"1", b"d": b"1", b"e": b"1"}


def test_the_cleaner_checkpoint_is_kafkas_file_and_the_next_clean_starts_there(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **COMPACT)
    fill(log, 40, 5)
    cleaner = cleaner_for(log, clock)
    cleaner.clean_once()
    entries = CheckpointFile(log.dir.parent / CLEANER_OFFSET_CHECKPOINT_FILE, 3).read()
    assert entries == [["users", "0", str(log.active_segment.base_offset)]]

    assert cleaner.clean_once() is None  # nothing dirty: below any ratio
    expected = fill(log, 3, 5)
    stats = cleaner.clean_once()
    assert stats is not None and stats.map_messages_read == 15  # only the new dirty section is mapped
    assert {k: v for k, v in latest_by_key(read_records(log)).items() if k in expected} == expected


def test_a_log_below_min_cleanable_dirty_ratio_is_not_cleaned(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **{**COMPACT, "min_cleanable_dirty_ratio": 0.99})
    fill(log, 40, 5)
    cleaner = cleaner_for(log, clock)
    cleaner.clean_once()  # all dirty: ratio 1.0
    fill(log, 2, 5)
    assert cleaner.clean_once() is None


def test_max_compaction_lag_forces_a_clean_below_the_ratio(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, max_compaction_lag_ms=5000,
                   **{**COMPACT, "min_cleanable_dirty_ratio": 0.99})
    fill(log, 40, 5)
    cleaner = cleaner_for(log, clock)
    cleaner.clean_once()
    fill(log, 2, 5)
    assert cleaner.clean_once() is None
    clock.now_ms = NOW + 10_000
    assert cleaner.clean_once() is not None


def test_min_compaction_lag_keeps_young_segments_dirty(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, min_compaction_lag_ms=60_000, **COMPACT)
    fill(log, 40, 5)
    cleaner = cleaner_for(log, clock)
    assert cleaner.clean_once() is None  # every record is younger than the lag
    clock.now_ms = NOW + 61_000
    assert cleaner.clean_once() is not None


def test_keyless_records_are_dropped_and_refused_at_produce(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **COMPACT)
    with pytest.raises(InvalidRecordError) as refused_append:  # the leader's validator refuses it
        append(log, [(None, b"x"), (b"a", b"1")])
    assert refused_append.value.error_code.name == "INVALID_RECORD" and log.log_end_offset == 0
    # A keyless record can still arrive by replication (no key check, as in Kafka): the cleaner drops it.
    log.append_as_follower(build_batch([Record(0, NOW, None, b"x"), Record(1, NOW, b"a", b"1")],
                                       partition_leader_epoch=3))
    log.update_high_watermark(log.log_end_offset)
    append(log, [(b"a", b"2")])
    log.roll()
    stats = cleaner_for(log, clock).clean_once()
    assert stats is not None and stats.invalid_messages == 1
    assert [(r.key, r.value) for r in read_records(log)] == [(b"a", b"2")]

    with pytest.raises(InvalidRecordError) as refused:
        validate_compacted_keys(build_batch([Record(0, NOW, None, b"v")]), "users-0")
    assert refused.value.error_code.name == "INVALID_RECORD"
    validate_compacted_keys(build_batch([Record(0, NOW, b"k", None)]), "users-0")


def test_control_batches_stay_and_a_producers_last_batch_stays_empty(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **COMPACT)
    append(log, [(b"a", b"1")], producer_id=7, producer_epoch=0, base_sequence=0)
    marker = build_batch([Record(0, NOW, b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00")],
                         base_offset=log.log_end_offset, is_control=True, is_transactional=True,
                         producer_id=9, producer_epoch=0, partition_leader_epoch=3)
    log.append_as_follower(marker, now_ms=NOW)  # markers come from the coordinator, not a producer
    append(log, [(b"a", b"2")])
    log.roll()

    cleaner_for(log, clock).clean_once()

    headers = [read_batch_header(raw) for _, raw in batches(log)]
    assert [(h.base_offset, h.records_count, h.is_control, h.producer_id) for h in headers] == [
        (0, 0, False, 7),  # RETAIN_EMPTY: producer 7's last sequence survives
        (1, 1, True, 9),
        (2, 1, False, -1),
    ]
    assert headers[0].base_sequence == 0 and headers[0].last_offset_delta == 0


def test_a_small_offset_map_cleans_in_several_passes(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **COMPACT)
    expected = fill(log, 80, 40)
    cleaner = cleaner_for(log, clock, dedupe_buffer_size=24 * 12)  # 10 keys per pass
    passes = 0
    while cleaner.clean_once() is not None:
        passes += 1
        assert passes < 50
    assert passes > 1
    assert latest_by_key(read_records(log)) == expected


def test_segments_are_grouped_up_to_segment_bytes(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **COMPACT)
    fill(log, 60, 1000)
    sizes = [s.size for s in log.segments[:-1]]
    groups = group_segments_by_size(list(log.segments[:-1]), 2 * max(sizes), 1 << 20, log.log_end_offset)
    assert all(sum(s.size for s in g) <= 2 * max(sizes) for g in groups)
    assert [s for g in groups for s in g] == list(log.segments[:-1])
    assert any(len(g) > 1 for g in groups)


def test_cleaned_log_survives_reopen(open_log, tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **COMPACT)
    expected = fill(log, 60, 13)
    cleaner_for(log, clock).clean_once()
    log.close()
    reopened = open_log("users-0", clock=clock.time_ms, **COMPACT)
    assert latest_by_key(read_records(reopened)) == expected


def test_leftover_cleaned_files_are_deleted_and_a_swap_is_completed_on_open(open_log, tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **{**COMPACT, "segment_bytes": 4096})
    expected = fill(log, 60, 13)
    log.flush()
    shutil.copytree(log.dir, tmp_path / "crashed-0")  # the log as it was before the clean
    cleaner_for(log, clock).clean_once()
    first = log.segments[0]
    assert first.size < 4096
    log.close()
    # A crash right after the cleaned files of the first group were renamed to .swap: the old segments
    # are all still there; a later group's .cleaned files are half written.
    crashed = tmp_path / "crashed-0"
    for suffix in (".log", ".index", ".timeindex"):
        shutil.copy(log.dir / f"{first.base_offset:020d}{suffix}", crashed / f"{first.base_offset:020d}{suffix}.swap")
    (crashed / f"{log.segments[1].base_offset:020d}.log.cleaned").write_bytes(b"half written")
    reopened = open_log("crashed-0", clock=clock.time_ms, **{**COMPACT, "segment_bytes": 4096})
    assert latest_by_key(read_records(reopened)) == expected
    assert reopened.segments[0].size == first.size  # the swap went in
    assert not [p for p in reopened.dir.iterdir() if p.name.endswith((".cleaned", ".swap"))]


def test_appends_and_reads_go_on_while_a_clean_runs(open_log) -> None:
    clock = ManualClock(NOW)
    # Replaced segments stay open for file.delete.delay.ms: reads that took the old segment list go on.
    log = open_log("users-0", clock=clock.time_ms, **{**COMPACT, "file_delete_delay_ms": 60_000})
    expected = fill(log, 200, 17)
    done = threading.Event()

    def clean() -> None:
        try:
            cleaner_for(log, clock).clean_once()
        finally:
            done.set()

    thread = threading.Thread(target=clean)
    thread.start()
    i = 0
    while not done.is_set() or i < 50:
        append(log, [(f"k{i % 17}".encode(), f"late{i}".encode())])
        expected[f"k{i % 17}".encode()] = f"late{i}".encode()
        assert read_records(log)[-1].value == f"late{i}".encode()
        i += 1
    thread.join(10)
    assert latest_by_key(read_records(log)) == expected


def test_a_segment_deleted_under_the_cleaner_aborts_the_clean(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **COMPACT)
    fill(log, 60, 13)
    to_clean = LogToClean(("users", 0), log, 0, log.active_segment.base_offset)
    dirty_segments = len(log.segments) - 1
    calls = 0

    def retention_strikes(_log: Log) -> None:  # right after the map is built, retention removes a segment
        nonlocal calls
        calls += 1
        if calls == dirty_segments + 1:
            log.maybe_increment_log_start_offset(log.segments[1].base_offset)
            log.delete_old_segments(NOW)

    cleaner = Cleaner(SkimpyOffsetMap(1 << 20), time_ms=clock.time_ms, check_done=retention_strikes)
    with pytest.raises(CleaningAbortedError, match="went away while it was being cleaned"):
        cleaner.clean(to_clean)
    assert not [p for p in log.dir.iterdir() if p.name.endswith((".cleaned", ".swap"))]
    assert read_records(log)[0].offset == log.log_start_offset


def test_build_retained_batch_round_trips_a_delete_horizon() -> None:
    original = build_batch([Record(0, NOW, b"a", None), Record(1, NOW + 5, b"b", b"1")], base_offset=10,
                           compression=COMPRESSION_ZSTD, producer_id=3, producer_epoch=1, base_sequence=4)
    header = read_batch_header(original)
    records = decode_batch(original)
    rebuilt = build_retained_batch(header, records[:1], NOW + 86_400_000)
    new_header = read_batch_header(rebuilt)
    assert new_header.base_timestamp == NOW + 86_400_000 and new_header.attributes & DELETE_HORIZON_MASK
    assert decode_batch(rebuilt) == records[:1]
    assert (new_header.base_offset, new_header.base_sequence, new_header.compression) == (10, 4, COMPRESSION_ZSTD)


def test_a_corrupt_batch_makes_the_log_uncleanable_without_touching_it(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **COMPACT)
    fill(log, 60, 13)
    segment = log.segments[1]
    with open(segment.log_path, "r+b") as f:
        f.seek(70)  # inside the first batch's records
        byte = f.read(1)
        f.seek(70)
        f.write(bytes([byte[0] ^ 0xFF]))
    sizes = [s.size for s in log.segments]
    cleaner = cleaner_for(log, clock)
    assert cleaner.clean_once() is None
    assert [s.size for s in log.segments] == sizes
    assert cleaner.clean_once() is None  # skipped from now on, as Kafka's uncleanable partitions
    assert not [p for p in log.dir.iterdir() if p.name.endswith((".cleaned", ".swap"))]


def test_the_cleaner_thread_cleans_in_the_background_and_stops(open_log) -> None:
    clock = ManualClock(NOW)
    log = open_log("users-0", clock=clock.time_ms, **COMPACT)
    expected = fill(log, 60, 13)
    cleaner = cleaner_for(log, clock, backoff_ms=10)
    cleaned = threading.Event()
    original = cleaner._try_clean_filthiest_log

    def observed(c: Cleaner) -> object:
        stats = original(c)
        if stats is not None:
            cleaned.set()
        return stats

    cleaner._try_clean_filthiest_log = observed  # type: ignore[method-assign]
    cleaner.startup()
    threads = list(cleaner._threads)  # its own: a broker another test left behind may have cleaner threads too
    try:
        assert cleaned.wait(10)
    finally:
        cleaner.shutdown()
    assert threads and all(t.name.startswith("kafka-log-cleaner") and not t.is_alive() for t in threads)
    assert latest_by_key(read_records(log)) == expected
