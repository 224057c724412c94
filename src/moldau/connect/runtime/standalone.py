"""Standalone mode (connect-standalone.sh): one worker, configs in memory, offsets in
`offset.storage.file.filename` (or in memory when unset)."""

from __future__ import annotations

import socket
from typing import Any

from moldau.connect.plugins import Plugins
from moldau.connect.runtime.herder import Herder
from moldau.connect.runtime.status import StatusBackingStore
from moldau.connect.runtime.worker import Worker
from moldau.connect.runtime.worker_config import WorkerConfig
from moldau.connect.storage.configs import ConfigBackingStore
from moldau.connect.storage.offsets import (
    FileOffsetBackingStore,
    MemoryOffsetBackingStore,
    OffsetBackingStore,
)


def default_worker_id(config: WorkerConfig, rest_port: int | None = None) -> str:
    host = config.get("rest.advertised.host.name") or socket.gethostname()
    port = config.get("rest.advertised.port") or rest_port or 8083
    return f"{host}:{port}"


class StandaloneHerder(Herder):
    pass


def standalone_herder(props: dict[str, Any], worker_id: str | None = None,
                      plugin_registry: Plugins | None = None) -> StandaloneHerder:
    config = WorkerConfig(props)
    filename = config.get("offset.storage.file.filename")
    offsets: OffsetBackingStore = FileOffsetBackingStore(filename) if filename else MemoryOffsetBackingStore()
    offsets.start()
    status = StatusBackingStore()
    worker = Worker(config, worker_id or default_worker_id(config), offsets, status, plugin_registry)
    return StandaloneHerder(worker, ConfigBackingStore(), status, plugin_registry)
