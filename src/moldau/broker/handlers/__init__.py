"""One module per Kafka API: each exports `API_KEY`, optional `VERSIONS` caps, and `async def handle`.

A handler is a function from a decoded request (plus the connection, which leads to the broker)
to a response object, or None when the API sends no response (Produce with acks=0). Every module
in this package that defines `API_KEY` is served; adding an API is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from moldau.protocol import api

Handler = Callable[[Any, Any, Any], Awaitable[Any]]


def _discover() -> tuple[ModuleType, ...]:
    modules = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "API_KEY") and hasattr(module, "handle"):
            modules.append(module)
    return tuple(sorted(modules, key=lambda m: m.API_KEY))


MODULES = _discover()
HANDLERS: dict[int, Handler] = {module.API_KEY: module.handle for module in MODULES}


def supported_versions() -> dict[int, tuple[int, int]]:
    """The (min, max) version of each API we serve: the schema's range, capped where a handler says so."""
    result = {}
    for module in MODULES:
        spec = api.APIS[module.API_KEY]
        low, high = getattr(module, "VERSIONS", (spec.min_version, spec.max_version))
        high = min(high, spec.max_version - 1 if spec.latest_version_unstable else spec.max_version)
        result[module.API_KEY] = (max(low, spec.min_version), high)
    return result
