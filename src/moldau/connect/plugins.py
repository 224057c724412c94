"""Plugin discovery: built-ins, Python entry points, Kafka's class names and aliases, dotted paths.

Kafka finds plugins on `plugin.path`; Python has packages, so third parties ship connectors, converters,
transforms and predicates as distributions that declare entry points:

    [project.entry-points."moldau.connect.connectors"]
    MySourceConnector = "mypkg.source:MySourceConnector"

A config can name a plugin by Kafka's full class name (`org.apache.kafka.connect.file.FileStreamSourceConnector`),
by its alias (the simple name, or the simple name without its `Connector`/`Converter` suffix, as Kafka's
`Plugins` allows), by an entry point name, or by a Python path (`mypkg.source.MySourceConnector` or
`mypkg.source:MySourceConnector`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from dataclasses import dataclass
from typing import Any

from moldau.connect.api.errors import BadRequestException, ConnectException

KINDS = ("connector", "converter", "header_converter", "transformation", "predicate")
ENTRY_POINT_GROUPS = {
    "connector": "moldau.connect.connectors",
    "converter": "moldau.connect.converters",
    "header_converter": "moldau.connect.header_converters",
    "transformation": "moldau.connect.transforms",
    "predicate": "moldau.connect.predicates",
}

_K = "org.apache.kafka.connect"
_T = f"{_K}.transforms"
_C = "moldau.connect"
# Built-ins: Kafka's class name -> our implementation. Aliases are derived from the Kafka name.
BUILTINS: dict[str, dict[str, str]] = {
    "connector": {
        f"{_K}.file.FileStreamSourceConnector": f"{_C}.connectors.file:FileStreamSourceConnector",
        f"{_K}.file.FileStreamSinkConnector": f"{_C}.connectors.file:FileStreamSinkConnector",
        f"{_K}.mirror.MirrorSourceConnector": f"{_C}.connectors.mirror:MirrorSourceConnector",
        f"{_K}.mirror.MirrorCheckpointConnector": f"{_C}.connectors.mirror:MirrorCheckpointConnector",
        "io.moldau.connect.postgres.PostgresSourceConnector": f"{_C}.connectors.postgres.source:PostgresSourceConnector",
        "io.moldau.connect.postgres.PostgresSinkConnector": f"{_C}.connectors.postgres.sink:PostgresSinkConnector",
    },
    "converter": {
        f"{_K}.storage.StringConverter": f"{_C}.converters.simple:StringConverter",
        f"{_K}.converters.ByteArrayConverter": f"{_C}.converters.simple:ByteArrayConverter",
        f"{_K}.json.JsonConverter": f"{_C}.converters.json:JsonConverter",
        "io.confluent.connect.avro.AvroConverter": f"{_C}.converters.registry:AvroConverter",
        "io.confluent.connect.json.JsonSchemaConverter": f"{_C}.converters.registry:JsonSchemaConverter",
        "io.confluent.connect.protobuf.ProtobufConverter": f"{_C}.converters.protobuf:ProtobufConverter",
    },
    "header_converter": {
        f"{_K}.storage.SimpleHeaderConverter": f"{_C}.converters.simple:SimpleHeaderConverter",
        f"{_K}.storage.StringConverter": f"{_C}.converters.simple:StringConverter",
        f"{_K}.converters.ByteArrayConverter": f"{_C}.converters.simple:ByteArrayConverter",
        f"{_K}.json.JsonConverter": f"{_C}.converters.json:JsonConverter",
    },
    "transformation": {
        **{f"{_T}.{name}${part}": f"{_C}.transforms.{module}:{name}{part}"
           for name, module in (("InsertField", "fields"), ("ReplaceField", "fields"), ("MaskField", "fields"),
                                ("ExtractField", "fields"), ("HoistField", "fields"), ("Cast", "cast"),
                                ("Flatten", "flatten"), ("SetSchemaMetadata", "fields"))
           for part in ("Key", "Value")},
        f"{_T}.ValueToKey": f"{_C}.transforms.fields:ValueToKey",
        f"{_T}.TimestampRouter": f"{_C}.transforms.routers:TimestampRouter",
        f"{_T}.RegexRouter": f"{_C}.transforms.routers:RegexRouter",
        f"{_T}.Filter": f"{_C}.transforms.routers:Filter",
        f"{_T}.InsertHeader": f"{_C}.transforms.routers:InsertHeader",
        f"{_T}.DropHeaders": f"{_C}.transforms.routers:DropHeaders",
    },
    "predicate": {
        f"{_T}.predicates.TopicNameMatches": f"{_C}.transforms.predicates:TopicNameMatches",
        f"{_T}.predicates.HasHeaderKey": f"{_C}.transforms.predicates:HasHeaderKey",
        f"{_T}.predicates.RecordIsTombstone": f"{_C}.transforms.predicates:RecordIsTombstone",
    },
}

_SUFFIX = {"connector": "Connector", "converter": "Converter", "header_converter": "Converter"}


@dataclass(slots=True, frozen=True)
class PluginDesc:
    kind: str
    class_name: str  # the name REST reports (Kafka's class name for built-ins)
    target: str  # "module:attr"

    def load(self) -> type:
        return _import(self.target)


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not attr:
        module_name, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConnectException(f"Failed to load class {target}: {exc}") from exc


def _aliases(kind: str, class_name: str) -> list[str]:
    simple = class_name.rsplit(".", 1)[-1]
    names = [class_name, simple]
    suffix = _SUFFIX.get(kind)
    if suffix and simple.endswith(suffix) and simple != suffix:
        names.append(simple[: -len(suffix)])
    return names


class Plugins:
    """The plugins known to this worker, by kind; resolves any accepted name to a class."""

    def __init__(self) -> None:
        self._by_name: dict[str, dict[str, PluginDesc]] = {kind: {} for kind in KINDS}
        self._descs: dict[str, list[PluginDesc]] = {kind: [] for kind in KINDS}
        for kind, table in BUILTINS.items():
            for class_name, target in table.items():
                self._add(PluginDesc(kind, class_name, target))
        self._load_entry_points()

    def _add(self, desc: PluginDesc) -> None:
        self._descs[desc.kind].append(desc)
        names = _aliases(desc.kind, desc.class_name) + [desc.target, desc.target.replace(":", ".")]
        for name in names:
            self._by_name[desc.kind].setdefault(name, desc)

    def _load_entry_points(self) -> None:
        for kind, group in ENTRY_POINT_GROUPS.items():
            for ep in importlib.metadata.entry_points(group=group):
                self._add(PluginDesc(kind, ep.name, ep.value))

    def descriptors(self, kind: str) -> list[PluginDesc]:
        return list(self._descs[kind])

    def find(self, kind: str, name: str) -> PluginDesc:
        desc = self._by_name[kind].get(name.strip())
        if desc is not None:
            return desc
        if "." in name or ":" in name:  # any importable Python class
            return PluginDesc(kind, name, name)
        raise BadRequestException(f"Failed to find any class that implements {kind.replace('_', ' ')} and which "
                               f"name matches {name}, available {kind}s are: "
                               + ", ".join(sorted(d.class_name for d in self._descs[kind])))

    def load(self, kind: str, name: str) -> type:
        return self.find(kind, name).load()

    def new(self, kind: str, name: str) -> Any:
        return self.load(kind, name)()


_instance: Plugins | None = None
_lock = threading.Lock()


def plugins() -> Plugins:
    """The process-wide plugin registry (entry points are scanned once)."""
    global _instance
    with _lock:
        if _instance is None:
            _instance = Plugins()
        return _instance


def reset_plugins() -> None:
    """Forget the scanned entry points (tests that install a plugin distribution)."""
    global _instance
    with _lock:
        _instance = None
