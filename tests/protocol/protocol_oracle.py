"""Test helpers: hypothesis strategies for generated messages, and conversion to and from kio's classes.

kio (PyPI) is generated from the same Kafka schemas by other people, with its own encoder and decoder,
which makes it an independent oracle for our codec. Its classes differ from ours in the details this
module bridges: frozen dataclasses with tuples, ``ErrorCode`` enums for error codes, ``timedelta`` for
``...Ms`` durations, timezone-aware ``datetime`` for timestamps, ``None`` for the all-zero UUID, and
renamed fields. Fields are matched by position: both follow the schema's field order.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import pkgutil
import uuid
from typing import Any

from hypothesis import strategies as st
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.schema.index import schema_name_map
from kio.serial import entity_reader, entity_writer
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveField,
    PrimitiveTupleField,
    classify_field,
    is_optional,
)

from moldau.protocol.classes import struct_classes
from moldau.protocol.schema import ZERO_UUID, FieldSpec, MessageSpec, StructSpec, snake_case

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
MS = datetime.timedelta(milliseconds=1)
_KIO_TO_OURS = {
    "error_code": "int16",
    "timedelta_i32": "int32",
    "timedelta_i64": "int64",
    "datetime_i64": "int64",
}
_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
}


class Mismatch(Exception):
    """kio's class for a (message, version) does not have the same fields as the 4.3.1 schema."""


def kio_class(spec: MessageSpec, version: int) -> type:
    if spec.kind in ("request", "response"):
        base = spec.name.removesuffix("Request").removesuffix("Response")
    else:
        base = spec.name
    entries = schema_name_map.get(snake_case(base), {}).get(version)
    if not entries:
        raise Mismatch(f"kio has no {spec.name} v{version}")
    for entity_type, path in entries.items():
        if entity_type.name == spec.kind:
            return pkgutil.resolve_name(path)
    raise Mismatch(f"kio has no {spec.kind} for {spec.name} v{version}")


def present(struct: StructSpec, version: int) -> list[FieldSpec]:
    return [f for f in struct.fields if version in f.versions or version in f.tagged]


@dataclasses.dataclass
class Pair:
    """One of our fields at one version with its kio counterpart."""

    ours: FieldSpec
    kio: dataclasses.Field
    kio_kind: str  # kafka_type of a primitive (element), or "struct"
    kio_type: type | None  # the kio struct class
    nested: list[Pair] | None = None


@functools.cache
def pairs(spec_name: str, struct_name: str, version: int, kio_cls: type) -> tuple[Pair, ...]:
    from moldau.protocol.schema import all_specs

    spec = all_specs()[spec_name]
    struct = spec.root if struct_name == spec.name else spec.structs[struct_name]
    ours = present(struct, version)
    theirs = dataclasses.fields(kio_cls)
    if len(ours) != len(theirs):
        raise Mismatch(
            f"{spec_name}.{struct_name} v{version}: ours {[f.attr for f in ours]} kio {[f.name for f in theirs]}"
        )
    result = []
    for f, k in zip(ours, theirs, strict=True):
        cls = classify_field(k)
        if isinstance(cls, (EntityField, EntityTupleField)):
            if f.kind != "struct":
                raise Mismatch(f"{spec_name}.{f.name} v{version}: kio has a struct, we have {f.kind}")
            kind, ktype = "struct", cls.type_
        else:
            kind, ktype = k.metadata["kafka_type"], None
            if _KIO_TO_OURS.get(kind, kind) != f.kind:
                raise Mismatch(f"{spec_name}.{f.name} v{version}: kio type {kind}, ours {f.kind}")
        if cls.is_array != (f.type == "array"):
            raise Mismatch(f"{spec_name}.{f.name} v{version}: array in one, not in the other")
        if isinstance(cls, (PrimitiveField, PrimitiveTupleField)) and f.type == "array" and kind == "struct":
            raise Mismatch(f"{spec_name}.{f.name}")
        result.append(Pair(f, k, kind, ktype))
    return tuple(result)


# ---- strategies -------------------------------------------------------------------------------------


def _leaf(kind: str, kio_kind: str, optional_in_kio: bool) -> st.SearchStrategy:
    if kio_kind == "error_code":
        return st.sampled_from(sorted(int(e) for e in KioErrorCode))
    if kio_kind == "timedelta_i32":
        return st.integers(-(2**31), 2**31 - 1)
    if kio_kind == "timedelta_i64":
        return st.integers(-(2**50), 2**50)
    if kio_kind == "datetime_i64":
        values = st.integers(0, 2**40)
        return st.just(-1) | values if optional_in_kio else values
    if kind in _INT_RANGES:
        lo, hi = _INT_RANGES[kind]
        return st.integers(lo, hi) | st.sampled_from([x for x in (lo, hi, -1, 0) if lo <= x <= hi])
    if kind == "bool":
        return st.booleans()
    if kind == "float64":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "string":
        return st.text(max_size=8) | st.text(min_size=120, max_size=140)  # one- and two-byte varints
    if kind in ("bytes", "records"):
        return st.binary(max_size=16)
    if kind == "uuid":
        return st.just(ZERO_UUID) | st.uuids()
    raise AssertionError(kind)


def strategy(spec: MessageSpec, struct: StructSpec, version: int, kio_cls: type) -> st.SearchStrategy:
    """Random valid objects of our class for ``struct`` at ``version``."""
    cls = struct_classes(spec.name)[struct.name]
    fields = {}
    for p in pairs(spec.name, struct.name, version, kio_cls):
        f = p.ours
        if f.kind == "struct":
            elem = st.deferred(
                lambda f=f, p=p: strategy(spec, f.struct, version, p.kio_type)  # type: ignore[arg-type]
            )
        else:
            elem = _leaf(f.kind, p.kio_kind, is_optional(p.kio) and f.type != "array")
        value = st.lists(elem, max_size=3) if f.type == "array" else elem
        if version in f.nullable:
            value = st.none() | value
        fields[f.attr] = value

    def build(values: dict[str, Any]) -> Any:
        obj = cls()
        for k, v in values.items():
            setattr(obj, k, v)
        return obj

    return st.fixed_dictionaries(fields).map(build)


# ---- conversion ---------------------------------------------------------------------------------------


def _to_kio_leaf(value: Any, p: Pair) -> Any:
    kind = p.kio_kind
    if kind == "error_code":
        return KioErrorCode(value)
    if kind in ("timedelta_i32", "timedelta_i64"):
        return datetime.timedelta(milliseconds=value)
    if kind == "datetime_i64":
        return None if value == -1 and is_optional(p.kio) else EPOCH + value * MS
    if kind == "uuid":
        return None if value == ZERO_UUID else value
    if kind in ("bytes", "records"):
        return bytes(value)
    return value


def to_kio(obj: Any, spec: MessageSpec, struct: StructSpec, version: int, kio_cls: type) -> Any:
    kwargs = {}
    for p in pairs(spec.name, struct.name, version, kio_cls):
        value = getattr(obj, p.ours.attr)
        if value is not None:
            if p.kio_kind == "struct":
                conv = lambda v, p=p: to_kio(v, spec, p.ours.struct, version, p.kio_type)
            else:
                conv = lambda v, p=p: _to_kio_leaf(v, p)
            value = tuple(conv(v) for v in value) if p.ours.type == "array" else conv(value)
        kwargs[p.kio.name] = value
    return kio_cls(**kwargs)


def _from_kio_leaf(value: Any, p: Pair) -> Any:
    kind = p.kio_kind
    if kind in ("timedelta_i32", "timedelta_i64"):
        return value // MS
    if kind == "datetime_i64":
        return -1 if value is None else (value - EPOCH) // MS
    if kind == "uuid":
        return ZERO_UUID if value is None else value
    if kind == "error_code" or p.ours.kind.startswith(("int", "uint")):
        return int(value)
    if kind in ("bytes", "records"):
        return bytes(value)
    return value


def from_kio(kobj: Any, spec: MessageSpec, struct: StructSpec, version: int) -> Any:
    obj = struct_classes(spec.name)[struct.name]()
    for p in pairs(spec.name, struct.name, version, type(kobj)):
        value = getattr(kobj, p.kio.name)
        scalar_null = p.ours.type != "array" and p.kio_kind in ("uuid", "datetime_i64")
        if value is not None or scalar_null:
            if p.kio_kind == "struct":
                conv = lambda v, p=p: from_kio(v, spec, p.ours.struct, version)
            else:
                conv = lambda v, p=p: _from_kio_leaf(v, p)
            value = [conv(v) for v in value] if p.ours.type == "array" else conv(value)
        setattr(obj, p.ours.attr, value)
    return obj


def kio_encode(kio_cls: type, kobj: Any) -> bytes:
    buf = io.BytesIO()
    entity_writer(kio_cls)(buf, kobj)
    return buf.getvalue()


def kio_decode(kio_cls: type, data: bytes) -> tuple[Any, int]:
    return entity_reader(kio_cls)(data, 0)


# ---- schema-driven random messages without kio (fuzzing) ---------------------------------------------


def random_message(spec: MessageSpec, struct: StructSpec, version: int, rng: Any) -> Any:
    """A random valid object for ``struct`` at ``version``, drawn with ``rng`` (a random.Random)."""
    obj = struct_classes(spec.name)[struct.name]()
    for f in present(struct, version):
        if version in f.nullable and rng.random() < 0.2:
            setattr(obj, f.attr, None)
            continue
        if f.type == "array":
            value = [_random_leaf(spec, f, version, rng) for _ in range(rng.randrange(3))]
        else:
            value = _random_leaf(spec, f, version, rng)
        setattr(obj, f.attr, value)
    return obj


def _random_leaf(spec: MessageSpec, f: FieldSpec, version: int, rng: Any) -> Any:
    kind = f.kind
    if kind == "struct":
        return random_message(spec, f.struct, version, rng)  # type: ignore[arg-type]
    if kind in _INT_RANGES:
        lo, hi = _INT_RANGES[kind]
        return rng.randint(lo, hi)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "float64":
        return rng.uniform(-1e9, 1e9)
    if kind == "string":
        return "".join(rng.choice("abcé€😀") for _ in range(rng.randrange(6)))
    if kind in ("bytes", "records"):
        return rng.randbytes(rng.randrange(12))
    if kind == "uuid":
        return ZERO_UUID if rng.random() < 0.3 else uuid.UUID(int=rng.getrandbits(128))
    raise AssertionError(kind)
