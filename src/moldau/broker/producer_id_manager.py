"""Unique producer ids for InitProducerId (Kafka's ``ProducerIdManager``).

Kafka's controller hands out blocks of 1000 ids (AllocateProducerIds, KIP-730) and records the next
block in the metadata log, so an id is never given twice, even after a crash. A single broker does the
same with a file in its first log directory: before an id of a new block is handed out, the start of
the following block is written to ``producer-id-block`` (temp file, fsync, rename, fsync directory).
A crash therefore skips at most the rest of a block.

>>> import asyncio, tempfile, pathlib
>>> manager = ProducerIdManager(pathlib.Path(tempfile.mkdtemp()))
>>> asyncio.run(manager.generate_producer_id()), asyncio.run(manager.generate_producer_id())
(0, 1)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from moldau.broker.errors import ApiError
from moldau.protocol.errors import ErrorCode
from moldau.storage.checkpoint_file import fsync_dir

log = logging.getLogger(__name__)

PRODUCER_ID_BLOCK_SIZE = 1000  # Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE
PRODUCER_ID_BLOCK_FILE = "producer-id-block"
LONG_MAX = 2**63 - 1


class ProducerIdManager:
    """Allocates producer ids from durable blocks; :meth:`generate_producer_id` from the event loop."""

    def __init__(self, directory: Path, block_size: int = PRODUCER_ID_BLOCK_SIZE) -> None:
        self.path = directory / PRODUCER_ID_BLOCK_FILE
        self.block_size = block_size
        self._next_id = 0
        self._block_end = 0  # exclusive; nothing allocated yet
        self._failing = False
        self._lock = asyncio.Lock()
        # In a cluster, blocks come from the metadata store (Kafka's AllocateProducerIds, KIP-730), so no two
        # brokers hand out the same id: block size -> (start, end).
        self.cluster_allocator: Callable[[int], Awaitable[tuple[int, int]]] | None = None

    def _read_next_block_start(self) -> int:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return 0
        except (ValueError, OSError) as exc:
            # The file is replaced atomically, so this is not a torn write; refuse rather than reuse ids.
            raise ApiError(ErrorCode.UNKNOWN_SERVER_ERROR, f"unreadable producer id block file {self.path}: {exc}")
        return int(document["next_block_start"])

    def _allocate_block(self) -> tuple[int, int]:
        """Reserve the next block durably; runs in a worker thread (it fsyncs)."""
        start = self._read_next_block_start()
        if start > LONG_MAX - self.block_size:
            raise ApiError(ErrorCode.UNKNOWN_SERVER_ERROR, "producer ids are exhausted")
        end = start + self.block_size
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w") as f:
                json.dump({"version": 1, "next_block_start": end}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        except OSError as exc:
            # A full disk: Kafka's RPCProducerIdManager answers COORDINATOR_LOAD_IN_PROGRESS (retriable)
            # while it has no block; one log line until a block is reserved again.
            if not self._failing:
                log.error("producer_id_manager.block_not_reserved path=%s error=%s", self.path, exc)
            self._failing = True
            raise ApiError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, f"cannot reserve producer ids: {exc}") from None
        if self._failing:
            log.info("producer_id_manager.block_reserved_again")
            self._failing = False
        log.info("producer_id_manager.allocated_block start=%d end=%d", start, end)
        return start, end

    async def generate_producer_id(self) -> int:
        async with self._lock:
            if self._next_id >= self._block_end:
                if self.cluster_allocator is not None:
                    self._next_id, self._block_end = await self.cluster_allocator(self.block_size)
                else:
                    self._next_id, self._block_end = await asyncio.to_thread(self._allocate_block)
            producer_id = self._next_id
            self._next_id += 1
            return producer_id
