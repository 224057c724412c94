"""A Connect server: herder (standalone or distributed) plus the REST API on uvicorn.

    with ConnectServer({"bootstrap.servers": "localhost:9092", "listeners": "http://127.0.0.1:0"}) as server:
        requests.get(server.rest_url + "/connectors")

Distributed mode when the worker config has `group.id` (connect-distributed.sh), standalone otherwise
(connect-standalone.sh, with connector configs given as .properties files).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlparse

import uvicorn

from moldau.connect.api.errors import ConnectException
from moldau.connect.rest.app import ConnectRestApp
from moldau.connect.runtime.herder import Herder
from moldau.connect.runtime.worker_config import WorkerConfig, read_properties

log = logging.getLogger(__name__)
START_TIMEOUT_S = 30.0


def parse_listener(listener: str) -> tuple[str, int]:
    parsed = urlparse(listener if "://" in listener else f"http://{listener}")
    if parsed.scheme not in ("http", ""):
        raise ConnectException(f"listeners: only http:// is supported, got {listener}")
    return parsed.hostname or "0.0.0.0", parsed.port if parsed.port is not None else 8083


class ConnectServer:
    def __init__(self, props: dict[str, Any], connector_configs: list[dict[str, str]] | None = None) -> None:
        self.props = {str(k): str(v) for k, v in props.items()}
        self.config = WorkerConfig(self.props)
        self.connector_configs = connector_configs or []
        self.herder: Herder | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.host, self.port = parse_listener(self.config.get("listeners")[0])

    @property
    def rest_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def worker_id(self) -> str:
        host = self.config.get("rest.advertised.host.name") or (
            socket.gethostname() if self.host in ("0.0.0.0", "") else self.host)
        return f"{host}:{self.config.get('rest.advertised.port') or self.port}"

    def _bind(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]  # listeners=http://host:0 picks a free port
        self._socket = sock

    def _build_herder(self) -> Herder:
        if self.config.distributed:
            from moldau.connect.runtime.distributed import distributed_herder

            return distributed_herder(self.props, self.worker_id, self.rest_url)
        from moldau.connect.runtime.standalone import standalone_herder

        return standalone_herder(self.props, self.worker_id)

    def start(self) -> Self:
        self._bind()
        self.herder = self._build_herder()
        self.herder.start()
        rest = ConnectRestApp(self.herder)
        uv_config = uvicorn.Config(rest.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(uv_config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="connect-rest", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise ConnectException(f"REST server did not start on {self.rest_url}")
            time.sleep(0.01)  # uvicorn offers no event to wait on for "started"
        for config in self.connector_configs:
            self.herder.put_connector_config(config["name"], config, allow_replace=True)
        log.info("Kafka Connect started, REST API at %s, worker id %s", self.rest_url, self.worker_id)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(START_TIMEOUT_S)
        if self.herder is not None:
            self.herder.stop()
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self) -> None:
        """Block until the REST server exits (SIGINT/SIGTERM in the main thread)."""
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(1.0)


def load_server(worker_properties: str | Path, connector_properties: list[str | Path]) -> ConnectServer:
    props = read_properties(worker_properties)
    connectors = [read_properties(path) for path in connector_properties]
    for path, config in zip(connector_properties, connectors, strict=True):
        if "name" not in config:
            raise ConnectException(f"{path}: connector config has no 'name'")
    return ConnectServer(props, connectors)
