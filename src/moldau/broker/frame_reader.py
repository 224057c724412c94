"""Size-prefixed Kafka frames read straight into their own buffer (an asyncio BufferedProtocol).

The inter-broker connections (broker/inter_broker.py) receive Fetch responses of up to
`replica.fetch.response.max.bytes`. A StreamReader copies every byte twice on the way (into its buffer,
then out of it with `readexactly`); here the socket is read (`recv_into`) into a bytearray of the frame's
size, so a fetched batch is copied once from the kernel and then only written to the log.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque

_SIZE = struct.Struct(">i")
_MAX_FRAME = 1 << 31  # the size field is an int32


class FrameReader(asyncio.BufferedProtocol):
    """Frames in order: `await read_frame()`; writes go through `transport`, paced by `drain()`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._head = bytearray(4)
        self._head_view = memoryview(self._head)
        self._frame: bytearray | None = None  # the frame being filled, once its size is known
        self._frame_view: memoryview | None = None
        self._filled = 0
        self._frames: deque[bytearray] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: Exception | None = None
        self._can_write = asyncio.Event()
        self._can_write.set()

    # -- asyncio.BufferedProtocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._frame_view is None:
            return self._head_view[self._filled:]
        return self._frame_view[self._filled:]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        if self._frame_view is None:
            if self._filled < 4:
                return
            (size,) = _SIZE.unpack(self._head)
            if size < 0:
                self._fail(ConnectionError(f"a frame of size {size}"))
                return
            self._frame = bytearray(size)
            self._frame_view = memoryview(self._frame)
            self._filled = 0
            if size:
                return
        elif self._filled < len(self._frame_view):
            return
        assert self._frame is not None
        self._frames.append(self._frame)
        self._frame = self._frame_view = None
        self._filled = 0
        self._wake()

    def eof_received(self) -> bool | None:
        self._fail(ConnectionError("the broker closed the connection"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the connection was closed"))
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- the caller's side -------------------------------------------------------------------------

    async def read_frame(self) -> bytearray:
        """The next frame (without its size prefix). Raises ConnectionError once the connection is gone."""
        while not self._frames:
            if self._lost is not None:
                raise self._lost
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._frames.popleft()

    async def drain(self) -> None:
        if self._lost is not None:
            raise self._lost
        await self._can_write.wait()

    def _fail(self, exc: Exception) -> None:
        if self._lost is None:
            self._lost = exc if isinstance(exc, ConnectionError) else ConnectionError(str(exc))
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
