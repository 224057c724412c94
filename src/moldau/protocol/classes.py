"""Generate one Python class per schema struct: ``__slots__``, keyword ``__init__``, ``__repr__``, ``__eq__``.

A class holds the union of the fields of every version; the codec for a version reads and writes only
that version's fields and gives the others their defaults. Nested structs are attributes of their
message class (``ProduceResponse.TopicProduceResponse``), as are the file's ``commonStructs``.
"""

from __future__ import annotations

import functools
from typing import Any

from moldau.protocol.schema import ZERO_UUID, FieldSpec, MessageSpec, StructSpec, all_specs

MODULE = "moldau.protocol.messages"


class _Missing:
    """Marks an ``__init__`` argument the caller left out, for defaults that must be new objects."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<default>"


MISSING: Any = _Missing()


def default_source(f: FieldSpec) -> str:
    """A Python expression for a field's default, valid in the generated modules' namespaces."""
    if f.default_is_null:
        return "None"
    if f.type == "array":
        return "[]"
    if f.type == "struct":
        return f"C_{f.struct.name}()"  # type: ignore[union-attr]
    if f.default == ZERO_UUID:
        return "ZERO_UUID"
    return repr(f.default)


def _needs_fresh(f: FieldSpec) -> bool:
    return not f.default_is_null and f.type in ("array", "struct")


def _class_source(struct: StructSpec, qualname: str) -> list[str]:
    fields = struct.fields
    lines = [f"class {struct.name}:"]
    lines.append(f"    __slots__ = {tuple(f.attr for f in fields)!r}")
    lines.append(f"    __qualname__ = {qualname!r}")
    lines.append(f"    __module__ = {MODULE!r}")
    if fields:
        params = ", ".join(
            f"{f.attr}=MISSING" if _needs_fresh(f) else f"{f.attr}={default_source(f)}" for f in fields
        )
        lines.append(f"    def __init__(self, *, {params}):")
        for f in fields:
            if _needs_fresh(f):
                lines.append(
                    f"        self.{f.attr} = {default_source(f)} if {f.attr} is MISSING else {f.attr}"
                )
            else:
                lines.append(f"        self.{f.attr} = {f.attr}")
    parts = ", ".join(f"{f.attr}={{self.{f.attr}!r}}" for f in fields)
    lines.append("    def __repr__(self):")
    lines.append(f"        return f'{struct.name}({parts})'")
    lines.append("    def __eq__(self, other):")
    lines.append("        if other.__class__ is not self.__class__:")
    lines.append("            return NotImplemented")
    cmp = " and ".join(f"self.{f.attr} == other.{f.attr}" for f in fields) or "True"
    lines.append(f"        return {cmp}")
    lines.append("    __hash__ = None")
    return lines


def _ordered_structs(spec: MessageSpec) -> list[StructSpec]:
    """Nested structs, each after the structs its defaults construct."""
    done: dict[str, StructSpec] = {}

    def visit(s: StructSpec) -> None:
        for f in s.fields:
            if f.struct is not None and f.struct.name not in done:
                visit(f.struct)
        done.setdefault(s.name, s)

    for s in spec.structs.values():
        visit(s)
    return list(done.values())


@functools.cache
def message_class(name: str) -> type:
    """The class of schema ``name`` (``ProduceRequest``), with its nested struct classes attached."""
    spec = all_specs()[name]
    nested = _ordered_structs(spec)
    src: list[str] = []
    for s in nested:
        src += _class_source(s, f"{spec.name}.{s.name}")
        src.append(f"C_{s.name} = {s.name}")
    src += _class_source(spec.root, spec.name)
    namespace: dict[str, Any] = {"MISSING": MISSING, "ZERO_UUID": ZERO_UUID, "__name__": MODULE}
    exec(compile("\n".join(src), f"<moldau.protocol.messages.{name}>", "exec"), namespace)  # noqa: S102
    root = namespace[spec.name]
    if spec.root.name in spec.structs:
        raise ValueError(f"{name}: a nested struct has the message's own name")
    for s in nested:
        setattr(root, s.name, namespace[s.name])
    return root


def struct_classes(name: str) -> dict[str, type]:
    """Every class of schema ``name`` by struct name, the message's own class included."""
    root = message_class(name)
    spec = all_specs()[name]
    classes = {s: getattr(root, s) for s in spec.structs}
    classes[spec.name] = root
    return classes
