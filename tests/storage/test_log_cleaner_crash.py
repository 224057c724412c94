"""Given a compacted log being cleaned by another process, when that process is SIGKILLed (at a random
moment, or right after each rename of the segment swap), then the reopened log is readable and complete:
every key's latest value is there, at increasing offsets, with no .cleaned or .swap files left."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moldau.clock import ManualClock
from moldau.protocol.records import COMPRESSION_GZIP, Record, build_batch
from moldau.storage import Log, LogConfig
from tests.storage.conftest import NOW
from tests.storage.test_log_cleaner import cleaner_for, latest_by_key, read_records

CONFIG = {"cleanup_policy": "compact", "segment_bytes": 64 * 1024, "file_delete_delay_ms": 0,
          "min_cleanable_dirty_ratio": 0.0}

CHILD = """
import os, signal, sys, pathlib
from moldau.storage import Log, LogConfig
from moldau.storage import segment
from moldau.storage.log_cleaner import CleanerConfig, LogCleaner

log_dir, kill_at = pathlib.Path(sys.argv[1]), sys.argv[2]
config = LogConfig(**{CONFIG!r})
log = Log.open(log_dir / "crash-0", config, now_ms=lambda: {NOW})
log.update_high_watermark(log.log_end_offset)
if kill_at != "random":
    old_suffix, new_suffix = kill_at.split(":")
    rename = segment.LogSegment.change_file_suffixes
    def change_file_suffixes(self, old, new):
        rename(self, old, new)
        if (old, new) == (old_suffix, new_suffix):
            os.kill(os.getpid(), signal.SIGKILL)
    segment.LogSegment.change_file_suffixes = change_file_suffixes
print("ready", flush=True)
LogCleaner(CleanerConfig(), [log_dir], lambda: [log], time_ms=lambda: {NOW}).clean_once()
print("cleaned", flush=True)
sys.stdin.read()  # wait to be killed
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[bytes, bytes | None]]:
    """A 100k-record log over 2k keys (gzip batches, some tombstones), written once for every test."""
    root = tmp_path_factory.mktemp("prepared")
    log = Log.open(root / "crash-0", LogConfig(**CONFIG), now_ms=lambda: NOW)  # type: ignore[arg-type]
    expected: dict[bytes, bytes | None] = {}
    for base in range(0, 100_000, 200):
        records = []
        for i in range(base, base + 200):
            key, value = b"k%04d" % (i % 2000), (None if i % 301 == 0 else b"v%06d" % i)
            records.append(Record(i, NOW, key, value))
            expected[key] = value
        log.append_as_leader(build_batch(records, compression=COMPRESSION_GZIP), leader_epoch=0, now_ms=NOW)
    log.roll()
    log.flush()
    log.close()
    return root, expected


def run_and_kill(root: Path, kill_at: str, delay_s: float) -> None:
    code = CHILD.replace("{CONFIG!r}", repr(CONFIG)).replace("{NOW}", str(NOW))
    child = subprocess.Popen([sys.executable, "-c", code, str(root), kill_at], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        if kill_at == "random":
            time.sleep(delay_s)  # the crash point itself: a random moment of the clean
            child.kill()
        child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert child.returncode == -9


def check_complete(root: Path, expected: dict[bytes, bytes | None]) -> None:
    clock = ManualClock(NOW)
    log = Log.open(root / "crash-0", LogConfig(**CONFIG), now_ms=clock.time_ms)  # type: ignore[arg-type]
    try:
        assert not [p.name for p in log.dir.iterdir() if p.name.endswith((".cleaned", ".swap"))]
        records = read_records(log)
        offsets = [r.offset for r in records]
        assert offsets == sorted(set(offsets))
        assert latest_by_key(records) == expected
        log.update_high_watermark(log.log_end_offset)
        cleaner_for(log, clock).clean_once()  # and the recovered log cleans fine
        assert latest_by_key(read_records(log)) == expected
    finally:
        log.close()


@pytest.mark.parametrize("kill_at", [".cleaned:.swap", ":.deleted", ".swap:"])
def test_sigkill_at_each_step_of_the_swap(prepared, tmp_path: Path, kill_at: str) -> None:
    source, expected = prepared
    root = tmp_path / "data"
    shutil.copytree(source, root)
    run_and_kill(root, kill_at, 0)
    check_complete(root, expected)


@pytest.mark.parametrize("seed", range(3))
def test_sigkill_at_a_random_moment_of_a_clean(prepared, tmp_path: Path, seed: int) -> None:
    source, expected = prepared
    root = tmp_path / "data"
    shutil.copytree(source, root)
    run_and_kill(root, "random", random.Random(seed).uniform(0.05, 0.6))
    check_complete(root, expected)
