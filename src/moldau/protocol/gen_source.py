"""The building blocks shared by the decoder and encoder generators (see ``codegen.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from moldau.protocol.schema import FIXED_FORMATS, ZERO_UUID, FieldSpec, MessageSpec, StructSpec

_NAME_CODES = str.maketrans({"?": "o", "x": "x"})


def default_source(f: FieldSpec, struct_prefix: str = "C_") -> str:
    """A Python expression for a field's default; a struct default is ``<struct_prefix><Struct>()``.

    The codecs' namespaces name each struct class ``C_<Struct>``; the message modules write
    ``<Message>.<Struct>``.
    """
    if f.default_is_null:
        return "None"
    if f.type == "array":
        return "[]"
    if f.struct is not None:
        return f"{struct_prefix}{f.struct.name}()"
    if f.default == ZERO_UUID:
        return "ZERO_UUID"
    return repr(f.default)


def needs_fresh(f: FieldSpec) -> bool:
    """Whether a field's default is a new object per instance (a list or a struct)."""
    return not f.default_is_null and f.type in ("array", "struct")


class Source:
    """Indented source lines, unique temporaries and the module's precompiled formats."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 1
        self.counter = 0
        self.formats: dict[str, str] = {}

    def __call__(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self(header)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def tmp(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def fmt(self, codes: str) -> str:
        name = "_F_" + codes.replace("16s", "u").translate(_NAME_CODES)
        self.formats[name] = codes
        return name


class StructGenerator:
    """The shared walk over the structs of one (message, version)."""

    prefix = ""

    def __init__(self, spec: MessageSpec, version: int) -> None:
        self.spec = spec
        self.version = version
        self.flexible = version in spec.flexible
        self.src = Source()
        self.queue: list[StructSpec] = [spec.root]
        self.seen: set[str] = set()
        self.prelude: list[str] = []

    def source(self) -> str:
        body: list[str] = []
        while self.queue:
            s = self.queue.pop(0)
            if s.name in self.seen:
                continue
            self.seen.add(s.name)
            self.src.lines = []
            self.src.depth = 0
            self.struct(s)
            body += self.src.lines + [""]
        formats = [f"{n} = _Struct('>{c}')" for n, c in sorted(self.src.formats.items())]
        return "\n".join(formats + self.prelude + [""] + body)

    def func(self, s: StructSpec) -> str:
        if s.name not in self.seen:
            self.queue.append(s)
        return f"{self.prefix}{s.name}"

    def layout(self, s: StructSpec) -> tuple[list[FieldSpec], list[FieldSpec], list[FieldSpec]]:
        """(positional fields, tagged fields by tag, fields absent) of ``s`` at this version."""
        v = self.version
        tagged = sorted(
            (f for f in s.fields if self.flexible and v in f.tagged),
            key=lambda f: f.tag,  # type: ignore
        )
        positional = [f for f in s.fields if v in f.versions and f not in tagged]
        absent = [f for f in s.fields if v not in f.versions and f not in tagged]
        return positional, tagged, absent

    def flex(self, f: FieldSpec) -> bool:
        return self.flexible and (f.flexible_override is None or self.version in f.flexible_override)

    def where(self, f: FieldSpec) -> str:
        return f"{self.spec.name} v{self.version} field {f.name}"

    def struct(self, s: StructSpec) -> None:
        raise NotImplementedError


def is_fixed(f: FieldSpec) -> bool:
    return f.type in FIXED_FORMATS


def fixed_runs(fields: list[FieldSpec]) -> Iterator[list[FieldSpec]]:
    """Group consecutive fixed-width fields; every other field is a group of one."""
    run: list[FieldSpec] = []
    for f in fields:
        if is_fixed(f):
            run.append(f)
            continue
        if run:
            yield run
            run = []
        yield [f]
    if run:
        yield run
