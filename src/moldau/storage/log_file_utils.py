"""How a partition's files are named (Kafka's ``LogFileUtils``): every segment file is named by the
segment's base offset, zero-padded to 20 digits (``00000000000000000042.log``), plus a suffix that marks
a file being deleted, cleaned or swapped in."""

from __future__ import annotations

from pathlib import Path

LOG_FILE_SUFFIX = ".log"
INDEX_FILE_SUFFIX = ".index"
TIME_INDEX_FILE_SUFFIX = ".timeindex"
DELETED_FILE_SUFFIX = ".deleted"
CLEANED_FILE_SUFFIX = ".cleaned"
SWAP_FILE_SUFFIX = ".swap"


def log_file(dir: Path, offset: int, suffix: str = "") -> Path:
    return dir / f"{offset:020d}{LOG_FILE_SUFFIX}{suffix}"


def offset_index_file(dir: Path, offset: int, suffix: str = "") -> Path:
    return dir / f"{offset:020d}{INDEX_FILE_SUFFIX}{suffix}"


def time_index_file(dir: Path, offset: int, suffix: str = "") -> Path:
    return dir / f"{offset:020d}{TIME_INDEX_FILE_SUFFIX}{suffix}"


def offset_from_file(path: Path) -> int:
    """The base offset a segment file is named by (``00000000000000000042.log.deleted`` -> 42)."""
    return int(path.name.split(".", 1)[0])


__all__ = [
    "CLEANED_FILE_SUFFIX",
    "DELETED_FILE_SUFFIX",
    "INDEX_FILE_SUFFIX",
    "LOG_FILE_SUFFIX",
    "SWAP_FILE_SUFFIX",
    "TIME_INDEX_FILE_SUFFIX",
    "log_file",
    "offset_from_file",
    "offset_index_file",
    "time_index_file",
]
