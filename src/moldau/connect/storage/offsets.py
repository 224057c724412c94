"""Source offset stores. Keys and values use Kafka's formats, so the offset topic of a Kafka Connect
cluster and ours are interchangeable: key = JSON `["<connector>", {source partition}]`, value = JSON offset
(null deletes)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


def offset_key(connector: str, partition: dict[str, Any]) -> str:
    return json.dumps([connector, partition], separators=(",", ":"), sort_keys=True)


def parse_key(key: str | bytes) -> tuple[str, dict[str, Any]] | None:
    try:
        parsed = json.loads(key)
    except ValueError:
        return None
    if isinstance(parsed, list) and len(parsed) == 2 and isinstance(parsed[0], str) and isinstance(parsed[1], dict):
        return parsed[0], parsed[1]
    return None


class OffsetBackingStore:
    """Latest offset per (connector, source partition). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def get(self, connector: str, partition: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            return self._data.get(offset_key(connector, partition))

    def put(self, connector: str, offsets: dict[str, Any]) -> None:
        """`offsets`: offset_key(...) -> offset dict, or None to forget that partition."""
        with self._lock:
            self._apply(offsets)
        self._persist(connector, offsets)

    def _apply(self, offsets: dict[str, Any]) -> None:
        for key, value in offsets.items():
            if value is None:
                self._data.pop(key, None)
            else:
                self._data[key] = value

    def _persist(self, connector: str, offsets: dict[str, Any]) -> None:
        pass

    def connector_offsets(self, connector: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        with self._lock:
            items = list(self._data.items())
        result = []
        for key, value in items:
            parsed = parse_key(key)
            if parsed and parsed[0] == connector:
                result.append((parsed[1], value))
        return result

    def refresh(self) -> None:
        """Catch up with writes by other workers (topic-backed store)."""


class MemoryOffsetBackingStore(OffsetBackingStore):
    pass


class FileOffsetBackingStore(OffsetBackingStore):
    """`offset.storage.file.filename` (standalone mode): the whole map, rewritten atomically on each flush."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def start(self) -> None:
        if self.path.exists() and self.path.stat().st_size:
            with self._lock:
                self._data = json.loads(self.path.read_text(encoding="utf-8"))

    def _persist(self, connector: str, offsets: dict[str, Any]) -> None:
        with self._lock:
            text = json.dumps(self._data, sort_keys=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
