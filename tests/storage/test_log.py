"""Log (Kafka's UnifiedLog): appends, reads, rolls, offsets, retention, truncation, flush, reload."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import pytest

from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import (
    InvalidRecordError,
    Record,
    build_batch,
    decode_batch,
    iter_batches,
    read_batch_header,
)
from moldau.storage import KafkaStorageError, Log, LogConfig, OffsetOutOfRangeError
from moldau.storage.log import parse_topic_partition_name
from moldau.storage.scheduler import MockScheduler

from .conftest import NOW, MakeBatch, OpenLog, ReadAll, make_batch

SMALL = {"segment_bytes": 4096, "index_interval_bytes": 512}


def append_many(
    log: Log, count: int, *, records: int = 2, value_size: int = 150, epoch: int = 0
) -> list[int]:
    firsts = []
    for i in range(count):
        batch = make_batch(records, timestamp=NOW + i * 10, value_size=value_size)
        firsts.append(log.append_as_leader(batch, leader_epoch=epoch, now_ms=NOW + i * 10).first_offset)
    return firsts


# -- append --------------------------------------------------------------------------------------------------


def test_append_assigns_offsets_from_the_log_end(open_log: OpenLog, batch: MakeBatch) -> None:
    log = open_log()
    first = log.append_as_leader(batch(3), leader_epoch=5, now_ms=NOW)
    second = log.append_as_leader(batch(2), leader_epoch=5, now_ms=NOW)
    assert (first.first_offset, first.last_offset, first.num_messages) == (0, 2, 3)
    assert (second.first_offset, second.last_offset) == (3, 4)
    assert first.log_append_time == -1 and first.log_start_offset == 0
    assert log.log_end_offset == 5
    data = log.read(0, 10**6).records.read_bytes()
    headers = [h for _, h in iter_batches(data)]
    assert [(h.base_offset, h.partition_leader_epoch) for h in headers] == [(0, 5), (3, 5)]
    assert [r.offset for r in decode_batch(data, headers[0].size_in_bytes)] == [3, 4]


def test_append_several_batches_at_once(open_log: OpenLog, batch: MakeBatch) -> None:
    log = open_log()
    info = log.append_as_leader(batch(2) + batch(3) + batch(1), leader_epoch=0, now_ms=NOW)
    assert (info.first_offset, info.last_offset, info.num_messages) == (0, 5, 6)
    headers = [h for _, h in iter_batches(log.read(0, 10**6).records.read_bytes())]
    assert [(h.base_offset, h.last_offset) for h in headers] == [(0, 1), (2, 4), (5, 5)]


def test_append_does_not_modify_the_callers_buffer(open_log: OpenLog, batch: MakeBatch) -> None:
    log = open_log()
    log.append_as_leader(batch(1), leader_epoch=0, now_ms=NOW)
    original = bytearray(batch(1))
    log.append_as_leader(original, leader_epoch=0, now_ms=NOW)
    assert read_batch_header(original).base_offset == 0


def test_log_append_time(open_log: OpenLog, batch: MakeBatch) -> None:
    log = open_log(message_timestamp_type="LogAppendTime")
    info = log.append_as_leader(batch(3, timestamp=5), leader_epoch=0, now_ms=NOW + 77)
    assert info.log_append_time == NOW + 77
    data = log.read(0, 10**6).records.read_bytes()
    header = read_batch_header(data)
    assert header.timestamp_type == 1 and header.max_timestamp == NOW + 77
    assert [r.timestamp for r in decode_batch(data)] == [NOW + 77] * 3  # CRC still valid


def test_append_refusals(open_log: OpenLog, batch: MakeBatch) -> None:
    log = open_log(max_message_bytes=2000, segment_bytes=1500)
    corrupt = bytearray(batch(1))
    corrupt[-1] ^= 1
    cases = [
        (corrupt, ErrorCode.CORRUPT_MESSAGE),
        (batch(1, value_size=3000), ErrorCode.MESSAGE_TOO_LARGE),
        (batch(1, value_size=1600), ErrorCode.RECORD_LIST_TOO_LARGE),  # fits max.message.bytes, not a segment
        (batch(1, timestamp=NOW + 3_600_001), ErrorCode.INVALID_TIMESTAMP),  # after.max.ms: one hour
    ]
    for records, code in cases:
        with pytest.raises(InvalidRecordError) as info:
            log.append_as_leader(records, leader_epoch=0, now_ms=NOW)
        assert info.value.error_code == code
    assert log.log_end_offset == 0


def test_leader_epoch_checkpoint(open_log: OpenLog, batch: MakeBatch, tmp_path: Path) -> None:
    log = open_log()
    log.append_as_leader(batch(2), leader_epoch=0, now_ms=NOW)
    log.append_as_leader(batch(2), leader_epoch=0, now_ms=NOW)
    log.append_as_leader(batch(2), leader_epoch=3, now_ms=NOW)
    assert (tmp_path / "orders-0" / "leader-epoch-checkpoint").read_text() == "0\n2\n0 0\n3 4\n"
    assert log.end_offset_for_epoch(0) == (4, 0)
    assert log.end_offset_for_epoch(2) == (4, 0)
    assert log.end_offset_for_epoch(3) == (6, 3)
    assert log.end_offset_for_epoch(7) is None
    log.truncate_to(4)
    assert log.leader_epoch_cache.entries() == [(0, 0)]


# -- segments and reads -----------------------------------------------------------------------------------------


def test_append_and_read_across_segment_rolls(open_log: OpenLog, read_all: ReadAll) -> None:
    log = open_log(**SMALL)
    firsts = append_many(log, 100)
    assert len(log.segments) > 5
    assert all(s.size <= 4096 for s in log.segments)
    assert [s.base_offset for s in log.segments[1:]] == sorted(s.base_offset for s in log.segments[1:])
    headers = read_all(log)
    assert [h.base_offset for h in headers] == firsts
    assert log.size_in_bytes == sum(s.size for s in log.segments)
    # Reading from every offset, including ones in the middle of a batch, starts at the batch holding it.
    for offset in range(0, log.log_end_offset, 7):
        region = log.read(offset, 1).records
        first = read_batch_header(region.read_bytes())
        assert first.base_offset <= offset <= first.last_offset


def test_read_stays_in_one_segment(open_log: OpenLog) -> None:
    log = open_log(**SMALL)
    append_many(log, 30)
    first_segment_end = log.segments[1].base_offset
    data = log.read(0, 10**6).records.read_bytes()
    assert [h for _, h in iter_batches(data)][-1].last_offset == first_segment_end - 1


def test_min_one_message_with_max_bytes_smaller_than_a_batch(open_log: OpenLog, batch: MakeBatch) -> None:
    log = open_log()
    log.append_as_leader(batch(5, value_size=500), leader_epoch=0, now_ms=NOW)
    log.append_as_leader(batch(5, value_size=500), leader_epoch=0, now_ms=NOW)
    size = log.segments[0].size // 2
    one = log.read(0, 100)
    assert one.records.size == size and not one.first_entry_incomplete  # KIP-74: the whole first batch
    none = log.read(0, 100, min_one_message=False)
    assert none.records is None and none.first_entry_incomplete
    assert log.read(0, size + 100).records.size == size  # never a partial batch
    assert log.read(0, 2 * size).records.size == 2 * size


def test_read_never_passes_max_offset(open_log: OpenLog) -> None:
    log = open_log(**SMALL)
    append_many(log, 40)  # batches of two records: 0..1, 2..3, ...
    for high_watermark in (30, 31):  # 31 falls inside batch 30..31, which stays unreadable (Kafka)
        log.update_high_watermark(high_watermark)
        for start in range(30):
            info = log.read(start, 10**6, max_offset=log.high_watermark)
            headers = [h for _, h in iter_batches(info.records.read_bytes())]
            assert headers[0].base_offset <= start and headers[-1].last_offset < 30
        assert log.read(30, 10**6, max_offset=log.high_watermark).records is None
    assert log.read(log.log_end_offset, 100).records is None


def test_read_out_of_range(open_log: OpenLog, batch: MakeBatch) -> None:
    log = open_log()
    log.append_as_leader(batch(3), leader_epoch=0, now_ms=NOW)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(4, 100)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100)
    assert log.read(3, 100).records is None


def test_high_watermark_is_clamped(open_log: OpenLog, batch: MakeBatch) -> None:
    log = open_log()
    assert log.high_watermark == 0
    log.append_as_leader(batch(10), leader_epoch=0, now_ms=NOW)
    assert log.update_high_watermark(4) == 4
    assert log.update_high_watermark(99) == 10
    assert log.update_high_watermark(-3) == 0
    log.update_high_watermark(10)
    log.maybe_increment_log_start_offset(6)
    assert log.update_high_watermark(2) == 6


# -- offsets by timestamp ------------------------------------------------------------------------------------------


def test_fetch_offset_by_timestamp(open_log: OpenLog) -> None:
    log = open_log(**SMALL)
    for i in range(50):  # batch i: offsets 3i..3i+2, timestamps NOW + 100i + {0, 5, 10}
        log.append_as_leader(make_batch(3, timestamp=NOW + 100 * i, step_ms=5), leader_epoch=2, now_ms=NOW)
    assert log.fetch_offset_by_timestamp(-2) == (0, -1, 2)  # EARLIEST
    assert log.fetch_offset_by_timestamp(-1) == (150, -1, 2)  # LATEST: last offset + 1
    assert log.fetch_offset_by_timestamp(-4) == (0, -1, 2)  # EARLIEST_LOCAL
    assert log.fetch_offset_by_timestamp(-5) == (-1, -1, -1)  # LATEST_TIERED: no tiered storage
    assert log.fetch_offset_by_timestamp(-3) == (149, NOW + 4910, 2)  # MAX_TIMESTAMP
    assert log.fetch_offset_by_timestamp(NOW) == (0, NOW, 2)
    assert log.fetch_offset_by_timestamp(NOW - 1000) == (0, NOW, 2)
    assert log.fetch_offset_by_timestamp(NOW + 2003) == (61, NOW + 2005, 2)
    assert log.fetch_offset_by_timestamp(NOW + 2011) == (63, NOW + 2100, 2)
    assert log.fetch_offset_by_timestamp(NOW + 4910) == (149, NOW + 4910, 2)
    assert log.fetch_offset_by_timestamp(NOW + 4911) is None


def test_max_timestamp_is_the_first_record_with_it(open_log: OpenLog) -> None:
    log = open_log()
    records = [Record(0, NOW, None, b"a"), Record(1, NOW + 50, None, b"b"), Record(2, NOW + 20, None, b"c")]
    log.append_as_leader(make_batch(1, timestamp=NOW - 5), leader_epoch=0, now_ms=NOW)
    log.append_as_leader(build_batch(records), leader_epoch=1, now_ms=NOW)
    assert log.fetch_offset_by_timestamp(-3) == (2, NOW + 50, 1)


def test_offsets_by_timestamp_on_an_empty_log(open_log: OpenLog) -> None:
    log = open_log()
    assert log.fetch_offset_by_timestamp(-1) == (0, -1, -1)
    assert log.fetch_offset_by_timestamp(-2) == (0, -1, -1)
    assert log.fetch_offset_by_timestamp(-3) is None
    assert log.fetch_offset_by_timestamp(NOW) is None


# -- flush ----------------------------------------------------------------------------------------------------------


def test_flush_advances_the_recovery_point(open_log: OpenLog) -> None:
    log = open_log(**SMALL)
    append_many(log, 20)  # the rolled segments' flushes stay queued on the mock scheduler
    assert log.recovery_point == 0 and log.unflushed_messages == 40
    assert log.should_flush(NOW)  # rolled segments are waiting for their fsync
    log.flush(up_to_offset=10)
    assert log.recovery_point == 10
    log.flush()
    assert log.recovery_point == log.log_end_offset and not log.should_flush(NOW + 10**9)


def test_each_roll_schedules_a_flush_of_the_rolled_segment(open_log: OpenLog, scheduler: MockScheduler) -> None:
    # Kafka's UnifiedLog.roll: scheduleOnce("flush-log", flushUptoOffsetExclusive(newSegment.baseOffset)).
    log = open_log(**SMALL)
    while len(log.segments) < 4:
        append_many(log, 1)
    assert log.recovery_point == 0, "a roll must not fsync on the appending thread"
    assert [name for name, _ in scheduler.pending] == ["flush-log"] * 3
    scheduler.run_pending()
    assert log.recovery_point == log.active_segment.base_offset > 0
    assert log.unflushed_messages == log.log_end_offset - log.active_segment.base_offset


def test_should_flush_honours_flush_messages_and_flush_ms(open_log: OpenLog) -> None:
    log = open_log(flush_messages=5, flush_ms=1000)
    append_many(log, 2)
    assert not log.should_flush(NOW)
    assert log.should_flush(NOW + 1000)
    append_many(log, 1)
    assert log.should_flush(NOW)


def test_flush_from_a_thread_while_appending(open_log: OpenLog, read_all: ReadAll) -> None:
    log = open_log(**SMALL)
    stop = threading.Event()
    errors: list[BaseException] = []

    def flusher() -> None:
        try:
            while not stop.is_set():
                log.flush()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        firsts = append_many(log, 300)
        for offset in range(0, log.log_end_offset, 37):
            assert log.read(offset, 2000).records is not None
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors
    log.flush()
    assert log.recovery_point == log.log_end_offset
    assert [h.base_offset for h in read_all(log)] == firsts


# -- retention, DeleteRecords, truncation ----------------------------------------------------------------------------


def test_retention_by_time_deletes_whole_committed_segments(open_log: OpenLog, read_all: ReadAll) -> None:
    log = open_log(retention_ms=1000, file_delete_delay_ms=0, **SMALL)
    append_many(log, 60)  # timestamps NOW .. NOW + 590
    segments = log.segments
    assert log.delete_old_segments(NOW + 1500) == 0  # nothing committed yet: the high watermark is 0
    log.update_high_watermark(log.log_end_offset)
    cutoff = NOW + 300 + 1000
    expected = [s for s in segments[:-1] if s.max_timestamp_so_far < NOW + 300]
    assert log.delete_old_segments(cutoff) == len(expected)
    assert log.log_start_offset == log.segments[0].base_offset == segments[len(expected)].base_offset
    assert read_all(log)[0].base_offset == log.log_start_offset
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 100)
    # Everything expired: the active segment goes too, after an empty one is rolled (Kafka).
    assert log.delete_old_segments(NOW + 10**6) > 0
    assert len(log.segments) == 1 and log.segments[0].size == 0
    assert log.log_start_offset == log.log_end_offset == 120
    assert log.fetch_offset_by_timestamp(-2)[0] == 120
    assert sorted(p.name for p in log.dir.iterdir() if p.suffix == ".log") == ["00000000000000000120.log"]


def test_retention_by_size(open_log: OpenLog) -> None:
    log = open_log(retention_bytes=10_000, retention_ms=-1, **SMALL)
    append_many(log, 80)
    log.update_high_watermark(log.log_end_offset)
    total = log.size_in_bytes
    deleted = log.delete_old_segments(NOW)
    assert deleted > 0
    assert log.size_in_bytes < total
    assert log.size_in_bytes >= 10_000  # never below retention.bytes
    assert log.size_in_bytes - log.segments[0].size < 10_000  # one more segment would have been too many
    # Deleted files wait file.delete.delay.ms as *.deleted, then go.
    assert any(p.name.endswith(".log.deleted") for p in log.dir.iterdir())
    log.delete_old_segments(NOW + 60_001)
    assert not any(p.name.endswith(".deleted") for p in log.dir.iterdir())


def test_regions_of_deleted_segments_stay_readable(open_log: OpenLog) -> None:
    log = open_log(retention_ms=0, **SMALL)
    append_many(log, 30)
    log.update_high_watermark(log.log_end_offset)
    region = log.read(0, 1000).records
    expected = region.read_bytes()
    assert log.delete_old_segments(NOW + 10**6) > 0
    assert region.read_bytes() == expected  # renamed to .deleted, the file is still open


def test_delete_records_moves_the_log_start_offset(open_log: OpenLog) -> None:
    log = open_log(**SMALL)
    append_many(log, 40)
    with pytest.raises(OffsetOutOfRangeError):
        log.maybe_increment_log_start_offset(10)  # beyond the high watermark
    log.update_high_watermark(log.log_end_offset)
    assert log.maybe_increment_log_start_offset(37)
    assert not log.maybe_increment_log_start_offset(20)
    assert log.fetch_offset_by_timestamp(-2)[0] == 37
    with pytest.raises(OffsetOutOfRangeError):
        log.read(36, 100)
    first = read_batch_header(log.read(37, 100).records.read_bytes())
    assert first.base_offset == 36  # the batch holding offset 37; clients skip offsets below the start
    segments_before = len(log.segments)
    log.delete_old_segments(NOW)  # retention.ms not reached: only segments below the start go
    assert len(log.segments) < segments_before
    assert (
        log.segments[0].base_offset <= 37 < (log.segments[1].base_offset if len(log.segments) > 1 else 10**9)
    )


def test_truncate_to(open_log: OpenLog, read_all: ReadAll) -> None:
    log = open_log(**SMALL)
    append_many(log, 60, epoch=1)
    log.append_as_leader(make_batch(2), leader_epoch=2, now_ms=NOW)
    log.update_high_watermark(log.log_end_offset)
    log.flush()
    assert log.truncate_to(50)
    assert log.log_end_offset == 50 and log.high_watermark == 50 and log.recovery_point == 50
    assert read_all(log)[-1].last_offset == 49
    assert log.leader_epoch_cache.entries() == [(1, 0)]
    assert not log.truncate_to(80)
    info = log.append_as_leader(make_batch(1), leader_epoch=3, now_ms=NOW)
    assert info.first_offset == 50
    assert log.truncate_to(0)
    assert log.log_end_offset == 0 and log.size_in_bytes == 0


def test_truncate_fully_and_start_at(open_log: OpenLog) -> None:
    log = open_log(**SMALL)
    append_many(log, 30)
    log.truncate_fully_and_start_at(1000)
    assert (log.log_start_offset, log.log_end_offset, len(log.segments)) == (1000, 1000, 1)
    assert log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW).first_offset == 1000


def test_append_as_follower(open_log: OpenLog) -> None:
    leader = open_log("orders-0", **SMALL)
    follower = open_log("orders-1", **SMALL)
    append_many(leader, 20, epoch=4)
    offset = 0
    while offset < leader.log_end_offset:
        data = leader.read(offset, 3000).records.read_bytes()
        info = follower.append_as_follower(data)
        offset = info.last_offset + 1
    assert follower.log_end_offset == leader.log_end_offset
    assert follower.leader_epoch_cache.entries() == [(4, 0)]
    assert follower.read(0, 10**6).records.read_bytes() == leader.read(0, 10**6).records.read_bytes()
    with pytest.raises(Exception, match="below the log end offset"):
        follower.append_as_follower(leader.read(0, 100).records.read_bytes())


# -- reload -----------------------------------------------------------------------------------------------------------


def test_reopen_after_clean_close(open_log: OpenLog, read_all: ReadAll) -> None:
    log = open_log(**SMALL)
    firsts = append_many(log, 50, epoch=7)
    log.flush()
    log.close()
    reopened = open_log(recovery_point=log.log_end_offset, had_clean_shutdown=True, **SMALL)
    assert reopened.log_end_offset == 100 and reopened.recovery_point == 100
    assert [h.base_offset for h in read_all(reopened)] == firsts
    assert reopened.fetch_offset_by_timestamp(NOW + 250) == (50, NOW + 250, 7)
    assert reopened.append_as_leader(make_batch(1), leader_epoch=7, now_ms=NOW).first_offset == 100


def test_indexes_are_rebuilt_when_missing(open_log: OpenLog, read_all: ReadAll) -> None:
    log = open_log(**SMALL)
    firsts = append_many(log, 50)
    log.flush()
    log.close()
    index_files = [p for p in log.dir.iterdir() if p.suffix in (".index", ".timeindex")]
    before = {p.name: p.read_bytes() for p in index_files}
    for path in index_files:
        path.unlink()
    reopened = open_log(recovery_point=100, had_clean_shutdown=True, **SMALL)
    assert [h.base_offset for h in read_all(reopened)] == firsts
    after = {p.name: p.read_bytes() for p in reopened.dir.iterdir() if p.suffix in (".index", ".timeindex")}
    assert after.keys() == before.keys()
    assert after == before  # the rebuilt indexes are the ones the appends wrote


def test_corrupt_index_is_rebuilt(open_log: OpenLog, read_all: ReadAll) -> None:
    log = open_log(**SMALL)
    firsts = append_many(log, 30)
    log.flush()
    log.close()
    index = min(log.dir.glob("*.index"))
    index.write_bytes(index.read_bytes() + b"\x01\x02\x03")
    reopened = open_log(recovery_point=60, had_clean_shutdown=True, **SMALL)
    assert [h.base_offset for h in read_all(reopened)] == firsts


def test_stray_files_are_handled(open_log: OpenLog, tmp_path: Path) -> None:
    log = open_log(**SMALL)
    append_many(log, 30)
    log.flush()
    log.close()
    dir = tmp_path / "orders-0"
    (dir / "00000000000000000007.log.deleted").write_bytes(b"x")
    (dir / "00000000000000000009.log.cleaned").write_bytes(b"x")
    (dir / "00000000000000099999.index").write_bytes(b"")  # orphaned index
    reopened = open_log(recovery_point=60, had_clean_shutdown=True, **SMALL)
    names = {p.name for p in dir.iterdir()}
    assert not any(n.endswith((".deleted", ".cleaned")) for n in names)
    assert "00000000000000099999.index" not in names
    assert reopened.log_end_offset == 60


def test_swap_file_replaces_the_segments_it_covers(open_log: OpenLog, tmp_path: Path) -> None:
    log = open_log(**SMALL)
    append_many(log, 30)
    log.flush()
    log.close()
    dir = tmp_path / "orders-0"
    first, second = log.segments[0], log.segments[1]
    # A "compacted" replacement of the first segment: its first batch only, as an interrupted swap left it.
    raw = (dir / first.log_path.name).read_bytes()
    keep = read_batch_header(raw).size_in_bytes
    (dir / f"{first.base_offset:020d}.log.swap").write_bytes(raw[:keep])
    reopened = open_log(recovery_point=60, had_clean_shutdown=True, **SMALL)
    assert reopened.segments[0].size == keep
    assert reopened.segments[1].base_offset == second.base_offset
    assert not any(p.name.endswith(".swap") for p in dir.iterdir())


def test_partition_directory_names() -> None:
    assert parse_topic_partition_name("my.topic_name-with-dashes-12") == ("my.topic_name-with-dashes", 12)
    for bad in ("orders", "-3", "orders-", "orders-x"):
        with pytest.raises(ValueError):
            parse_topic_partition_name(bad)


def test_closed_log_refuses_appends(open_log: OpenLog) -> None:
    log = open_log()
    log.close()
    with pytest.raises(KafkaStorageError):
        log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW)


def test_segment_index_full_rolls(open_log: OpenLog) -> None:
    log = open_log(segment_index_bytes=24, index_interval_bytes=1)  # 3 offset entries, 2 time entries
    append_many(log, 20)
    assert len(log.segments) > 3
    assert all(s.offset_index.entries <= 3 for s in log.segments)


def test_config_defaults_are_kafkas() -> None:
    config = LogConfig()
    assert (config.segment_bytes, config.segment_ms, config.segment_index_bytes) == (
        2**30,
        604800000,
        10485760,
    )
    assert (config.index_interval_bytes, config.retention_ms, config.retention_bytes) == (4096, 604800000, -1)
    assert (config.max_message_bytes, config.message_timestamp_type) == (1048588, "CreateTime")
    assert config.flush_messages == config.flush_ms == 2**63 - 1
    with pytest.raises(ValueError):
        LogConfig(message_timestamp_type="Wallclock")


def test_header_struct_matches_record_batch_layout() -> None:
    header = struct.calcsize(">qiibIhiqqqhii")
    assert header == 61


def test_segment_ms_rolls_by_record_time(open_log: OpenLog) -> None:
    log = open_log(segment_ms=1000)
    log.append_as_leader(make_batch(1, timestamp=NOW), leader_epoch=0, now_ms=NOW)
    log.append_as_leader(make_batch(1, timestamp=NOW + 1000), leader_epoch=0, now_ms=NOW)
    assert len(log.segments) == 1
    log.append_as_leader(make_batch(1, timestamp=NOW + 1001), leader_epoch=0, now_ms=NOW)
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_log_start_checkpoint_beyond_the_data_empties_the_log(open_log: OpenLog) -> None:
    log = open_log(**SMALL)
    append_many(log, 10)
    log.close()
    reopened = open_log(log_start_offset=500, **SMALL)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (500, 500)
    assert [s.base_offset for s in reopened.segments] == [500]


def test_a_flush_fsyncs_only_the_files_that_changed(open_log, batch, monkeypatch) -> None:
    """With flush.messages=1 every acknowledgement waits for a flush: an index gets an entry only every
    index.interval.bytes, so a flush after a small append fsyncs the .log alone (not .index, .timeindex)."""
    import os as os_module

    log = open_log(index_interval_bytes=1 << 20)
    log.append_as_leader(batch(1), leader_epoch=0, now_ms=NOW)
    log.flush()
    synced: list[int] = []
    real_fsync = os_module.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os_module, "fsync", counting_fsync)
    for _ in range(3):
        log.append_as_leader(batch(1), leader_epoch=0, now_ms=NOW)
        log.flush()
    assert len(synced) == 3, f"{len(synced)} fsyncs for 3 flushes"
    assert log.recovery_point == log.log_end_offset == 4
