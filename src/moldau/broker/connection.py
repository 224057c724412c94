"""One client connection: frames in, requests handled one at a time in order, responses out.

Like Kafka's SocketServer, a connection has at most one request being handled at a time and
responses leave in request order; further pipelined requests wait in a bounded queue (reading is
paused while it is full). Malformed frames, unknown APIs and unsupported versions close the
connection with a log line, as Kafka does (ApiVersions excepted, KIP-511).

One exception, for throughput: an acks=all Produce in a cluster answers with a :class:`DeferredResponse`
once its batches are appended, and while it waits for the ISR the connection handles the next Produce
(Redpanda's two-phase handlers: `process_result_stages`, dispatched then responded). Kafka mutes the
channel until the response is sent, so each connection replicates one request at a time and a producer's
throughput is one request per replication round trip. Appends stay in request order and responses still
leave in request order; any other request (or an acks=0 Produce, whose failure closes the connection) first
waits until every earlier response is sent, so it sees the state Kafka would show it. Not done while
client quotas are active: a throttle must mute the channel before the next request is appended.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import struct
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, NamedTuple

from moldau.broker.frame_reader import frame_pool
from moldau.broker.log_limiter import RateLimitedLog
from moldau.broker.memory import release_memory_soon
from moldau.broker.session import Session
from moldau.protocol import api
from moldau.protocol.errors import ErrorCode, ProtocolError

if TYPE_CHECKING:
    from moldau.broker.server import Broker

log = logging.getLogger(__name__)
# A client decides how often these happen: bounded, counted, and summarized (see log_limiter.py).
bad_requests = RateLimitedLog(log, "warnings about bad requests")

_SIZE = struct.Struct(">i")
API_VERSIONS = 18
MAX_QUEUED_REQUESTS = 64
MAX_QUEUED_BYTES = 64 << 20  # with 100 MiB frames allowed, 64 queued frames could otherwise hold 6 GiB
SHRINK_BUFFER_ABOVE = 1 << 20
# One read takes up to this many bytes of small requests at once; a frame that does not fit is read into a
# buffer of its own size, so a produced batch is copied once from the socket and not again (the scratch is
# allocated only while data is in it: an idle connection holds none).
SCRATCH_BYTES = 64 * 1024
PRODUCE = 0
# Deferred responses a connection may owe before it stops handling requests: the produced bytes a producer
# can have appended ahead of its ISR on one connection (librdkafka keeps up to 1M requests in flight).
MAX_DEFERRED_RESPONSES = 16


class DeferredResponse:
    """A handler's response that is decided later: the request's work is done (an acks=all Produce's
    appends) and only its answer waits (for the ISR), so the connection may handle the next Produce."""

    __slots__ = ("task",)

    def __init__(self, response: Awaitable[Any]) -> None:
        self.task: asyncio.Future[Any] = asyncio.ensure_future(response)


class _Owed(NamedTuple):
    """A response still to send, in request order."""

    header: Any
    frame_size: int
    started: float
    response: Any  # the response, None (no response), or a DeferredResponse


class CloseConnection(Exception):
    """Raised by a handler to drop the connection (e.g. an acks=0 produce that failed)."""


class KafkaConnection(asyncio.BufferedProtocol):
    def __init__(self, broker: Broker, listener_name: str) -> None:
        self.broker = broker
        self.listener_name = listener_name
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        # Reads land in the scratch buffer (allocated while a partial frame is in it), or a big frame's own.
        self._scratch: bytearray | None = None
        self._scratch_view: memoryview | None = None
        self._scratch_end = 0
        self._big: bytearray | None = None
        self._big_view: memoryview | None = None
        self._big_filled = 0
        self._frames: deque[bytearray] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._closed = False
        self._reading_paused = False
        self.task: asyncio.Task[None] | None = None
        self._owed: deque[_Owed] = deque()  # responses behind a DeferredResponse, in request order
        self._owed_changed = asyncio.Event()
        self._responder: asyncio.Task[None] | None = None
        self._max_request = broker.config["socket.request.max.bytes"]
        self.last_active = 0.0
        self.sendfile_ok = False
        self._socket_fd = -1
        self.session = Session(broker, listener_name)

    # -- asyncio.BufferedProtocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        sock = transport.get_extra_info("socket")
        self._socket_fd = sock.fileno() if sock is not None else -1
        self.sendfile_ok = (self.broker.config["moldau.sendfile"] and self._socket_fd >= 0
                            and transport.get_extra_info("sslcontext") is None)
        self.last_active = self.broker.loop.time()
        self.broker.connections.add(self)
        if not self.session.connected(transport, self.peer, self.last_active):
            self.close()
            return
        self.task = self.broker.loop.create_task(self._process())

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the next read lands: a frame too big for the scratch buffer is read into its own bytearray
        (it is copied once, from the socket, and handed on as is); everything else into the scratch."""
        if self._big_view is not None:
            return self._big_view[self._big_filled:]
        if self._scratch_view is None:
            self._scratch = bytearray(SCRATCH_BYTES)
            self._scratch_view = memoryview(self._scratch)
        return self._scratch_view[self._scratch_end:]

    def buffer_updated(self, nbytes: int) -> None:
        self.last_active = self.broker.loop.time()
        if self._big is not None:
            self._big_filled += nbytes
            if self._big_filled == len(self._big):
                self._queue_frame(self._big)
                self._big = self._big_view = None
                self._frames_queued()
            return
        self._scratch_end += nbytes
        self._split_scratch()

    def _split_scratch(self) -> None:
        buffer = self._scratch
        assert buffer is not None
        start, end = 0, self._scratch_end
        while end - start >= 4:
            (size,) = _SIZE.unpack_from(buffer, start)
            limit = self._max_request if self.session.authenticated else self.session.max_receive_size
            if size < 0 or size > limit:
                bad_requests.warning("closing connection from %s: request size %d is outside [0, %d] "
                                     "(socket.request.max.bytes, before SASL: sasl.server.max.receive.size)",
                                     self.peer, size, limit)
                self.close()
                return
            if end - start - 4 >= size:
                # Slicing a bytearray copies once; the frame stays a bytearray, so records decoded from it
                # are writable views (no second copy through bytes()).
                self._queue_frame(buffer[start + 4 : start + 4 + size])
                start += 4 + size
                continue
            if 4 + size > len(buffer):  # the rest of this frame goes straight into its own buffer
                self._big = frame_pool().take(size)
                self._big_view = memoryview(self._big)
                self._big_filled = end - start - 4
                self._big[: self._big_filled] = buffer[start + 4 : end]
                start = end
            break
        if start == end:
            # Nothing partial left: drop the scratch, so an idle connection holds no buffer.
            self._scratch = self._scratch_view = None
            self._scratch_end = 0
        elif start:
            buffer[: end - start] = buffer[start:end]  # a partial frame moves to the front
            self._scratch_end = end - start
        self._frames_queued()

    def _queue_frame(self, frame: bytearray) -> None:
        self._frames.append(frame)
        self._queued_bytes += len(frame)

    def _frames_queued(self) -> None:
        if self._frames:
            self._wakeup.set()
            full = len(self._frames) >= MAX_QUEUED_REQUESTS or self._queued_bytes >= MAX_QUEUED_BYTES
            if full and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()  # type: ignore[union-attr]

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.disconnected()
        self._closed = True
        self._wakeup.set()
        self._can_write.set()
        self.broker.connections.discard(self)
        if self.task is not None and not self.task.done():
            # A request parked in a long poll has nobody left to answer.
            self.task.cancel()
        self._owed_changed.set()
        if self._responder is not None:
            self._responder.cancel()
        for owed in self._owed:
            if isinstance(owed.response, DeferredResponse):
                owed.response.task.cancel()  # an ISR wait nobody will hear the end of

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wakeup.set()
            if self.transport is not None:
                self.transport.close()

    # -- request processing ----------------------------------------------------------------------

    async def _process(self) -> None:
        try:
            while not self._closed:
                if not self._frames:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                muted_for = self.session.mute_until - self.broker.loop.time()
                if muted_for > 0:  # quota throttling or connection-rate delay: the channel is muted
                    await asyncio.sleep(muted_for)
                    continue
                frame = self._frames.popleft()
                self._queued_bytes -= len(frame)
                if self._reading_paused and len(self._frames) < MAX_QUEUED_REQUESTS // 2 \
                        and self._queued_bytes < MAX_QUEUED_BYTES // 2:
                    self._reading_paused = False
                    self.transport.resume_reading()  # type: ignore[union-attr]
                await self._handle_frame(frame)
                if len(frame) > SHRINK_BUFFER_ABOVE:
                    release_memory_soon(self.broker.loop)
                del frame  # not held while this connection waits for its next request
        except CloseConnection:
            self.close()
        except (ConnectionError, asyncio.CancelledError):
            self.close()
        except Exception:
            log.exception("closing connection from %s after an unexpected error", self.peer)
            self.close()

    async def _handle_frame(self, frame: bytearray) -> None:
        if self.session.expects_raw_token:  # SASL after SaslHandshake v0: a bare token, no request header
            answer = self.session.raw_token(frame, self.peer)
            if answer is None:
                raise CloseConnection
            await self.write_parts([answer])
            return
        try:
            header, offset = api.decode_request_header(frame)
        except ProtocolError as exc:
            bad_requests.warning("closing connection from %s: unreadable request header: %s", self.peer, exc)
            raise CloseConnection from None
        if self._owed and header.api_key != PRODUCE:
            await self._wait_owed(0)  # it sees (and is answered after) everything before it, as in Kafka
        if not self.session.permits(header.api_key):
            self.session.refuse(header.api_key, self.peer)
            raise CloseConnection
        handler = self.broker.handlers.get(header.api_key)
        supported = self.broker.supported_versions.get(header.api_key)
        if handler is None or supported is None:
            bad_requests.warning("closing connection from %s (client %s): unsupported api key %d",
                        self.peer, header.client_id, header.api_key)
            raise CloseConnection
        if not supported[0] <= header.api_version <= supported[1]:
            if header.api_key == API_VERSIONS:
                await self._reply_api_versions_unsupported(header.correlation_id)
                return
            bad_requests.warning("closing connection from %s (client %s): unsupported version %d of api %d",
                        self.peer, header.client_id, header.api_version, header.api_key)
            raise CloseConnection
        try:
            request = api.decode_request(header.api_key, header.api_version, frame, offset)
        except ProtocolError as exc:
            bad_requests.warning("closing connection from %s (client %s): malformed %s v%d request: %s",
                                 self.peer, header.client_id, api.APIS[header.api_key].name, header.api_version,
                                 exc)
            raise CloseConnection from None
        if self._owed and request.acks == 0:
            await self._wait_owed(0)  # a failed acks=0 Produce closes the connection: answer the others first
        started = self.broker.loop.time()
        response = self.session.refused_response(header.api_key, header.api_version, request)  # ACLs
        if response is None:
            response = await handler(self, header, request)
        if self._owed or isinstance(response, DeferredResponse):
            self._owe(_Owed(header, len(frame), started, response))
            await self._wait_owed(MAX_DEFERRED_RESPONSES - 1)
            return
        await self._answer(header, len(frame), started, response)

    # -- deferred responses (acks=all Produce) ---------------------------------------------------

    def can_defer_response(self) -> bool:
        """May a handler answer with a DeferredResponse? Not while client quotas are active (see above)."""
        return not self._closed and not self.session.quotas.active

    def _owe(self, owed: _Owed) -> None:
        self._owed.append(owed)
        if self._responder is None:
            self._responder = self.broker.loop.create_task(self._respond_in_order())

    async def _wait_owed(self, at_most: int) -> None:
        """Until at most `at_most` responses are owed (0: every earlier response is sent)."""
        while len(self._owed) > at_most:
            if self._closed:
                raise ConnectionError("connection closed")
            self._owed_changed.clear()
            await self._owed_changed.wait()

    async def _respond_in_order(self) -> None:
        try:
            while self._owed:
                owed = self._owed[0]
                response = owed.response
                if isinstance(response, DeferredResponse):
                    response = await response.task
                await self._answer(owed.header, owed.frame_size, owed.started, response)
                self._owed.popleft()
                self._owed_changed.set()
        except (CloseConnection, ConnectionError, asyncio.CancelledError):
            self.close()
        except Exception:
            log.exception("closing connection from %s after an unexpected error", self.peer)
            self.close()
        finally:
            self._responder = None
            self._owed_changed.set()

    async def _answer(self, header: Any, frame_size: int, started: float, response: Any) -> None:
        now = self.broker.loop.time()
        self.session.throttle(header.client_id, header.api_key, frame_size, response, now - started, now)
        if response is None:
            return
        parts = api.encode_response(header.api_key, header.api_version, header.correlation_id, response)
        await self.write_parts(parts)
        if self.session.close_after_reply:  # a failed SASL exchange: answer, then close (Kafka does the same)
            raise CloseConnection

    async def _reply_api_versions_unsupported(self, correlation_id: int) -> None:
        """KIP-511: answer in the v0 format with UNSUPPORTED_VERSION and our ApiVersions range."""
        from moldau.protocol import messages

        low, high = self.broker.supported_versions[API_VERSIONS]
        body = messages.ApiVersionsResponse(
            error_code=ErrorCode.UNSUPPORTED_VERSION,
            api_keys=[messages.ApiVersionsResponse.ApiVersion(api_key=API_VERSIONS, min_version=low,
                                                                max_version=high)],
        )
        await self.write_parts(api.encode_response(API_VERSIONS, 0, correlation_id, body))

    async def write_parts(self, parts: list[Any]) -> None:
        transport = self.transport
        if transport is None or self._closed:
            raise ConnectionError("connection closed")
        for part in parts:
            if isinstance(part, (bytes, bytearray, memoryview)):
                transport.write(part)
            else:
                await self._write_region(part)
        if not self._can_write.is_set():
            await self._can_write.wait()
            if self._closed:
                raise ConnectionError("connection closed")

    async def _write_region(self, region: Any) -> None:
        """Send a stored file region without copying it through Python where possible.

        When the transport has nothing buffered, the socket is ours to write: `os.sendfile` goes
        straight from the page cache to the socket, on either event loop. Whatever the socket does not
        take at once (a full send buffer) is read and handed to the transport, which keeps order.
        """
        transport = self.transport
        position, remaining = region.position, region.size
        if self.sendfile_ok and transport.get_write_buffer_size() == 0:  # type: ignore[union-attr]
            try:
                file_fd = region.file.fileno()
                while remaining:
                    sent = os.sendfile(self._socket_fd, file_fd, position, remaining)
                    if sent == 0:
                        break
                    position += sent
                    remaining -= sent
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    self.sendfile_ok = False  # not a socket/file pair sendfile supports
                else:
                    raise ConnectionError(f"sendfile to {self.peer} failed: {exc}") from exc
        if remaining:
            data = os.pread(region.file.fileno(), remaining, position)
            if len(data) != remaining:
                # The segment shrank under us (truncation or deletion): the frame can't be completed.
                log.warning("closing connection from %s: stored region shrank while being sent", self.peer)
                raise CloseConnection
            transport.write(data)  # type: ignore[union-attr]
