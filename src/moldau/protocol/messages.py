"""The generated message classes, one per Kafka schema: ``messages.ProduceRequest``, ``messages.FetchResponse``.

Classes are built on first access from the JSON schemas (see ``classes.py``); nested structs are
attributes of their message class:

>>> from moldau.protocol import messages
>>> p = messages.ProduceResponse.TopicProduceResponse(name="orders")
>>> p.partition_responses
[]

Every field of every version is an attribute, by its snake_case name. Fields outside the version being
encoded are ignored; on decode they get their defaults.
"""

from __future__ import annotations

from typing import Any

from moldau.protocol.classes import message_class
from moldau.protocol.schema import all_specs


def __getattr__(name: str) -> Any:
    if name.startswith("_") or name not in all_specs():
        raise AttributeError(f"module {__name__!r} has no message class {name!r}")
    cls = message_class(name)
    globals()[name] = cls
    return cls


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(all_specs()))
