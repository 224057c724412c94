"""Given a partition log, when idempotent producers append, retry, fence and the log restarts, then the
log answers as Kafka's ProducerStateManager does."""

from __future__ import annotations

import struct

import google_crc32c
import pytest

from moldau.protocol.records import Record, build_batch
from moldau.storage.errors import InvalidProducerEpochError, OutOfOrderSequenceError
from moldau.storage.producer_snapshot import (
    CorruptSnapshotError,
    decode_snapshot,
    encode_snapshot,
    list_snapshot_files,
)
from moldau.storage.producer_state_entry import INT_MAX, ProducerStateEntry
from tests.storage.conftest import NOW

PID = 1000


def idem(seq: int, count: int = 1, *, pid: int = PID, epoch: int = 0, timestamp: int = NOW) -> bytes:
    records = [Record(i, timestamp, None, b"x" * 50) for i in range(count)]
    return build_batch(records, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def append(log, batch: bytes):
    return log.append_as_leader(batch, leader_epoch=0, now_ms=NOW)


def test_a_retried_batch_gets_its_original_offsets_and_is_not_written_again(open_log):
    log = open_log()
    append(log, build_batch([Record(0, NOW, None, b"plain")]))
    first = append(log, idem(0, 3))
    append(log, idem(3, 2))
    end = log.log_end_offset
    retry = append(log, idem(0, 3))
    assert (retry.first_offset, retry.last_offset) == (first.first_offset, first.last_offset) == (1, 3)
    assert log.log_end_offset == end


def test_a_sequence_gap_is_out_of_order(open_log):
    log = open_log()
    append(log, idem(0, 2))
    with pytest.raises(OutOfOrderSequenceError) as caught:
        append(log, idem(5))
    assert caught.value.error_code == 45
    # an overlapping range that is not exactly a retained batch is out of order too
    with pytest.raises(OutOfOrderSequenceError):
        append(log, idem(1, 2))
    assert log.log_end_offset == 2


def test_an_older_epoch_is_fenced_and_a_new_epoch_starts_at_sequence_zero(open_log):
    log = open_log()
    append(log, idem(0, epoch=3))
    with pytest.raises(InvalidProducerEpochError) as caught:
        append(log, idem(1, epoch=2))
    assert caught.value.error_code == 47
    with pytest.raises(OutOfOrderSequenceError):
        append(log, idem(7, epoch=4))
    append(log, idem(0, epoch=4))
    assert log.active_producers()[0].producer_epoch == 4


def test_an_unknown_producer_may_start_at_any_sequence(open_log):
    """Kafka 2.5+ (KIP-360): no UNKNOWN_PRODUCER_ID on append; the state may have expired."""
    log = open_log()
    info = append(log, idem(42, 2))
    assert info.first_offset == 0
    append(log, idem(44))


def test_sequences_wrap_around_at_int_max(open_log):
    log = open_log()
    append(log, idem(INT_MAX - 1, 2))  # INT_MAX - 1, INT_MAX
    append(log, idem(0, 2))
    with pytest.raises(OutOfOrderSequenceError):
        append(log, idem(5))
    wrapped = append(log, idem(INT_MAX - 2, 5, pid=7))  # INT_MAX-2 .. 1
    assert append(log, idem(INT_MAX - 2, 5, pid=7)).first_offset == wrapped.first_offset
    assert log.active_producers()[0].last_seq == 1


def test_only_the_last_five_batches_are_recognised_as_retries(open_log):
    log = open_log()
    for seq in range(6):
        append(log, idem(seq))
    assert append(log, idem(1)).first_offset == 1
    with pytest.raises(OutOfOrderSequenceError):
        append(log, idem(0))


def test_state_survives_a_clean_restart_from_the_snapshot_written_on_close(tmp_path, open_log):
    log = open_log()
    append(log, idem(0, 2))
    append(log, idem(2, 2))
    log.close()
    assert list(list_snapshot_files(log.dir)) == [4]
    reopened = open_log(had_clean_shutdown=True)
    assert append(reopened, idem(2, 2)).first_offset == 2
    append(reopened, idem(4))


def test_state_after_a_crash_is_the_last_roll_snapshot_plus_the_replayed_tail(open_log):
    log = open_log(segment_bytes=400)
    offsets = [append(log, idem(seq)).first_offset for seq in range(12)]
    assert len(log.segments) > 2
    snapshots = list(list_snapshot_files(log.dir))
    assert snapshots == [s.base_offset for s in log.segments[1:]]
    # a crash: no close, no snapshot at the log end; the next open replays from the last roll
    crashed = open_log(had_clean_shutdown=False)
    for seq in range(7, 12):
        assert append(crashed, idem(seq)).first_offset == offsets[seq]
    assert crashed.log_end_offset == 12
    with pytest.raises(OutOfOrderSequenceError):
        append(crashed, idem(20))


def test_a_corrupt_snapshot_falls_back_to_an_older_one(open_log):
    log = open_log(segment_bytes=400)
    for seq in range(12):
        append(log, idem(seq))
    latest = max(list_snapshot_files(log.dir))
    list_snapshot_files(log.dir)[latest].write_bytes(b"\x00\x01garbage")
    reopened = open_log()
    assert append(reopened, idem(11)).first_offset == 11
    assert latest not in list_snapshot_files(log.dir)  # the corrupt one was deleted, not trusted


def test_truncation_rebuilds_the_state_below_the_target(open_log):
    log = open_log(segment_bytes=400)
    for seq in range(10):
        append(log, idem(seq))
    log.truncate_to(5)
    assert all(offset <= 5 for offset in list_snapshot_files(log.dir))
    assert log.active_producers()[0].last_seq == 4
    assert append(log, idem(5)).first_offset == 5
    log.truncate_fully_and_start_at(100)
    assert log.active_producers() == []
    assert list_snapshot_files(log.dir) == {}


def test_deleting_segments_deletes_their_snapshots_but_keeps_the_producers(open_log):
    log = open_log(segment_bytes=400, retention_bytes=0, file_delete_delay_ms=0)
    for seq in range(10):
        append(log, idem(seq))
    log.update_high_watermark(log.log_end_offset)
    assert log.delete_old_segments(NOW) > 0
    assert all(offset >= log.log_start_offset for offset in list_snapshot_files(log.dir))
    assert append(log, idem(9)).first_offset == 9  # still a known retry (KIP-360 keeps the state)


def test_idle_producers_expire(open_log):
    log = open_log()
    append(log, idem(0, timestamp=NOW - 10_000))
    append(log, idem(0, pid=2, timestamp=NOW))
    assert log.remove_expired_producers(NOW, 5_000) == 1
    assert [e.producer_id for e in log.active_producers()] == [2]


def test_snapshot_encoding_round_trips_every_retained_batch_and_detects_corruption():
    entry = ProducerStateEntry(9, producer_epoch=2)
    for seq in range(3, 11, 2):
        entry.add_batch(2, last_seq=seq, last_offset=100 + seq, offset_delta=1, timestamp=NOW)
    data = encode_snapshot([entry])
    (decoded,) = decode_snapshot(data)
    assert decoded == entry
    broken = bytearray(data)
    broken[-1] ^= 1
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(bytes(broken))
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(data[:-3])


def test_kafka_version_1_snapshots_are_read():
    body = struct.pack(">i", 1) + struct.pack(">qhiqiqiq", 9, 2, 10, 500, 3, NOW, -1, -1)
    data = struct.pack(">hI", 1, google_crc32c.value(body)) + body
    (decoded,) = decode_snapshot(data)
    assert (decoded.producer_id, decoded.producer_epoch, decoded.last_seq, decoded.first_seq) == (9, 2, 10, 7)
    assert decoded.batch_metadata[-1].first_offset == 497
    assert decoded.current_txn_first_offset is None
