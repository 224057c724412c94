"""Crash recovery: given a log whose unflushed tail was torn or overwritten by a crash, when it is reopened
without a clean shutdown, then every batch before the damage is readable, in order, and appends continue
right after the last intact batch (Kafka's LogLoader + LogSegment.recover)."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from moldau.protocol.records import decode_batch
from moldau.storage import Log, LogConfig

from .conftest import NOW, make_batch, read_all_batches

CONFIG = LogConfig(segment_bytes=2048, index_interval_bytes=256)


def build_log(dir: Path, batch_records: list[int]) -> tuple[Log, list[tuple[int, int, int, int, int]]]:
    """Append one batch per entry of ``batch_records``; returns (segment base, position, size, first, last)."""
    log = Log.open(dir, CONFIG, now_ms=lambda: NOW)
    placed = []
    for i, count in enumerate(batch_records):
        segment_count = len(log.segments)
        info = log.append_as_leader(
            make_batch(count, timestamp=NOW + i, value_size=40), leader_epoch=1, now_ms=NOW
        )
        segment = log.segments[-1]
        size = info.valid_bytes
        assert len(log.segments) >= segment_count
        placed.append((segment.base_offset, segment.size - size, size, info.first_offset, info.last_offset))
    return log, placed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch_records=st.lists(st.integers(1, 12), min_size=1, max_size=40),
    flushed_fraction=st.floats(0, 1),
    damage_fraction=st.floats(0, 1),
    mode=st.sampled_from(["truncate", "garbage", "zeros"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_recovery_after_a_torn_tail(
    batch_records: list[int], flushed_fraction: float, damage_fraction: float, mode: str, seed: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dir = Path(tmp) / "orders-0"
        log, placed = build_log(dir, batch_records)
        last_base = log.segments[-1].base_offset
        last_size = log.segments[-1].size
        in_last = [p for p in placed if p[0] == last_base]
        assume(in_last)
        # Flush up to a batch boundary; a crash can only damage what was not flushed.
        flushed_batches = int(flushed_fraction * len(placed))
        flushed_offset = placed[flushed_batches][3] if flushed_batches < len(placed) else log.log_end_offset
        log.flush(up_to_offset=flushed_offset)
        recovery_point = log.recovery_point
        log.close()
        flushed_in_last = sum(p[2] for p in in_last if p[4] < recovery_point)
        assume(flushed_in_last < last_size)
        damage_at = flushed_in_last + int(damage_fraction * (last_size - flushed_in_last - 1))

        path = dir / f"{last_base:020d}.log"
        if mode == "truncate":
            os.truncate(path, damage_at)
        else:
            with open(path, "r+b") as f:
                f.seek(damage_at)
                tail = f.read()
                rng = random.Random(seed)
                if mode == "garbage":  # every byte changed
                    damaged = bytes(b ^ rng.randrange(1, 256) for b in tail)
                else:  # pages that never reached the disk
                    damaged = bytes(len(tail))
                f.seek(damage_at)
                f.write(damaged)
            # Zeros over bytes that were zero change nothing: the damage starts at the first changed byte.
            changed = [i for i, (a, b) in enumerate(zip(tail, damaged, strict=True)) if a != b]
            damage_at = damage_at + changed[0] if changed else last_size

        intact = [p for p in placed if p[0] != last_base or p[1] + p[2] <= damage_at]
        expected_end = intact[-1][4] + 1 if intact else 0

        reopened = Log.open(dir, CONFIG, recovery_point=recovery_point, now_ms=lambda: NOW)
        try:
            assert reopened.log_end_offset == expected_end
            assert reopened.recovery_point == min(recovery_point, expected_end)
            headers = read_all_batches(reopened)
            assert [(h.base_offset, h.last_offset) for h in headers] == [(p[3], p[4]) for p in intact]
            info = reopened.append_as_leader(make_batch(2), leader_epoch=2, now_ms=NOW)
            assert info.first_offset == expected_end
            data = reopened.read(expected_end, 1).records.read_bytes()
            assert [r.offset for r in decode_batch(data)] == [expected_end, expected_end + 1]
        finally:
            reopened.close()


def test_corrupt_segment_in_the_middle_drops_the_segments_after_it(tmp_path: Path) -> None:
    dir = tmp_path / "orders-0"
    log, placed = build_log(dir, [5] * 40)
    segments = log.segments
    assert len(segments) >= 4
    log.close()
    middle = segments[1]
    victim = next(p for p in placed if p[0] == middle.base_offset and p[1] > 0)
    with open(dir / f"{middle.base_offset:020d}.log", "r+b") as f:
        f.seek(victim[1] + 40)  # inside the CRC-covered header of that batch
        f.write(b"\xde\xad")

    reopened = Log.open(dir, CONFIG, recovery_point=0, now_ms=lambda: NOW)
    try:
        assert reopened.log_end_offset == victim[3]
        assert [s.base_offset for s in reopened.segments] == [segments[0].base_offset, middle.base_offset]
        assert not (dir / f"{segments[2].base_offset:020d}.log").exists()
        assert [h.base_offset for h in read_all_batches(reopened)] == [
            p[3] for p in placed if p[3] < victim[3]
        ]
    finally:
        reopened.close()


def test_clean_shutdown_skips_recovery_but_not_a_partial_tail(tmp_path: Path) -> None:
    dir = tmp_path / "orders-0"
    log, placed = build_log(dir, [3] * 10)
    log.flush()
    log.close()
    path = dir / f"{log.segments[-1].base_offset:020d}.log"
    with open(path, "ab") as f:
        f.write(make_batch(2)[:30])  # a torn append the marker could not know about
    reopened = Log.open(dir, CONFIG, recovery_point=30, had_clean_shutdown=True, now_ms=lambda: NOW)
    try:
        assert reopened.log_end_offset == 30
        assert reopened.append_as_leader(make_batch(1), leader_epoch=1, now_ms=NOW).first_offset == 30
        assert [h.base_offset for h in read_all_batches(reopened)] == [p[3] for p in placed] + [30]
    finally:
        reopened.close()


def test_clean_shutdown_still_cuts_a_last_batch_that_fails_its_crc(tmp_path: Path) -> None:
    dir = tmp_path / "orders-0"
    log, placed = build_log(dir, [3] * 10)
    log.flush()
    log.close()
    path = dir / f"{log.segments[-1].base_offset:020d}.log"
    content = bytearray(path.read_bytes())
    content[-5] ^= 0xFF  # damage at rest, inside the last batch's records
    path.write_bytes(bytes(content))
    reopened = Log.open(dir, CONFIG, recovery_point=30, had_clean_shutdown=True, now_ms=lambda: NOW)
    try:
        assert reopened.log_end_offset == 27 and reopened.recovery_point == 27
        assert [h.base_offset for h in read_all_batches(reopened)] == [p[3] for p in placed][:-1]
        assert reopened.append_as_leader(make_batch(1), leader_epoch=1, now_ms=NOW).first_offset == 27
    finally:
        reopened.close()


def test_leader_epochs_are_recovered_from_the_batches(tmp_path: Path) -> None:
    dir = tmp_path / "orders-0"
    log = Log.open(dir, CONFIG, now_ms=lambda: NOW)
    for epoch in (0, 0, 2, 5):
        log.append_as_leader(make_batch(2), leader_epoch=epoch, now_ms=NOW)
    log.close()
    (dir / "leader-epoch-checkpoint").unlink()  # never fsynced before the crash
    reopened = Log.open(dir, CONFIG, recovery_point=0, now_ms=lambda: NOW)
    try:
        assert reopened.leader_epoch_cache.entries() == [(0, 0), (2, 4), (5, 6)]
    finally:
        reopened.close()
