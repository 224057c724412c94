"""OffsetIndex and TimeIndex: Kafka's file formats, lookups, truncation, reloading."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from moldau.storage.errors import CorruptIndexError
from moldau.storage.offset_index import OffsetIndex
from moldau.storage.time_index import TimeIndex


def test_offset_index_file_is_kafkas_format(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000100.index"
    index = OffsetIndex(path, 100, 1024)
    index.append(103, 0)
    index.append(110, 4500)
    index.close()
    assert path.read_bytes() == struct.pack(">iiii", 3, 0, 10, 4500)


def test_offset_index_lookup(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "00000000000000000100.index", 100, 1024)
    assert index.lookup(150) == (100, 0)
    for i in range(1, 50):
        index.append(100 + i * 10, i * 1000)
    assert index.lookup(99) == (100, 0)
    assert index.lookup(109) == (100, 0)
    assert index.lookup(110) == (110, 1000)
    assert index.lookup(255) == (250, 15000)
    assert index.lookup(10_000) == (590, 49000)
    assert index.floor_position(15500) == 15000
    assert index.floor_position(10) == 0
    assert index.last_offset == 590


def test_offset_index_refuses_bad_appends(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "00000000000000000000.index", 0, 16)  # two entries
    index.append(5, 0)
    with pytest.raises(ValueError):
        index.append(5, 100)
    index.append(6, 100)
    assert index.is_full()
    with pytest.raises(ValueError):
        index.append(7, 200)
    assert not index.can_append_offset(2**31)


def test_offset_index_truncate_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000000.index"
    index = OffsetIndex(path, 0, 1024)
    for i in range(10):
        index.append(i * 10 + 9, i * 100)
    index.truncate_to(50)  # removes entries for offsets >= 50
    assert index.entries == 5 and index.last_offset == 49
    assert path.stat().st_size == 5 * 8
    index.close()
    reloaded = OffsetIndex(path, 0, 1024)
    assert reloaded.entries == 5
    assert reloaded.lookup(45) == (39, 300)
    reloaded.append(59, 500)
    assert reloaded.entries == 6
    reloaded.reset()
    assert reloaded.entries == 0 and path.stat().st_size == 0


def test_offset_index_sanity_check(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000000.index"
    path.write_bytes(b"\x00" * 12)
    with pytest.raises(CorruptIndexError):
        OffsetIndex(path, 0, 1024).sanity_check()
    path.write_bytes(struct.pack(">ii", -5, 0))
    with pytest.raises(CorruptIndexError):
        OffsetIndex(path, 0, 1024).sanity_check()
    path.unlink()
    with pytest.raises(CorruptIndexError):
        OffsetIndex(path, 0, 1024).sanity_check()


def test_time_index_format_and_lookup(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000050.timeindex"
    index = TimeIndex(path, 50, 1200)
    assert index.lookup(1000) == (-1, 50)
    assert index.last_entry() == (-1, 50)
    index.maybe_append(1000, 55)
    index.maybe_append(1000, 57)  # same timestamp: ignored, as in Kafka
    index.maybe_append(2000, 60)
    index.maybe_append(3000, 70)
    assert path.read_bytes()[:12] == struct.pack(">qi", 1000, 5)
    assert index.entries == 3
    assert index.lookup(999) == (-1, 50)
    assert index.lookup(2500) == (2000, 60)
    assert index.lookup(9999) == (3000, 70)
    with pytest.raises(ValueError):
        index.maybe_append(2500, 80)  # timestamps never go back
    index.close()
    reloaded = TimeIndex(path, 50, 1200)
    assert reloaded.last_entry() == (3000, 70)  # read without loading the whole file
    reloaded.truncate_to(60)
    assert reloaded.last_entry() == (1000, 55)
    assert path.stat().st_size == 12


def test_time_index_sanity_check(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000000.timeindex"
    path.write_bytes(struct.pack(">qi", 5000, 1) + struct.pack(">qi", 4000, 2))
    with pytest.raises(CorruptIndexError):
        TimeIndex(path, 0, 1200).sanity_check()
    path.write_bytes(struct.pack(">qi", 5000, 1) + b"\x00")
    with pytest.raises(CorruptIndexError):
        TimeIndex(path, 0, 1200).sanity_check()


def test_unload_reads_the_file_again(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000000.index"
    index = OffsetIndex(path, 0, 1024)
    index.append(9, 0)
    index.close()
    index.unload()
    assert index.entries == 1
    assert index.lookup(20) == (9, 0)
