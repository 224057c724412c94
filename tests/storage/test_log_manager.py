"""LogManager: Kafka's checkpoint files, clean-shutdown marker, startup recovery, log placement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moldau.storage import LogConfig, LogManager
from moldau.storage.checkpoint_file import CheckpointFile, CorruptCheckpointError
from moldau.storage.leader_epoch_file_cache import LeaderEpochFileCache
from moldau.storage.scheduler import ThreadScheduler

from .conftest import NOW, make_batch, read_all_batches

CONFIG = LogConfig(segment_bytes=2048, index_interval_bytes=256)


def manager_for(*dirs: Path) -> LogManager:
    manager = LogManager(list(dirs), CONFIG, now_ms=lambda: NOW)
    manager.startup()
    return manager


def fill(manager: LogManager, topic: str, partition: int, batches: int) -> None:
    log = manager.get_or_create_log(topic, partition)
    for _ in range(batches):
        log.append_as_leader(make_batch(3), leader_epoch=0, now_ms=NOW)


def test_shutdown_writes_kafkas_files(tmp_path: Path) -> None:
    manager = manager_for(tmp_path)
    fill(manager, "orders.v1", 0, 10)
    fill(manager, "orders.v1", 1, 2)
    fill(manager, "__consumer_offsets", 7, 1)
    log = manager.get_log("orders.v1", 0)
    log.update_high_watermark(24)
    log.maybe_increment_log_start_offset(5)
    manager.shutdown()

    assert (tmp_path / "recovery-point-offset-checkpoint").read_text() == (
        "0\n3\n__consumer_offsets 7 3\norders.v1 0 30\norders.v1 1 6\n"
    )
    assert (tmp_path / "replication-offset-checkpoint").read_text() == (
        "0\n3\n__consumer_offsets 7 0\norders.v1 0 24\norders.v1 1 0\n"
    )
    assert (tmp_path / "log-start-offset-checkpoint").read_text() == "0\n1\norders.v1 0 5\n"
    assert json.loads((tmp_path / ".kafka_cleanshutdown").read_text()) == {"version": 0, "brokerEpoch": -1}
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "__consumer_offsets-7",
        "orders.v1-0",
        "orders.v1-1",
    ]


def test_restart_after_clean_shutdown(tmp_path: Path) -> None:
    manager = manager_for(tmp_path)
    fill(manager, "a-b_c.d", 3, 20)
    manager.get_log("a-b_c.d", 3).update_high_watermark(60)
    manager.get_log("a-b_c.d", 3).maybe_increment_log_start_offset(9)
    manager.shutdown()

    restarted = manager_for(tmp_path)
    assert not (tmp_path / ".kafka_cleanshutdown").exists()  # removed at startup
    log = restarted.get_log("a-b_c.d", 3)
    assert log is not None
    assert (log.topic, log.partition) == ("a-b_c.d", 3)
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark, log.recovery_point) == (
        9,
        60,
        60,
        60,
    )
    assert read_all_batches(log)[-1].last_offset == 59
    restarted.shutdown()


def test_restart_after_a_crash_recovers_from_the_checkpoint(tmp_path: Path) -> None:
    manager = manager_for(tmp_path)
    fill(manager, "orders", 0, 10)
    log = manager.get_log("orders", 0)
    log.flush()
    manager.checkpoint()  # recovery point 30 on disk
    fill(manager, "orders", 0, 10)  # unflushed
    segment = log.segments[-1]
    for lg in manager.all_logs():
        lg.close()  # no shutdown: no marker
    with open(segment.log_path, "r+b") as f:
        f.truncate(segment.size - 5)

    restarted = manager_for(tmp_path)
    log = restarted.get_log("orders", 0)
    assert log.log_end_offset == 57  # the torn last batch (57..59) is gone
    assert log.recovery_point == 30
    assert log.append_as_leader(make_batch(1), leader_epoch=1, now_ms=NOW).first_offset == 57
    restarted.shutdown()


def test_logs_spread_over_log_dirs(tmp_path: Path) -> None:
    dirs = [tmp_path / "d1", tmp_path / "d2"]
    manager = manager_for(*dirs)
    for partition in range(4):
        manager.get_or_create_log("t", partition)
    assert {log.dir.parent for log in manager.all_logs()} == set(dirs)
    assert manager.get_or_create_log("t", 0) is manager.get_log("t", 0)
    manager.shutdown()
    restarted = manager_for(*dirs)
    assert sorted((log.topic, log.partition) for log in restarted.all_logs()) == [("t", p) for p in range(4)]
    restarted.shutdown()


def test_delete_log_and_leftover_directories(tmp_path: Path) -> None:
    manager = manager_for(tmp_path)
    fill(manager, "gone", 0, 3)
    manager.delete_log("gone", 0)
    assert manager.get_log("gone", 0) is None
    assert not any(p.name.startswith("gone") for p in tmp_path.iterdir())
    manager.shutdown()
    (tmp_path / "old-0.0123abcd-delete").mkdir()
    (tmp_path / "lost+found").mkdir()
    restarted = manager_for(tmp_path)
    assert not (tmp_path / "old-0.0123abcd-delete").exists()
    assert restarted.all_logs() == []
    restarted.shutdown()


def test_flush_dirty_logs_and_cleanup(tmp_path: Path) -> None:
    manager = LogManager([tmp_path], LogConfig(flush_messages=5, retention_ms=1000, file_delete_delay_ms=0))
    manager.startup()
    fill(manager, "t", 0, 1)
    fill(manager, "t", 1, 2)
    assert manager.flush_dirty_logs(NOW) == 1  # only t-1 has 5 or more unflushed messages
    log = manager.get_log("t", 1)
    log.update_high_watermark(log.log_end_offset)
    assert manager.cleanup_logs(NOW + 10_000) == 1
    assert log.log_start_offset == 6
    manager.shutdown()


def test_checkpoint_file_format(tmp_path: Path) -> None:
    path = tmp_path / "replication-offset-checkpoint"
    file = CheckpointFile(path, 3)
    assert file.read() == []
    file.write([("t", 0, 5), ("u", 1, 7)])
    assert path.read_text() == "0\n2\nt 0 5\nu 1 7\n"
    assert file.read() == [["t", "0", "5"], ["u", "1", "7"]]
    assert not (tmp_path / "replication-offset-checkpoint.tmp").exists()
    for bad in ("1\n0\n", "0\n2\nt 0 5\n", "0\nx\n", "0\n1\nt 0\n"):
        path.write_text(bad)
        with pytest.raises(CorruptCheckpointError):
            file.read()


def test_leader_epoch_file_cache(tmp_path: Path) -> None:
    path = tmp_path / "leader-epoch-checkpoint"
    cache = LeaderEpochFileCache(path)
    cache.assign(1, 0)
    cache.assign(1, 10)  # same epoch, later offset: no change
    cache.assign(2, 10)
    cache.assign(4, 25)
    assert path.read_text() == "0\n3\n1 0\n2 10\n4 25\n"
    assert (
        cache.epoch_for_offset(12) == 2
        and cache.epoch_for_offset(25) == 4
        and cache.epoch_for_offset(-1) is None
    )
    assert cache.end_offset_for(3, 40) == (2, 25)
    assert cache.end_offset_for(0, 40) == (0, 0)
    assert cache.end_offset_for(9, 40) == (-1, -1)
    cache.assign(3, 20)  # a new leader overwrote the end of the log: epoch 4 goes
    assert cache.entries() == [(1, 0), (2, 10), (3, 20)]
    cache.truncate_from_start(15)
    assert cache.entries() == [(2, 15), (3, 20)]
    cache.truncate_from_end(20)
    assert cache.entries() == [(2, 15)]
    cache.flush()
    assert LeaderEpochFileCache(path).entries() == [(2, 15)]
    with pytest.raises(ValueError):
        cache.assign(-1, 0)


def test_rolls_with_default_settings_advance_the_recovery_point(tmp_path: Path) -> None:
    # Issue 10: with Kafka's defaults (flush.ms and flush.messages never due) the recovery point stayed at 0
    # after rolls, so a crash rescanned every segment. Each roll now flushes the rolled segment off-thread.
    manager = LogManager([tmp_path], LogConfig(segment_bytes=2048, index_interval_bytes=256))
    manager.startup()
    log = manager.get_or_create_log("rolls", 0)
    while len(log.segments) < 4:
        log.append_as_leader(make_batch(3), leader_epoch=0, now_ms=NOW)
    assert isinstance(manager.scheduler, ThreadScheduler)
    manager.scheduler.drain(timeout_s=30)
    assert log.recovery_point == log.active_segment.base_offset == log.segments[3].base_offset
    assert manager.flush_dirty_logs(NOW) == 0  # the flusher has nothing left to do for the rolled segments
    manager.checkpoint_recovery_offsets_and_high_watermarks()
    assert CheckpointFile(tmp_path / "recovery-point-offset-checkpoint", 3).read() == [
        ["rolls", "0", str(log.active_segment.base_offset)]
    ]
    manager.shutdown()
