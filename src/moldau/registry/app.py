"""Confluent Schema Registry's REST API v1 as a Starlette application.

Requests may carry `application/vnd.schemaregistry.v1+json`, `application/vnd.schemaregistry+json`,
`application/json` or `application/octet-stream` (as Confluent accepts); responses are
`application/vnd.schemaregistry.v1+json`. Errors are `{"error_code": ..., "message": ...}` with Confluent's codes.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moldau.registry import errors, formats
from moldau.registry.service import SchemaRegistry

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_CONTENT_TYPES = ("application/vnd.schemaregistry.v1+json", "application/vnd.schemaregistry+json",
                          "application/json", "application/octet-stream")
MAX_BODY_BYTES = 4 * 1024 * 1024
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024

Handler = Callable[[Request], Awaitable[Any]]


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type=CONTENT_TYPE)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


async def _body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
    if content_type not in ACCEPTED_CONTENT_TYPES:
        raise errors.UnsupportedMediaType(f"HTTP 415 Unsupported Media Type: {content_type!r}; use {CONTENT_TYPE}")
    raw = bytearray()
    size = 0
    async for chunk in request.stream():
        # Read (and drop) an oversized body rather than reset the connection under a client still sending it.
        size += len(chunk)
        if size <= MAX_BODY_BYTES:
            raw += chunk
        elif size > DRAIN_LIMIT_BYTES:
            break
    if size > MAX_BODY_BYTES:
        raise errors.PayloadTooLarge(f"Request entity of {size} bytes exceeds {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(bytes(raw) or b"{}")
    except ValueError as exc:
        raise errors.BadRequest(f"Unexpected character in the request body: {exc}") from None
    if not isinstance(body, dict):
        raise errors.UnprocessableEntity("The request body must be a JSON object")
    return body


def _schema_id(request: Request) -> int:
    try:
        return int(request.path_params["id"])
    except ValueError:
        raise errors.NotFound(f"HTTP 404 Not Found: schema id {request.path_params['id']!r}") from None


def build_app(registry: SchemaRegistry, basic_auth_users: dict[str, str] | None = None) -> Starlette:
    """The ASGI application serving `registry`; `basic_auth_users` (user -> password) turns on HTTP Basic."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                if basic_auth_users is not None:
                    _authenticate(request, basic_auth_users)
                result = await handler(request)
                return result if isinstance(result, Response) else _json(result)
            except errors.RegistryError as exc:
                return _json(exc.to_json(), exc.status)
            except Exception:
                log.exception("schema registry request %s %s failed", request.method, request.url.path)
                return _json({"error_code": 50001, "message": "Error in the backend data store"}, 500)
        return run

    async def root(request: Request) -> Any:
        return {}

    async def schema_types(request: Request) -> Any:
        return list(formats.SCHEMA_TYPES)

    async def schema_by_id(request: Request) -> Any:
        return registry.schema_by_id(_schema_id(request), request.query_params.get("format"))

    async def schema_text_by_id(request: Request) -> Any:
        body = registry.schema_by_id(_schema_id(request), request.query_params.get("format"))
        return Response(body["schema"], media_type=CONTENT_TYPE)

    async def subjects_of_id(request: Request) -> Any:
        return [p["subject"] for p in registry.subjects_of_id(_schema_id(request), _flag(request, "deleted"))]

    async def versions_of_id(request: Request) -> Any:
        return registry.subjects_of_id(_schema_id(request), _flag(request, "deleted"))

    async def schemas(request: Request) -> Any:
        entries = registry.all_versions(_flag(request, "deleted"), request.query_params.get("subjectPrefix", ""),
                                        _flag(request, "latestOnly"))
        return [e.to_json() for e in entries]

    async def contexts(request: Request) -> Any:
        return ["."]  # the default context only (Confluent's schema linking contexts are not served)

    async def subjects(request: Request) -> Any:
        return registry.subjects(_flag(request, "deleted"), request.query_params.get("subjectPrefix", ""))

    async def versions(request: Request) -> Any:
        return registry.versions(request.path_params["subject"], _flag(request, "deleted"))

    async def register(request: Request) -> Any:
        body = await _body(request)
        schema_id = await run_in_threadpool(registry.register, request.path_params["subject"], body,
                                            _flag(request, "normalize"))
        return {"id": schema_id}

    async def lookup(request: Request) -> Any:
        body = await _body(request)
        entry = registry.lookup(request.path_params["subject"], body, _flag(request, "normalize"),
                                _flag(request, "deleted"))
        return entry.to_json()

    async def get_version(request: Request) -> Any:
        p = request.path_params
        return registry.version(p["subject"], p["version"], _flag(request, "deleted")).to_json()

    async def get_version_schema(request: Request) -> Any:
        p = request.path_params
        entry = registry.version(p["subject"], p["version"], _flag(request, "deleted"))
        return Response(entry.key.schema, media_type=CONTENT_TYPE)

    async def referenced_by(request: Request) -> Any:
        return registry.referenced_by(request.path_params["subject"], request.path_params["version"])

    async def delete_version(request: Request) -> Any:
        p = request.path_params
        return await run_in_threadpool(registry.delete_version, p["subject"], p["version"],
                                       _flag(request, "permanent"))

    async def delete_subject(request: Request) -> Any:
        return await run_in_threadpool(registry.delete_subject, request.path_params["subject"],
                                       _flag(request, "permanent"))

    async def compatibility(request: Request) -> Any:
        body = await _body(request)
        problems = await run_in_threadpool(registry.check_compatibility, request.path_params["subject"],
                                           request.path_params.get("version"), body, _flag(request, "normalize"))
        result: dict[str, Any] = {"is_compatible": not problems}
        if _flag(request, "verbose"):
            result["messages"] = problems
        return result

    async def config(request: Request) -> Any:
        subject = request.path_params.get("subject")
        if request.method == "GET":
            return {"compatibilityLevel": registry.compatibility(subject, _flag(request, "defaultToGlobal"))}
        if request.method == "DELETE":
            level = await run_in_threadpool(registry.delete_compatibility, subject)
            return {"compatibilityLevel": level}
        body = await _body(request)
        level = await run_in_threadpool(registry.set_compatibility, subject,
                                        body.get("compatibility", body.get("compatibilityLevel")))
        return {"compatibility": level}

    async def mode(request: Request) -> Any:
        subject = request.path_params.get("subject")
        if request.method == "GET":
            return {"mode": registry.mode(subject, subject is None or _flag(request, "defaultToGlobal"))}
        if request.method == "DELETE":
            return {"mode": await run_in_threadpool(registry.delete_mode, str(subject))}
        body = await _body(request)
        return {"mode": await run_in_threadpool(registry.set_mode, subject, body.get("mode"),
                                                _flag(request, "force"))}

    routes = [
        Route("/", endpoint(root), methods=["GET"]),
        Route("/schemas", endpoint(schemas), methods=["GET"]),
        Route("/contexts", endpoint(contexts), methods=["GET"]),
        Route("/schemas/types", endpoint(schema_types), methods=["GET"]),
        Route("/schemas/ids/{id}", endpoint(schema_by_id), methods=["GET"]),
        Route("/schemas/ids/{id}/schema", endpoint(schema_text_by_id), methods=["GET"]),
        Route("/schemas/ids/{id}/subjects", endpoint(subjects_of_id), methods=["GET"]),
        Route("/schemas/ids/{id}/versions", endpoint(versions_of_id), methods=["GET"]),
        Route("/subjects", endpoint(subjects), methods=["GET"]),
        Route("/subjects/{subject:path}/versions", endpoint(versions), methods=["GET"]),
        Route("/subjects/{subject:path}/versions", endpoint(register), methods=["POST"]),
        Route("/subjects/{subject:path}/versions/{version}", endpoint(get_version), methods=["GET"]),
        Route("/subjects/{subject:path}/versions/{version}", endpoint(delete_version), methods=["DELETE"]),
        Route("/subjects/{subject:path}/versions/{version}/schema", endpoint(get_version_schema), methods=["GET"]),
        Route("/subjects/{subject:path}/versions/{version}/referencedby", endpoint(referenced_by),
              methods=["GET"]),
        Route("/subjects/{subject:path}", endpoint(lookup), methods=["POST"]),
        Route("/subjects/{subject:path}", endpoint(delete_subject), methods=["DELETE"]),
        Route("/compatibility/subjects/{subject:path}/versions", endpoint(compatibility), methods=["POST"]),
        Route("/compatibility/subjects/{subject:path}/versions/{version}", endpoint(compatibility),
              methods=["POST"]),
        Route("/config", endpoint(config), methods=["GET", "PUT", "DELETE"]),
        Route("/config/{subject:path}", endpoint(config), methods=["GET", "PUT", "DELETE"]),
        Route("/mode", endpoint(mode), methods=["GET", "PUT"]),
        Route("/mode/{subject:path}", endpoint(mode), methods=["GET", "PUT", "DELETE"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _json({"error_code": status, "message": f"HTTP {status} {getattr(exc, 'detail', '')}".strip()},
                     status)

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def _authenticate(request: Request, users: dict[str, str]) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        expected = users.get(user)
        if expected is not None and secrets.compare_digest(expected, password):
            return
    raise errors.Unauthorized("Unauthorized: HTTP Basic credentials are required")
