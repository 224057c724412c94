"""Given logs in one log dir, when a write fails with ENOSPC, then the dir goes offline with one log line:
appends to every log in it raise KafkaStorageError (code KAFKA_STORAGE_ERROR) without touching the disk,
reads go on, and a clean shutdown writes no clean-shutdown marker, so the next open recovers
(Kafka's LogDirFailureChannel). The disk is simulated here; tests/integration/test_disk_full.py uses a
real full tmpfs."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from moldau.protocol.errors import ErrorCode
from moldau.storage import LogConfig
from moldau.storage import segment as segment_module
from moldau.storage.errors import KafkaStorageError
from moldau.storage.log_manager import CLEAN_SHUTDOWN_FILE, LogManager
from tests.storage.conftest import NOW, make_batch


def test_enospc_takes_the_dir_offline_once_and_reads_go_on(tmp_path: Path, monkeypatch, caplog):
    manager = LogManager([tmp_path], LogConfig(), now_ms=lambda: NOW)
    manager.startup()
    first, second = manager.get_or_create_log("a", 0), manager.get_or_create_log("b", 0)
    first.append_as_leader(make_batch(3), leader_epoch=0, now_ms=NOW)
    writes = []
    real_write = os.write

    def full_disk(fd: int, data) -> int:
        writes.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segment_module.os, "write", full_disk)
    caplog.set_level(logging.INFO)
    with pytest.raises(KafkaStorageError) as refused:
        first.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW)
    assert refused.value.error_code == ErrorCode.KAFKA_STORAGE_ERROR
    attempts = len(writes)
    for log in (first, second, first):  # every log of the dir, without another write attempt
        with pytest.raises(KafkaStorageError, match="offline"):
            log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW)
    assert len(writes) == attempts
    assert sum("log_dir.offline" in r.getMessage() for r in caplog.records) == 1
    assert manager.failure_channel.is_offline(tmp_path) and first.offline and second.offline

    monkeypatch.setattr(segment_module.os, "write", real_write)
    assert first.log_end_offset == 3
    assert first.read(0, 1 << 20).records.size > 0  # reads of what the dir holds go on
    with pytest.raises(KafkaStorageError):
        manager.get_or_create_log("c", 0)  # no new log in an offline dir

    manager.shutdown()
    assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()  # the next start recovers this dir
    reopened = LogManager([tmp_path], LogConfig(), now_ms=lambda: NOW)
    reopened.startup()
    assert reopened.get_log("a", 0).log_end_offset == 3
    reopened.get_log("a", 0).append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW)  # online again
    reopened.shutdown()


def test_the_other_log_dirs_keep_serving_appends(tmp_path: Path, monkeypatch):
    full, healthy = tmp_path / "full", tmp_path / "healthy"
    manager = LogManager([full, healthy], LogConfig(), now_ms=lambda: NOW)
    manager.startup()
    first, second = manager.get_or_create_log("a", 0), manager.get_or_create_log("b", 0)
    assert {first.dir.parent, second.dir.parent} == {full, healthy}
    on_full, on_healthy = (first, second) if first.dir.parent == full else (second, first)
    real_write = os.write
    failing_fd = on_full.active_segment.file.fileno()

    def full_disk(fd: int, data) -> int:
        if fd == failing_fd:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(segment_module.os, "write", full_disk)
    with pytest.raises(KafkaStorageError):
        on_full.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW)
    assert on_healthy.append_as_leader(make_batch(2), leader_epoch=0, now_ms=NOW).last_offset == 1
    assert manager.get_or_create_log("c", 0).dir.parent == healthy  # new partitions avoid the offline dir
    monkeypatch.setattr(segment_module.os, "write", real_write)
    manager.shutdown()
    assert not (full / CLEAN_SHUTDOWN_FILE).exists() and (healthy / CLEAN_SHUTDOWN_FILE).exists()
