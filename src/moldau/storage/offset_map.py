"""The log cleaner's key -> latest offset map (Kafka's ``SkimpyOffsetMap``).

Kafka stores a 16-byte MD5 of each key and an 8-byte offset in a fixed buffer of
``log.cleaner.dedupe.buffer.size / log.cleaner.threads`` bytes, and fills it to
``log.cleaner.io.buffer.load.factor`` (0.9). This map keeps Kafka's capacity rule (slots =
memory / 24, filled to the load factor) so the same configs bound one cleaning pass the same way, but
stores the entries in a dict: keys shorter than 16 bytes as they are, longer keys as their MD5 digest
(16 bytes, so the two kinds never collide; MD5 collisions are ignored, as in Kafka).

>>> m = SkimpyOffsetMap(memory=24 * 100)
>>> m.put(b"k", 5); m.put(b"k", 9); m.get(b"k"), m.get(b"other"), m.size, m.max_desired_size
(9, -1, 1, 90)
"""

from __future__ import annotations

import hashlib

HASH_SIZE = 16  # MD5, Kafka's log.cleaner hash algorithm
BYTES_PER_ENTRY = HASH_SIZE + 8
DEFAULT_LOAD_FACTOR = 0.9  # log.cleaner.io.buffer.load.factor


def _hash(key: bytes) -> bytes:
    return key if len(key) < HASH_SIZE else hashlib.md5(key, usedforsecurity=False).digest()


class SkimpyOffsetMap:
    """A bounded map from record key to the largest offset seen for it in the dirty section."""

    def __init__(self, memory: int, load_factor: float = DEFAULT_LOAD_FACTOR) -> None:
        if memory < BYTES_PER_ENTRY:
            raise ValueError(
                f"log.cleaner.dedupe.buffer.size per thread must hold at least one entry of "
                f"{BYTES_PER_ENTRY} bytes, got {memory}"
            )
        self.slots = memory // BYTES_PER_ENTRY
        self.max_desired_size = max(1, int(self.slots * load_factor))
        self._offsets: dict[bytes, int] = {}
        self.latest_offset = -1

    @property
    def size(self) -> int:
        return len(self._offsets)

    @property
    def utilization(self) -> float:
        return len(self._offsets) / self.slots

    @property
    def full(self) -> bool:
        return len(self._offsets) >= self.max_desired_size

    def put(self, key: bytes, offset: int) -> None:
        self._offsets[_hash(key)] = offset
        self.latest_offset = max(self.latest_offset, offset)

    def get(self, key: bytes) -> int:
        """The latest offset of ``key``, or -1 if it is not in the map."""
        return self._offsets.get(_hash(key), -1)

    def contains_new_key(self, key: bytes) -> bool:
        return _hash(key) not in self._offsets

    def update_latest_offset(self, offset: int) -> None:
        self.latest_offset = offset

    def clear(self) -> None:
        self._offsets.clear()
        self.latest_offset = -1
