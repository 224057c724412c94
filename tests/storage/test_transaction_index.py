"""Given a partition log, when transactional producers append and the coordinator writes markers, then the
last stable offset, the aborted-transaction index (``.txnindex``) and the producer state follow Kafka."""

from __future__ import annotations

import pytest

from moldau.coordinator.transaction_marker_writer import marker_batch
from moldau.protocol.records import Record, build_batch
from moldau.storage.errors import InvalidProducerEpochError
from moldau.storage.producer_state_manager import InvalidTxnStateError
from moldau.storage.transaction_index import AbortedTxn, TransactionIndex
from tests.storage.conftest import NOW


def txn(pid: int, seq: int, count: int = 1, epoch: int = 0, transactional: bool = True) -> bytes:
    records = [Record(i, NOW, None, b"x" * 20) for i in range(count)]
    return build_batch(records, producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                       is_transactional=transactional)


def append(log, batch: bytes):
    return log.append_as_leader(batch, leader_epoch=0, now_ms=NOW)


def end(log, pid: int, committed: bool, epoch: int = 0):
    return log.append_as_coordinator(marker_batch(pid, epoch, 0, committed), leader_epoch=0, now_ms=NOW)


def settle(log) -> None:
    log.update_high_watermark(log.log_end_offset)


def test_lso_stops_at_the_first_open_transaction_and_aborts_are_indexed(open_log):
    log = open_log()
    append(log, txn(1, 0, 2))        # 0-1 producer 1
    append(log, txn(2, 0))           # 2 producer 2
    append(log, txn(1, 2))           # 3
    settle(log)
    assert log.last_stable_offset == 0
    end(log, 1, committed=False)     # 4: abort producer 1
    settle(log)
    assert log.last_stable_offset == 2  # producer 2 still open
    end(log, 2, committed=True)      # 5
    settle(log)
    assert log.last_stable_offset == log.high_watermark == 6
    assert log.collect_aborted_transactions(0, 6) == [AbortedTxn(1, 0, 4, 2)]
    assert log.collect_aborted_transactions(5, 6) == []
    # one 34-byte entry in the .txnindex of the segment holding the abort marker
    assert [p.stat().st_size for p in log.dir.glob("*.txnindex")] == [34]


def test_transaction_state_survives_a_crash_and_a_clean_restart(open_log):
    log = open_log(segment_bytes=300)
    for seq in range(6):
        append(log, txn(1, seq))
    end(log, 1, committed=False)
    append(log, txn(2, 0))           # stays open
    settle(log)
    aborted = log.collect_aborted_transactions(0, log.log_end_offset)
    assert [t.producer_id for t in aborted] == [1]
    crashed = open_log(segment_bytes=300)  # no close: state from the last roll snapshot plus replay
    crashed.update_high_watermark(crashed.log_end_offset)
    assert crashed.last_stable_offset == 7
    assert crashed.collect_aborted_transactions(0, crashed.log_end_offset) == aborted
    crashed.close()
    clean = open_log(segment_bytes=300, had_clean_shutdown=True)
    clean.update_high_watermark(clean.log_end_offset)
    assert clean.last_stable_offset == 7


def test_fenced_and_misplaced_writes_are_refused(open_log):
    log = open_log()
    append(log, txn(1, 0))
    with pytest.raises(InvalidTxnStateError):
        append(log, txn(1, 1, transactional=False))  # a plain write inside an open transaction
    end(log, 1, committed=False, epoch=1)  # the coordinator fenced epoch 0
    with pytest.raises(InvalidProducerEpochError):
        append(log, txn(1, 1))
    with pytest.raises(InvalidProducerEpochError):
        end(log, 1, committed=True, epoch=0)


def test_index_file_round_trip_and_truncation(tmp_path):
    index = TransactionIndex(tmp_path / "00000000000000000000.txnindex")
    index.append(AbortedTxn(1, 0, 5, 6))
    index.append(AbortedTxn(2, 3, 9, 10))
    index.append(AbortedTxn(2, 3, 9, 10))  # a replay of the same marker
    assert TransactionIndex(index.path).entries == index.entries and len(index.entries) == 2
    assert index.collect_aborted(6, 8) == [AbortedTxn(2, 3, 9, 10)]
    index.truncate_to(9)
    assert TransactionIndex(index.path).entries == [AbortedTxn(1, 0, 5, 6)]


def test_a_follower_replays_markers_so_it_can_lead_read_committed_readers(open_log):
    """A follower copies the leader's batches, markers included: it must end the transactions they end and
    index the aborted ones, or after becoming leader its LSO would stay at a finished transaction and its
    read_committed readers would see aborted records (found by killing brokers under a transactional copy)."""
    leader = open_log()
    append(leader, txn(1, 0, 2))     # 0-1 producer 1: aborted below
    append(leader, txn(2, 0))        # 2 producer 2: committed below
    end(leader, 1, committed=False)  # 3
    end(leader, 2, committed=True)   # 4
    append(leader, txn(3, 0))        # 5 producer 3: still open
    settle(leader)
    leader.flush()
    copied = b"".join(path.read_bytes() for path in sorted(leader.dir.glob("*.log")))  # markers may roll

    follower = open_log("copy-0")
    follower.append_as_follower(copied, now_ms=NOW)
    settle(follower)
    assert follower.last_stable_offset == leader.last_stable_offset == 5
    assert follower.collect_aborted_transactions(0, 6) == leader.collect_aborted_transactions(0, 6) == \
        [AbortedTxn(1, 0, 3, 2)]
