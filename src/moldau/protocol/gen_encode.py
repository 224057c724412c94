"""Generate the encoder of one (message, version): ``_e_<Struct>(obj, out, parts) -> None``.

``out`` is a bytearray; ``parts`` collects the chunks before and after file regions (see
``primitives.write_records``) and is None where regions cannot go (requests, tagged values).
"""

from __future__ import annotations

import struct

from moldau.protocol.gen_source import StructGenerator, default_source, fixed_runs, is_fixed
from moldau.protocol.schema import FIXED_FORMATS, FieldSpec, StructSpec


class EncoderGenerator(StructGenerator):
    prefix = "_e_"

    def struct(self, s: StructSpec) -> None:
        w = self.src
        positional, tagged, _absent = self.layout(s)
        with w.block(f"def {self.func(s)}(o, b, parts):"):
            start = len(w.lines)
            runs = list(fixed_runs(positional))
            tags_written = False
            for i, run in enumerate(runs):
                if not is_fixed(run[0]):
                    self.value(run[0], f"o.{run[0].attr}", "b", "parts")
                    continue
                codes = "".join(FIXED_FORMATS[f.type] for f in run)
                args = [f"o.{f.attr}.bytes" if f.type == "uuid" else f"o.{f.attr}" for f in run]
                if self.flexible and not tagged and i == len(runs) - 1:
                    codes += "x"  # the pad byte is the empty tagged-field section
                    tags_written = True
                w(f"b += {w.fmt(codes)}.pack({', '.join(args)})")
            if self.flexible and not tags_written:
                self.tag_section(tagged)
            if len(w.lines) == start:
                w("pass")

    def length(self, expr: str, flex: bool, width: str, buf: str) -> None:
        w = self.src
        if flex:
            n = w.tmp("_n")
            w(f"{n} = {expr} + 1")
            w(f"if {n} < 128: {buf}.append({n})")
            w(f"else: {buf} += _wuv({n})")
        else:
            w(f"{buf} += {w.fmt(width)}.pack({expr})")

    def null(self, v: str, flex: bool, width: str, buf: str) -> None:
        """Write a null length/count, then open the ``else:`` block for the non-null value."""
        w = self.src
        minus_one = bytes([0xFF]) * struct.calcsize(width)
        w(f"if {v} is None:")
        w.depth += 1
        w(f"{buf}.append(0)" if flex else f"{buf} += {minus_one!r}")
        w.depth -= 1
        w("else:")
        w.depth += 1

    def value(self, f: FieldSpec, expr: str, buf: str, parts: str) -> None:
        w = self.src
        nullable = self.version in f.nullable
        v = w.tmp("_v")
        w(f"{v} = {expr}")
        if f.type != "array":
            self.scalar(f.type, f, v, buf, parts, nullable)
            return
        flex = self.flex(f)
        if nullable:
            self.null(v, flex, "i", buf)
        self.length(f"len({v})", flex, "i", buf)
        kind = f.kind
        if kind in FIXED_FORMATS and kind != "uuid":
            w(f"{buf} += _pack('>%d{FIXED_FORMATS[kind]}' % len({v}), *{v})")
        else:
            e = w.tmp("_e")
            with w.block(f"for {e} in {v}:"):
                self.scalar(kind, f, e, buf, parts, nullable=False)
        if nullable:
            w.depth -= 1

    def scalar(self, kind: str, f: FieldSpec, v: str, buf: str, parts: str, nullable: bool) -> None:
        w = self.src
        flex = self.flex(f)
        if kind in FIXED_FORMATS:
            arg = f"{v}.bytes" if kind == "uuid" else v
            w(f"{buf} += {w.fmt(FIXED_FORMATS[kind])}.pack({arg})")
            return
        if kind == "records":
            with w.block(f"if {v}.__class__ is bytes:"):
                self.length(f"len({v})", flex, "i", buf)
                w(f"{buf} += {v}")
            with w.block("else:"):
                w(f"_records({buf}, {parts}, {v}, {flex}, {nullable})")
            return
        if kind == "struct":
            call = f"{self.func(f.struct)}({v}, {buf}, {parts})"  # type: ignore[arg-type]
            if nullable:
                with w.block(f"if {v} is None:"):
                    w(f"{buf}.append(255)")
                with w.block("else:"):
                    w(f"{buf}.append(1)")
                    w(call)
            else:
                w(call)
            return
        width = "h" if kind == "string" else "i"
        if nullable:
            self.null(v, flex, width, buf)
        data = v
        if kind == "string":
            data = w.tmp("_s")
            w(f"{data} = {v}.encode('utf-8')")
        self.length(f"len({data})", flex, width, buf)
        w(f"{buf} += {data}")
        if nullable:
            w.depth -= 1

    def tag_section(self, tagged: list[FieldSpec]) -> None:
        w = self.src
        if not tagged:
            w("b.append(0)")
            return
        assert len(tagged) < 128, "the tag count is written as one byte"
        values = [w.tmp("_v") for _ in tagged]
        flags = [w.tmp("_w") for _ in tagged]
        for f, v, flag in zip(tagged, values, flags, strict=True):
            w(f"{v} = o.{f.attr}")
            w(f"{flag} = {self.differs(f, v)}")
        with w.block(f"if not ({' or '.join(flags)}):"):
            w("b.append(0)")
        with w.block("else:"):
            w(f"b.append({' + '.join(f'bool({flag})' for flag in flags)})")
            for f, v, flag in zip(tagged, values, flags, strict=True):
                with w.block(f"if {flag}:"):
                    w("_t = bytearray()")
                    self.value(f, v, "_t", "None")
                    w(f"b += _wuv({f.tag})")
                    w("b += _wuv(len(_t))")
                    w("b += _t")

    def struct_differs(self, struct: StructSpec, v: str) -> str:
        """Compare field by field when every field default is a literal; else use ``__eq__``."""
        simple = all(f.type in FIXED_FORMATS or f.type == "string" for f in struct.fields)
        if simple and struct.fields:
            return "(" + " or ".join(f"{v}.{f.attr} != {default_source(f)}" for f in struct.fields) + ")"
        name = f"_DEF_{struct.name}"
        line = f"{name} = C_{struct.name}()"
        if line not in self.prelude:
            self.prelude.append(line)
        return f"{v} != {name}"

    def differs(self, f: FieldSpec, v: str) -> str:
        """A condition true when ``v`` is not the field's default (KIP-482: only those are written)."""
        if f.default_is_null:
            return f"{v} is not None"
        if f.type == "array":
            test = f"len({v}) != 0"
        elif f.type == "struct":
            test = self.struct_differs(f.struct, v)  # type: ignore[arg-type]
        else:
            test = f"{v} != {default_source(f)}"
        return f"{v} is None or {test}" if not f.nullable.empty else test
