"""Load Kafka's JSON message schemas and normalise them into a model the code generator walks.

The files are Apache Kafka's own (``clients/src/main/resources/common/message``), JSON with ``//`` comment
lines. Nothing here knows a message layout: everything comes from the files.

>>> spec = message_spec("ProduceRequest")
>>> spec.api_key, spec.valid.lo, spec.valid.hi, spec.flexible.lo
(0, 3, 13, 9)
"""

from __future__ import annotations

import functools
import json
import keyword
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from moldau.protocol.defaults import ZERO_UUID

SCHEMA_DIR = Path(__file__).parent / "schemas"
MAX_VERSION = 0x7FFF

#: struct-module format of every fixed-width type.
FIXED_FORMATS = {
    "bool": "?",
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "uint16": "H",
    "uint32": "I",
    "float64": "d",
    "uuid": "16s",
}
PRIMITIVES = frozenset(FIXED_FORMATS) | {"string", "bytes", "records"}


class SchemaError(ValueError):
    """A schema file says something this generator does not understand."""


@dataclass(frozen=True, slots=True)
class Versions:
    """An inclusive version range; ``lo > hi`` is the empty range ("none")."""

    lo: int
    hi: int

    @classmethod
    def parse(cls, text: str | None) -> Versions:
        """Parse ``"N"``, ``"N-M"``, ``"N+"`` or ``"none"``; ``None`` (key absent) is empty too."""
        if text is None or text == "none":
            return NONE
        if text.endswith("+"):
            return cls(int(text[:-1]), MAX_VERSION)
        lo, sep, hi = text.partition("-")
        return cls(int(lo), int(hi) if sep else int(lo))

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and self.lo <= version <= self.hi

    @property
    def empty(self) -> bool:
        return self.lo > self.hi

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(range(self.lo, self.hi + 1))


NONE = Versions(0, -1)


@dataclass(slots=True, eq=False)
class FieldSpec:
    """One field of a struct.

    ``type`` is a primitive name, ``"struct"`` or ``"array"``; for an array ``elem`` is the element's
    primitive name or ``"struct"``; ``struct`` is the struct of a struct field or struct array.
    ``default`` is the Python default for scalars and ``None`` for null; for non-null array and struct
    defaults it is ``None`` too and ``default_is_null`` says which is meant.
    """

    name: str
    attr: str
    type: str
    elem: str | None
    struct: StructSpec | None
    versions: Versions
    nullable: Versions
    tagged: Versions
    tag: int | None
    default: object
    default_is_null: bool
    flexible_override: Versions | None
    ignorable: bool
    zero_copy: bool
    about: str

    @property
    def kind(self) -> str:
        """The type of a single value: the element type for arrays."""
        return self.elem if self.type == "array" else self.type  # type: ignore[return-value]

    def is_nullable_anywhere(self) -> bool:
        return not self.nullable.empty


@dataclass(slots=True, eq=False)
class StructSpec:
    name: str
    fields: list[FieldSpec] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class MessageSpec:
    """One schema file: a request, response, header or data message."""

    name: str
    kind: str  # "request", "response", "header", "data"
    api_key: int | None
    valid: Versions
    flexible: Versions
    listeners: tuple[str, ...]
    latest_version_unstable: bool
    root: StructSpec
    structs: dict[str, StructSpec]  # every named struct of the message (inline and common), by name


def snake_case(name: str) -> str:
    """Kafka's PascalCase field name as a Python attribute: ``ThrottleTimeMs`` -> ``throttle_time_ms``."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", s).lower()
    return s + "_" if keyword.iskeyword(s) else s


def read_json(path: Path) -> dict:
    """Read a schema file: JSON whose comment lines start with ``//``."""
    text = "\n".join(
        line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("//")
    )
    return json.loads(text)


def _parse_default(raw: object, kind: str, nullable: bool, where: str) -> tuple[object, bool]:
    """Return (python default, is_null) for a field's ``default`` (string or JSON literal)."""
    if raw is None or raw == "null":
        if raw == "null" and not nullable and kind not in ("string", "bytes", "records"):
            raise SchemaError(f"{where}: default null on a field that is never nullable")
        return None, True
    if kind in ("int8", "int16", "int32", "int64", "uint16", "uint32"):
        return (raw if isinstance(raw, int) else int(str(raw), 0)), False
    if kind == "bool":
        if isinstance(raw, bool):
            return raw, False
        if str(raw).lower() in ("true", "false"):
            return str(raw).lower() == "true", False
    if kind == "float64":
        return float(raw), False  # type: ignore[arg-type]
    if kind == "string":
        return str(raw), False
    if kind == "uuid":
        return (uuid.UUID(str(raw)) if raw else ZERO_UUID), False
    if kind in ("bytes", "records") and raw == "":
        return b"", False
    raise SchemaError(f"{where}: cannot use default {raw!r} for type {kind}")


def _implicit_default(kind: str, ftype: str, nullable_anywhere: bool) -> tuple[object, bool]:
    if ftype in ("array", "struct"):
        return None, False  # a new empty list / a new default struct
    if kind == "records":
        # Java's generated code defaults records to null; keep b"" where null is never allowed.
        return (None, True) if nullable_anywhere else (b"", False)
    return {
        "bool": False,
        "float64": 0.0,
        "string": "",
        "bytes": b"",
        "uuid": ZERO_UUID,
    }.get(kind, 0), False


class _Builder:
    """Builds the StructSpecs of one message, resolving struct type names."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.structs: dict[str, StructSpec] = {}
        self.common = {cs["name"]: cs for cs in doc.get("commonStructs", [])}

    def struct(self, name: str, raw_fields: list[dict]) -> StructSpec:
        if name in self.structs:
            raise SchemaError(f"{self.doc['name']}: struct {name} is defined twice")
        spec = StructSpec(name)
        self.structs[name] = spec
        spec.fields = [self.field(f, name) for f in raw_fields]
        attrs = [f.attr for f in spec.fields]
        if len(set(attrs)) != len(attrs):
            raise SchemaError(f"{self.doc['name']}.{name}: two fields map to the same attribute")
        return spec

    def resolve(self, type_name: str, raw: dict) -> StructSpec:
        if "fields" in raw:
            return self.struct(type_name, raw["fields"])
        if type_name in self.structs:
            return self.structs[type_name]
        if type_name in self.common:
            return self.struct(type_name, self.common[type_name]["fields"])
        raise SchemaError(f"{self.doc['name']}: unknown struct type {type_name}")

    def field(self, raw: dict, owner: str) -> FieldSpec:
        where = f"{self.doc['name']}.{owner}.{raw['name']}"
        rtype: str = raw["type"]
        is_array = rtype.startswith("[]")
        base = rtype[2:] if is_array else rtype
        struct = None
        if base in PRIMITIVES:
            kind = base
        elif base[:1].isupper():
            kind = "struct"
            struct = self.resolve(base, raw)
        else:
            raise SchemaError(f"{where}: unknown type {rtype}")
        ftype = "array" if is_array else kind
        tagged = Versions.parse(raw.get("taggedVersions"))
        versions = Versions.parse(raw["versions"]) if "versions" in raw else tagged
        nullable = Versions.parse(raw.get("nullableVersions"))
        if "default" in raw and ftype in ("array", "struct"):
            # An array or struct default can only be "null"; anything else means the implicit default.
            default, is_null = None, raw["default"] in (None, "null")
        elif "default" in raw:
            default, is_null = _parse_default(raw["default"], kind, not nullable.empty, where)
        else:
            default, is_null = _implicit_default(kind, ftype, not nullable.empty)
        flex = raw.get("flexibleVersions")
        return FieldSpec(
            name=raw["name"],
            attr=snake_case(raw["name"]),
            type=ftype,
            elem=kind if is_array else None,
            struct=struct,
            versions=versions,
            nullable=nullable,
            tagged=tagged,
            tag=raw.get("tag"),
            default=default,
            default_is_null=is_null,
            flexible_override=Versions.parse(flex) if flex is not None else None,
            ignorable=bool(raw.get("ignorable", False)),
            zero_copy=bool(raw.get("zeroCopy", False)),
            about=raw.get("about", ""),
        )


def build_spec(doc: dict) -> MessageSpec:
    """Normalise one parsed schema document."""
    builder = _Builder(doc)
    root = builder.struct(doc["name"], doc.get("fields", []))
    del builder.structs[doc["name"]]
    # commonStructs that no field of this file uses still get a class.
    for name, raw in builder.common.items():
        if name not in builder.structs:
            builder.struct(name, raw["fields"])
    return MessageSpec(
        name=doc["name"],
        kind=doc["type"],
        api_key=doc.get("apiKey"),
        valid=Versions.parse(doc.get("validVersions")),
        flexible=Versions.parse(doc.get("flexibleVersions")),
        listeners=tuple(doc.get("listeners", ())),
        latest_version_unstable=bool(doc.get("latestVersionUnstable", False)),
        root=root,
        structs=builder.structs,
    )


#: Folders of SCHEMA_DIR with more schemas, not RPCs (so ``api.APIS`` ignores them): the group coordinator's
#: record schemas (``coordinator-key``/``coordinator-value``, from Kafka's group-coordinator module) and the
#: transaction coordinator's (TransactionLogKey/Value).
SUBDIRS = ("group-coordinator", "transaction-coordinator")


def _schema_paths(directory: Path) -> list[Path]:
    paths = sorted(directory.glob("*.json"))
    if directory == SCHEMA_DIR:
        for sub in SUBDIRS:
            paths += sorted((directory / sub).glob("*.json"))
    return paths


@functools.cache
def all_specs(directory: Path = SCHEMA_DIR) -> dict[str, MessageSpec]:
    """Every schema in ``directory``, by message name (``ProduceRequest``, ``RequestHeader``, ...).

    Reads every file (about 0.1 s): tools and tests use it; the broker reads one file per message it
    uses, through ``message_spec``.
    """
    specs = {}
    for path in _schema_paths(directory):
        spec = message_spec(path.stem) if directory == SCHEMA_DIR else build_spec(read_json(path))
        specs[spec.name] = spec
    return specs


@functools.cache
def message_spec(name: str) -> MessageSpec:
    """The schema named ``name``, read from its own file (``<name>.json``); KeyError for an unknown name."""
    if name.isidentifier():
        for folder in (SCHEMA_DIR, *(SCHEMA_DIR / sub for sub in SUBDIRS)):
            path = folder / f"{name}.json"
            if path.is_file():
                spec = build_spec(read_json(path))
                if spec.name != name:
                    raise SchemaError(f"{path} defines {spec.name}, not {name}")
                return spec
    raise KeyError(name)
