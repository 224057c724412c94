"""LogSegment: append, read whole batches, translate offsets, recover, truncate, search by time."""

from __future__ import annotations

import os
from pathlib import Path

from moldau.protocol.records import Record, assign_offsets, build_batch, iter_batches, read_batch_header
from moldau.storage.config import LogConfig
from moldau.storage.leader_epoch_file_cache import LeaderEpochFileCache
from moldau.storage.segment import LogSegment

from .conftest import NOW, make_batch


def fill(segment: LogSegment, batches: int, *, start: int = 0, records: int = 3, epoch: int = 0) -> list[int]:
    """Append ``batches`` batches with offsets from ``start``; returns their positions."""
    positions = []
    offset = start
    for i in range(batches):
        buf = bytearray(make_batch(records, timestamp=NOW + i * 10, value_size=200))
        assign_offsets(buf, 0, offset, epoch, None)
        positions.append(segment.size)
        segment.append(offset + records - 1, NOW + i * 10, offset + records - 1, buf)
        offset += records
    return positions


def test_file_names_and_index_entries(tmp_path: Path) -> None:
    segment = LogSegment(tmp_path, 42, LogConfig(index_interval_bytes=1000))
    fill(segment, 20, start=42)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "00000000000000000042.index",
        "00000000000000000042.log",
        "00000000000000000042.timeindex",
    ]
    assert 0 < segment.offset_index.entries < 20  # sparse
    assert segment.read_next_offset() == 42 + 60
    segment.close()


def test_read_whole_batches_within_max_size(tmp_path: Path) -> None:
    segment = LogSegment(tmp_path, 0, LogConfig(index_interval_bytes=500))
    positions = fill(segment, 30)
    batch_size = positions[1]
    info = segment.read(10, batch_size * 3 + 5)
    assert info is not None and info.records is not None
    assert info.records.position == positions[3]  # offset 10 is in the 4th batch (offsets 9..11)
    assert info.records.size == batch_size * 3
    data = info.records.read_bytes()
    assert [h.base_offset for _, h in iter_batches(data)] == [9, 12, 15]
    # max_position stops before a batch; min_one_message returns a whole oversized first batch.
    assert segment.read(10, 10**6, max_position=positions[5]).records.size == batch_size * 2
    assert segment.read(10, 10, min_one_message=True).records.size == batch_size
    incomplete = segment.read(10, 10, min_one_message=False)
    assert incomplete.records is None and incomplete.first_entry_incomplete
    assert segment.read(90, 1000) is None  # past the end of the segment
    segment.close()


def test_translate_offset(tmp_path: Path) -> None:
    segment = LogSegment(tmp_path, 0, LogConfig(index_interval_bytes=300))
    positions = fill(segment, 40)
    for offset in (0, 1, 2, 3, 59, 60, 119):
        found = segment.translate_offset(offset)
        assert found is not None
        assert found.position == positions[offset // 3]
        assert found.base_offset <= offset <= found.last_offset
    assert segment.translate_offset(120) is None
    segment.close()


def test_recover_truncates_torn_tail_and_rebuilds_indexes(tmp_path: Path) -> None:
    config = LogConfig(index_interval_bytes=300)
    segment = LogSegment(tmp_path, 0, config)
    positions = fill(segment, 10, epoch=3)
    entries = segment.offset_index.entries
    segment.close()
    log_path = tmp_path / "00000000000000000000.log"
    size = log_path.stat().st_size
    os.truncate(log_path, size - 7)
    (tmp_path / "00000000000000000000.index").unlink()
    reopened = LogSegment(tmp_path, 0, config)
    cache = LeaderEpochFileCache(tmp_path / "leader-epoch-checkpoint")
    truncated = reopened.recover(cache)
    assert truncated == size - 7 - positions[9]
    assert reopened.size == positions[9]
    assert reopened.read_next_offset() == 27
    assert 0 < reopened.offset_index.entries <= entries
    assert cache.entries() == [(3, 0)]
    assert reopened.translate_offset(26).position == positions[8]
    reopened.close()


def test_recover_stops_at_corrupt_batch(tmp_path: Path) -> None:
    segment = LogSegment(tmp_path, 0, LogConfig())
    positions = fill(segment, 5)
    segment.close()
    with open(tmp_path / "00000000000000000000.log", "r+b") as f:
        f.seek(positions[2] + 70)
        f.write(b"\xff")
    reopened = LogSegment(tmp_path, 0, LogConfig())
    assert reopened.recover() > 0
    assert reopened.size == positions[2]
    assert reopened.read_next_offset() == 6
    reopened.close()


def test_truncate_to(tmp_path: Path) -> None:
    segment = LogSegment(tmp_path, 0, LogConfig(index_interval_bytes=300))
    positions = fill(segment, 20)
    size = segment.size
    assert segment.truncate_to(30) == size - positions[10]
    assert segment.size == positions[10]
    assert segment.read_next_offset() == 30
    assert segment.max_timestamp_so_far == NOW + 90
    fill(segment, 2, start=30)
    assert segment.read_next_offset() == 36
    segment.close()


def test_find_offset_by_timestamp_decodes_one_batch(tmp_path: Path) -> None:
    segment = LogSegment(tmp_path, 0, LogConfig(index_interval_bytes=100))
    offset = 0
    for i in range(10):
        records = [Record(j, NOW + i * 100 + j * 10, None, b"x" * 50) for j in range(5)]
        buf = bytearray(build_batch(records))
        assign_offsets(buf, 0, offset, 1, None)
        segment.append(offset + 4, NOW + i * 100 + 40, offset + 4, buf)
        offset += 5
    assert segment.find_offset_by_timestamp(NOW, 0) == (NOW, 0, 1)
    assert segment.find_offset_by_timestamp(NOW + 315, 0) == (NOW + 320, 17, 1)
    assert segment.find_offset_by_timestamp(NOW + 300, 18) == (NOW + 330, 18, 1)
    assert segment.find_offset_by_timestamp(NOW + 941, 0) is None
    assert segment.offset_of_max_timestamp() == (NOW + 940, 49, 1)
    segment.close()


def test_time_based_roll_uses_first_batch_timestamp(tmp_path: Path) -> None:
    segment = LogSegment(tmp_path, 0, LogConfig(), time_ms=lambda: NOW)
    fill(segment, 1)
    kwargs = {"max_segment_bytes": 10**9, "max_offset_in_messages": 10, "messages_size": 100, "now_ms": NOW}
    assert not segment.should_roll(max_segment_ms=1000, max_timestamp_in_messages=NOW + 1000, **kwargs)
    assert segment.should_roll(max_segment_ms=1000, max_timestamp_in_messages=NOW + 1001, **kwargs)
    segment.close()
    assert read_batch_header(build_batch([Record(0, NOW, None, b"")])).max_timestamp == NOW
