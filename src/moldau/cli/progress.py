"""Progress of long `produce < file` and `consume > file` runs, on stderr, only when a person watches it.

Shown only when stderr is a terminal and the data side is a regular file: in a pipe (`| jq`) the bar would
mix with the other program's output on the same terminal, and logs or CI should not get control sequences.
"""

from __future__ import annotations

import os
import stat
import sys
from types import TracebackType
from typing import IO, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def is_regular_file(stream: IO[str] | IO[bytes]) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):  # no file descriptor (e.g. replaced in tests)
        return False


def watched(data_stream: IO[str] | IO[bytes]) -> bool:
    return sys.stderr.isatty() and is_regular_file(data_stream)


class RecordProgress:
    """Records done (and bytes when the total is known in bytes); a no-op unless `enabled`."""

    def __init__(self, description: str, *, enabled: bool, total: int | None = None, in_bytes: bool = False,
                 ) -> None:
        self._progress: Progress | None = None
        self._records = 0
        if not enabled:
            return
        amount = DownloadColumn() if in_bytes else MofNCompleteColumn()
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), amount, TaskProgressColumn(),
                   TextColumn("{task.fields[records]} records"), TimeElapsedColumn(), TimeRemainingColumn()]
        if total is None:
            columns = [TextColumn("[bold]{task.description}"), TextColumn("{task.fields[records]} records"),
                       TimeElapsedColumn()]
        # redirect_stdout=False: rich would otherwise route our records (stdout) to the terminal.
        self._progress = Progress(*columns, console=Console(stderr=True), transient=True, redirect_stdout=False,
                                  redirect_stderr=False)
        self._task = self._progress.add_task(description, total=total, records=0)

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, records: int, amount: int | None = None) -> None:
        """`records` more done; `amount` is the progress in the total's unit (default: the records)."""
        if self._progress is None:
            return
        self._records += records
        self._progress.update(self._task, advance=records if amount is None else amount, records=self._records)

    def set_total(self, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=total)
