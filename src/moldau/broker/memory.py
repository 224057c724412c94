"""Give memory freed after big requests back to the operating system.

glibc's malloc serves large buffers from the heap once it has freed a few of them (its mmap threshold
grows dynamically up to 32 MiB), and a heap only shrinks from its top: after a burst of 16 MiB frames the
broker's RSS stayed ~60 MiB above its baseline although Python had freed every buffer. `malloc_trim(0)`
returns the free pages (madvise) wherever they lie. It walks the heap, so it runs at most once per
`TRIM_DELAY_S`, and only after a big frame.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

TRIM_DELAY_S = 0.5


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None


_malloc_trim = _load_malloc_trim()
_pending: set[asyncio.AbstractEventLoop] = set()


def release_memory_soon(loop: asyncio.AbstractEventLoop) -> None:
    """After a big frame is done with: trim the heap shortly, once for any number of calls meanwhile."""
    if _malloc_trim is None or loop in _pending:
        return
    _pending.add(loop)

    def trim() -> None:
        _pending.discard(loop)
        _malloc_trim(0)  # type: ignore[misc]

    loop.call_later(TRIM_DELAY_S, trim)
