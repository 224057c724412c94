"""`/admin/loggers` (KIP-495): read and set log levels at run time. Kafka's logger names are dotted Java
packages; ours are Python logger names (`moldau.connect.runtime`), and `root` is the root logger."""

from __future__ import annotations

import logging
import time
from typing import Any

from moldau.connect.api.errors import BadRequestException, NotFoundException

LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
          "ERROR": logging.ERROR, "FATAL": logging.CRITICAL, "OFF": logging.CRITICAL + 10}
_NAMES = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN", logging.ERROR: "ERROR",
          logging.CRITICAL: "FATAL", logging.CRITICAL + 10: "OFF"}
_last_modified: dict[str, int] = {}


def _logger(name: str) -> logging.Logger:
    return logging.getLogger() if name == "root" else logging.getLogger(name)


def _level_name(logger: logging.Logger) -> str:
    return _NAMES.get(logger.getEffectiveLevel(), logging.getLevelName(logger.getEffectiveLevel()))


def all_levels() -> dict[str, dict[str, Any]]:
    """The root logger and every logger with an explicitly set level."""
    result = {"root": {"level": _level_name(logging.getLogger()), "last_modified": _last_modified.get("root")}}
    for name, logger in sorted(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            result[name] = {"level": _level_name(logger), "last_modified": _last_modified.get(name)}
    return result


def level(name: str) -> dict[str, Any]:
    if name != "root" and name not in logging.Logger.manager.loggerDict:
        raise NotFoundException(f"Logger {name} not found.")
    return {"level": _level_name(_logger(name)), "last_modified": _last_modified.get(name)}


def set_level(name: str, level_name: Any) -> list[str]:
    """Set `name` and reset its descendants to inherit; returns the affected loggers, as Kafka does."""
    if not isinstance(level_name, str) or level_name.upper() not in LEVELS:
        raise BadRequestException(f"Invalid log level '{level_name}'.")
    _logger(name).setLevel(LEVELS[level_name.upper()])
    now = int(time.time() * 1000)
    _last_modified[name] = now
    affected = [name]
    prefix = "" if name == "root" else name + "."
    for child, logger in sorted(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and child.startswith(prefix) and child != name:
            logger.setLevel(logging.NOTSET)
            _last_modified[child] = now
            affected.append(child)
    return sorted(affected)
