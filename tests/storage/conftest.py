"""Fixtures for the storage tests: batches, logs in temporary directories, and reading them back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from moldau.protocol.records import Record, RecordBatchHeader, build_batch, iter_batches
from moldau.storage import Log, LogConfig
from moldau.storage.scheduler import MockScheduler

NOW = 1_700_000_000_000

MakeBatch = Callable[..., bytes]
OpenLog = Callable[..., Log]
ReadAll = Callable[..., list[RecordBatchHeader]]


def make_batch(
    count: int = 1, *, timestamp: int = NOW, value_size: int = 100, compression: int = 0, step_ms: int = 0
) -> bytes:
    """A producer's batch of ``count`` records (base offset 0), each ``value_size`` bytes."""
    return build_batch(
        [Record(i, timestamp + i * step_ms, f"k{i}".encode(), b"v" * value_size) for i in range(count)],
        compression=compression,
    )


@pytest.fixture
def batch() -> MakeBatch:
    return make_batch


@pytest.fixture
def scheduler() -> MockScheduler:
    """The scheduler of the logs ``open_log`` opens: rolled-segment flushes run only on ``run_pending()``."""
    return MockScheduler()


@pytest.fixture
def open_log(tmp_path: Path, scheduler: MockScheduler) -> Iterator[OpenLog]:
    """Open a log under ``tmp_path``; config fields as keyword arguments. Closed at teardown."""
    opened: list[Log] = []

    def _open(
        name: str = "orders-0",
        *,
        recovery_point: int = 0,
        log_start_offset: int | None = None,
        had_clean_shutdown: bool = False,
        clock: Callable[[], int] | None = None,
        **config: object,
    ) -> Log:
        log = Log.open(
            tmp_path / name,
            LogConfig(**config),  # type: ignore[arg-type]
            recovery_point=recovery_point,
            log_start_offset=log_start_offset,
            had_clean_shutdown=had_clean_shutdown,
            now_ms=clock or (lambda: NOW),
            scheduler=scheduler,
        )
        opened.append(log)
        return log

    yield _open
    for log in opened:
        log.close()


def read_all_batches(log: Log, start: int | None = None, max_bytes: int = 4096) -> list[RecordBatchHeader]:
    """Every batch from ``start`` (default: the log start offset) to the log end, fetch by fetch."""
    offset = log.log_start_offset if start is None else start
    headers: list[RecordBatchHeader] = []
    while offset < log.log_end_offset:
        info = log.read(offset, max_bytes)
        assert info.records is not None, f"no data at offset {offset} of {log}"
        data = info.records.read_bytes()
        found = [header for _, header in iter_batches(data)]
        assert sum(h.size_in_bytes for h in found) == len(data), "a read returned a partial batch"
        headers.extend(found)
        offset = found[-1].last_offset + 1
    return headers


@pytest.fixture
def read_all() -> ReadAll:
    return read_all_batches
