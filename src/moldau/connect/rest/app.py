"""The REST API, path for path after Kafka's ConnectorsResource, ConnectorPluginsResource, LoggingResource and
RootResource. Errors are `{"error_code": <http status>, "message": ...}` like Kafka's ErrorMessage.

The herder's methods block (they start and stop tasks), so every handler runs them in a worker thread.
"""

from __future__ import annotations

import json
from typing import Any

import confluent_kafka
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from moldau.connect.api.config import ConfigException
from moldau.connect.api.connector import VERSION
from moldau.connect.api.errors import (
    AlreadyExistsException,
    BadRequestException,
    ConnectException,
    ConnectRestException,
    NotFoundException,
)
from moldau.connect.rest import loggers
from moldau.connect.runtime.connector_config import connector_type
from moldau.connect.runtime.herder import Herder
from moldau.connect.runtime.status import TargetState

KAFKA_VERSION = "3.9.0"  # the Connect REST API version this implementation follows


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error_code": status, "message": message}, status_code=status)


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise BadRequestException(f"Unrecognized or malformed JSON in request body: {exc}") from None


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


class ConnectRestApp:
    def __init__(self, herder: Herder) -> None:
        self.herder = herder
        self._cluster_id: str | None = None
        routes = [
            Route("/", self.root, methods=["GET"]),
            Route("/connectors", self.list_connectors, methods=["GET"]),
            Route("/connectors", self.create_connector, methods=["POST"]),
            Route("/connectors/{name}", self.get_connector, methods=["GET"]),
            Route("/connectors/{name}", self.delete_connector, methods=["DELETE"]),
            Route("/connectors/{name}/config", self.get_config, methods=["GET"]),
            Route("/connectors/{name}/config", self.put_config, methods=["PUT"]),
            Route("/connectors/{name}/config", self.patch_config, methods=["PATCH"]),
            Route("/connectors/{name}/status", self.status, methods=["GET"]),
            Route("/connectors/{name}/restart", self.restart, methods=["POST"]),
            Route("/connectors/{name}/pause", self.pause, methods=["PUT"]),
            Route("/connectors/{name}/resume", self.resume, methods=["PUT"]),
            Route("/connectors/{name}/stop", self.stop, methods=["PUT"]),
            Route("/connectors/{name}/tasks", self.tasks, methods=["GET"]),
            Route("/connectors/{name}/tasks", self.put_task_configs, methods=["POST"]),  # internal (KIP-507)
            Route("/connectors/{name}/fence", self.fence_zombies, methods=["PUT"]),  # internal (KIP-618)
            Route("/connectors/{name}/tasks/{task:int}/status", self.task_status, methods=["GET"]),
            Route("/connectors/{name}/tasks/{task:int}/restart", self.restart_task, methods=["POST"]),
            Route("/connectors/{name}/topics", self.topics, methods=["GET"]),
            Route("/connectors/{name}/topics/reset", self.reset_topics, methods=["PUT"]),
            Route("/connectors/{name}/offsets", self.get_offsets, methods=["GET"]),
            Route("/connectors/{name}/offsets", self.patch_offsets, methods=["PATCH"]),
            Route("/connectors/{name}/offsets", self.delete_offsets, methods=["DELETE"]),
            Route("/connector-plugins", self.plugins, methods=["GET"]),
            Route("/connector-plugins/{plugin}/config", self.plugin_config, methods=["GET"]),
            Route("/connector-plugins/{plugin}/config/validate", self.validate, methods=["PUT"]),
            Route("/admin/loggers", self.loggers, methods=["GET"]),
            Route("/admin/loggers/{logger}", self.get_logger, methods=["GET"]),
            Route("/admin/loggers/{logger}", self.set_logger, methods=["PUT"]),
        ]
        handlers: dict[Any, Any] = {ConnectException: self.on_error, HTTPException: self.on_http_error}
        self.app = Starlette(routes=routes, exception_handlers=handlers)

    async def on_error(self, request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, NotFoundException):
            return error(404, str(exc))
        if isinstance(exc, AlreadyExistsException):
            return error(409, str(exc))
        if isinstance(exc, (BadRequestException, ConfigException)):
            return error(400, str(exc))
        if isinstance(exc, ConnectRestException):
            return error(exc.status, str(exc))
        return error(500, str(exc))

    async def on_http_error(self, request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        message = "HTTP 404 Not Found" if exc.status_code == 404 else str(exc.detail)
        return error(exc.status_code, message)

    async def call(self, fn: Any, *args: Any) -> Any:
        return await run_in_threadpool(fn, *args)

    # -- root ------------------------------------------------------------------------------------

    def _kafka_cluster_id(self) -> str | None:
        if self._cluster_id is None:
            try:
                admin = confluent_kafka.admin.AdminClient(self.herder.worker.config.client_config("admin"))
                self._cluster_id = admin.list_topics(timeout=10).cluster_id
            except confluent_kafka.KafkaException:
                return None
        return self._cluster_id

    async def root(self, request: Request) -> JSONResponse:
        return JSONResponse({"version": KAFKA_VERSION, "commit": f"moldau-{VERSION}",
                             "kafka_cluster_id": await self.call(self._kafka_cluster_id)})

    # -- connectors ------------------------------------------------------------------------------

    async def list_connectors(self, request: Request) -> JSONResponse:
        names = await self.call(self.herder.connectors)
        expand = request.query_params.getlist("expand")
        if not expand:
            return JSONResponse(names)
        result: dict[str, dict[str, Any]] = {}
        for name in names:
            entry: dict[str, Any] = {}
            try:
                if "status" in expand:
                    entry["status"] = await self.call(self.herder.connector_status, name)
                if "info" in expand:
                    entry["info"] = await self.call(self.herder.connector_info, name)
            except NotFoundException:
                continue  # deleted meanwhile
            result[name] = entry
        return JSONResponse(result)

    async def create_connector(self, request: Request) -> JSONResponse:
        body = await _body(request)
        if not isinstance(body, dict):
            raise BadRequestException("Request body must be a JSON object with name and config")
        config: dict[str, Any] = body["config"] if isinstance(body.get("config"), dict) else {}
        name = body.get("name") or config.get("name")
        if not name:
            raise BadRequestException("Connector name configuration must be provided")
        name = str(name).strip()
        if "/" in name:
            raise BadRequestException("connector name should not contain '/'")
        initial = body.get("initial_state")  # KIP-980
        target = None
        if initial is not None:
            mapping = {"RUNNING": TargetState.STARTED, "PAUSED": TargetState.PAUSED, "STOPPED": TargetState.STOPPED}
            if str(initial).upper() not in mapping:
                raise BadRequestException(f"Invalid initial state {initial}; expected RUNNING, PAUSED or STOPPED")
            target = mapping[str(initial).upper()]
        _, info = await self.call(self.herder.put_connector_config, name, config, False, target)
        return JSONResponse(info, status_code=201, headers={"Location": f"/connectors/{name}"})

    async def get_connector(self, request: Request) -> JSONResponse:
        return JSONResponse(await self.call(self.herder.connector_info, request.path_params["name"]))

    async def delete_connector(self, request: Request) -> Response:
        await self.call(self.herder.delete_connector, request.path_params["name"])
        return Response(status_code=204)

    async def get_config(self, request: Request) -> JSONResponse:
        info = await self.call(self.herder.connector_info, request.path_params["name"])
        return JSONResponse(info["config"])

    async def put_config(self, request: Request) -> JSONResponse:
        body = await _body(request)
        if not isinstance(body, dict):
            raise BadRequestException("Connector configuration must be a JSON object")
        created, info = await self.call(self.herder.put_connector_config, request.path_params["name"], body, True)
        return JSONResponse(info, status_code=201 if created else 200)

    async def patch_config(self, request: Request) -> JSONResponse:
        """KIP-477: merge the patch into the config; a null value removes the key."""
        name = request.path_params["name"]
        patch = await _body(request)
        if not isinstance(patch, dict):
            raise BadRequestException("Connector configuration patch must be a JSON object")
        config = dict((await self.call(self.herder.connector_info, name))["config"])
        for key, value in patch.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        _, info = await self.call(self.herder.put_connector_config, name, config, True)
        return JSONResponse(info)

    async def status(self, request: Request) -> JSONResponse:
        return JSONResponse(await self.call(self.herder.connector_status, request.path_params["name"]))

    async def restart(self, request: Request) -> Response:
        accepted = await self.call(self.herder.restart_connector, request.path_params["name"],
                                   _flag(request, "includeTasks"), _flag(request, "onlyFailed"))
        return Response(status_code=204) if accepted is None else JSONResponse(accepted, status_code=202)

    async def _target(self, request: Request, target: TargetState, status: int) -> Response:
        await self.call(self.herder.set_target_state, request.path_params["name"], target)
        return Response(status_code=status)

    async def pause(self, request: Request) -> Response:
        return await self._target(request, TargetState.PAUSED, 202)

    async def resume(self, request: Request) -> Response:
        return await self._target(request, TargetState.STARTED, 202)

    async def stop(self, request: Request) -> Response:
        return await self._target(request, TargetState.STOPPED, 204)

    async def tasks(self, request: Request) -> JSONResponse:
        return JSONResponse(await self.call(self.herder.task_configs, request.path_params["name"]))

    async def put_task_configs(self, request: Request) -> Response:
        """Kafka's InternalClusterResource: a follower forwards its connector's task configs to the leader,
        signed with the session key under `sessioned`."""
        raw = await request.body()
        configs = await _body(request)
        if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
            raise BadRequestException("Task configs must be a list of objects")
        put = getattr(self.herder, "put_task_configs_internal", None)
        if put is None:
            raise ConnectRestException(404, "HTTP 404 Not Found")  # standalone: no internal endpoints
        await self.call(put, request.path_params["name"], configs, request.headers, raw)
        return Response(status_code=204)

    async def fence_zombies(self, request: Request) -> Response:
        """Kafka's InternalClusterResource: a follower's exactly-once source task asks the leader for a round
        of zombie fencing before it starts."""
        raw = await request.body()
        fence = getattr(self.herder, "fence_zombies_internal", None)
        if fence is None:
            raise ConnectRestException(404, "HTTP 404 Not Found")  # standalone: no internal endpoints
        await self.call(fence, request.path_params["name"], request.headers, raw)
        return Response(status_code=204)

    async def task_status(self, request: Request) -> JSONResponse:
        p = request.path_params
        return JSONResponse(await self.call(self.herder.task_status, p["name"], p["task"]))

    async def restart_task(self, request: Request) -> Response:
        p = request.path_params
        await self.call(self.herder.restart_task, p["name"], p["task"])
        return Response(status_code=204)

    async def topics(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        return JSONResponse({name: {"topics": await self.call(self.herder.active_topics, name)}})

    async def reset_topics(self, request: Request) -> Response:
        await self.call(self.herder.reset_active_topics, request.path_params["name"])
        return Response(status_code=202)

    async def get_offsets(self, request: Request) -> JSONResponse:
        return JSONResponse(await self.call(self.herder.connector_offsets, request.path_params["name"]))

    async def patch_offsets(self, request: Request) -> JSONResponse:
        body = await _body(request)
        return JSONResponse(await self.call(self.herder.modify_offsets, request.path_params["name"], body))

    async def delete_offsets(self, request: Request) -> JSONResponse:
        return JSONResponse(await self.call(self.herder.modify_offsets, request.path_params["name"], None))

    # -- plugins ---------------------------------------------------------------------------------

    def _plugin_list(self, connectors_only: bool) -> list[dict[str, str]]:
        registry = self.herder.plugins
        result = []
        for desc in registry.descriptors("connector"):
            try:
                cls = desc.load()
            except ConnectException:
                continue  # e.g. an optional dependency is missing
            result.append({"class": desc.class_name, "type": connector_type(cls), "version": cls().version()})
        if not connectors_only:
            for kind in ("converter", "header_converter", "transformation", "predicate"):
                for desc in registry.descriptors(kind):
                    result.append({"class": desc.class_name, "type": kind, "version": VERSION})
        return result

    async def plugins(self, request: Request) -> JSONResponse:
        connectors_only = request.query_params.get("connectorsOnly", "true").lower() != "false"
        return JSONResponse(await self.call(self._plugin_list, connectors_only))

    async def plugin_config(self, request: Request) -> JSONResponse:
        plugin = request.path_params["plugin"]
        registry = self.herder.plugins
        for kind in ("connector", "converter", "transformation", "predicate"):
            try:
                instance = registry.new(kind, plugin)
            except ConnectException:
                continue
            definition = instance.config() if hasattr(instance, "config") else None
            keys = definition.keys.values() if definition is not None else []
            return JSONResponse([key.to_json() for key in keys])
        raise NotFoundException(f"Unknown plugin {plugin}.")

    async def validate(self, request: Request) -> JSONResponse:
        plugin = request.path_params["plugin"]
        config = await _body(request)
        if not isinstance(config, dict):
            raise BadRequestException("Connector configuration must be a JSON object")
        config = {str(k): str(v) for k, v in config.items()}
        given = config.get("connector.class")
        registry = self.herder.plugins
        if given is not None and registry.find("connector", given).class_name != \
                registry.find("connector", plugin).class_name:
            raise BadRequestException(f"Included connector type {given} does not match request type {plugin}")
        config.setdefault("connector.class", plugin)
        return JSONResponse(await self.call(self.herder.validate, config))

    # -- loggers ---------------------------------------------------------------------------------

    async def loggers(self, request: Request) -> JSONResponse:
        return JSONResponse(loggers.all_levels())

    async def get_logger(self, request: Request) -> JSONResponse:
        return JSONResponse(loggers.level(request.path_params["logger"]))

    async def set_logger(self, request: Request) -> Response:
        body = await _body(request)
        level = body.get("level") if isinstance(body, dict) else None
        if level is None:
            raise BadRequestException("The request body must specify a log level")
        affected = loggers.set_level(request.path_params["logger"], level)
        if request.query_params.get("scope", "worker").lower() == "cluster":
            return Response(status_code=204)
        return JSONResponse(affected)
