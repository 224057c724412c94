"""Generate the decoder of one (message, version): ``_d_<Struct>(mv, pos) -> (object, new_pos)``."""

from __future__ import annotations

import struct

from moldau.protocol.gen_source import StructGenerator, default_source, fixed_runs, is_fixed
from moldau.protocol.schema import FIXED_FORMATS, FieldSpec, StructSpec


class DecoderGenerator(StructGenerator):
    prefix = "_d_"

    def struct(self, s: StructSpec) -> None:
        w = self.src
        positional, tagged, absent = self.layout(s)
        with w.block(f"def {self.func(s)}(mv, pos):"):
            w(f"o = _new(C_{s.name})")
            for f in absent + tagged:
                w(f"o.{f.attr} = {default_source(f)}")
            for run in fixed_runs(positional):
                if is_fixed(run[0]):
                    self.fixed_run(run)
                else:
                    self.value(run[0], f"o.{run[0].attr}")
            if self.flexible:
                self.tag_section(tagged)
            w("return o, pos")

    def fixed_run(self, run: list[FieldSpec]) -> None:
        w = self.src
        codes = "".join(FIXED_FORMATS[f.type] for f in run)
        targets = []
        uuids = []
        for f in run:
            if f.type == "uuid":
                t = w.tmp("_u")
                uuids.append((f, t))
                targets.append(t)
            else:
                targets.append(f"o.{f.attr}")
        w(f"({', '.join(targets)},) = {w.fmt(codes)}.unpack_from(mv, pos)")
        w(f"pos += {struct.calcsize('>' + codes)}")
        for f, t in uuids:
            w(f"o.{f.attr} = _uuid({t})")

    def length(self, n: str, flex: bool, width: str) -> None:
        """Set ``n`` to a length/count, negative for null."""
        w = self.src
        if flex:
            w(f"{n} = mv[pos]")
            w("pos += 1")
            w(f"if {n} > 127: {n}, pos = _ruv(mv, pos - 1)")
            w(f"{n} -= 1")
        else:
            w(f"({n},) = {w.fmt(width)}.unpack_from(mv, pos)")
            w(f"pos += {struct.calcsize('>' + width)}")

    def null(self, f: FieldSpec, target: str) -> None:
        if self.version in f.nullable:
            self.src(f"{target} = None")
        else:
            self.src(f"raise _null({self.where(f)!r})")

    def value(self, f: FieldSpec, target: str) -> None:
        w = self.src
        if f.type != "array":
            self.scalar(f.type, f, target, nullable=self.version in f.nullable)
            return
        n = w.tmp("_n")
        self.length(n, self.flex(f), "i")
        with w.block(f"if {n} < 0:"):
            self.null(f, target)
        with w.block("else:"):
            w(f"if {n} > len(mv) - pos: raise _count({self.where(f)!r}, {n}, len(mv) - pos)")
            kind = f.kind
            if kind in FIXED_FORMATS and kind != "uuid":
                code = FIXED_FORMATS[kind]
                w(f"{target} = list(_unpack_from('>%d{code}' % {n}, mv, pos))")
                w(f"pos += {n} * {struct.calcsize(code)}")
                return
            lst, elem = w.tmp("_l"), w.tmp("_e")
            w(f"{lst} = []")
            with w.block(f"for _ in range({n}):"):
                self.scalar(kind, f, elem, nullable=False)
                w(f"{lst}.append({elem})")
            w(f"{target} = {lst}")

    def scalar(self, kind: str, f: FieldSpec, target: str, nullable: bool) -> None:
        w = self.src
        if kind in FIXED_FORMATS:
            code = FIXED_FORMATS[kind]
            if kind == "uuid":
                t = w.tmp("_u")
                w(f"({t},) = {w.fmt(code)}.unpack_from(mv, pos)")
                w(f"{target} = _uuid({t})")
            else:
                w(f"({target},) = {w.fmt(code)}.unpack_from(mv, pos)")
            w(f"pos += {struct.calcsize('>' + code)}")
        elif kind == "struct":
            fn = self.func(f.struct)  # type: ignore[arg-type]
            if nullable:
                m = w.tmp("_m")
                w(f"({m},) = {w.fmt('b')}.unpack_from(mv, pos)")
                w("pos += 1")
                with w.block(f"if {m} < 0:"):
                    w(f"{target} = None")
                with w.block("else:"):
                    w(f"{target}, pos = {fn}(mv, pos)")
            else:
                w(f"{target}, pos = {fn}(mv, pos)")
        else:
            n, end = w.tmp("_n"), w.tmp("_end")
            self.length(n, self.flex(f), "h" if kind == "string" else "i")
            with w.block(f"if {n} < 0:"):
                if nullable:
                    w(f"{target} = None")
                else:
                    w(f"raise _null({self.where(f)!r})")
            with w.block("else:"):
                w(f"{end} = pos + {n}")
                w(f"if {end} > len(mv): raise _trunc(pos, {n}, len(mv))")
                if kind == "string":
                    # Java's String(bytes, UTF_8) replaces malformed input rather than failing.
                    w(f"{target} = mv[pos:{end}].tobytes().decode('utf-8', 'replace')")
                elif kind == "records" or f.zero_copy:
                    w(f"{target} = mv[pos:{end}]")
                else:
                    w(f"{target} = bytes(mv[pos:{end}])")
                w(f"pos = {end}")

    def tag_section(self, tagged: list[FieldSpec]) -> None:
        w = self.src
        if not tagged:
            w("if mv[pos]: pos = _skip_section(mv, pos)")
            w("else: pos += 1")
            return
        n = w.tmp("_n")
        with w.block("if mv[pos] == 0:"):
            w("pos += 1")
        with w.block("else:"):
            w(f"{n}, pos = _ruv(mv, pos)")
            with w.block(f"for _ in range({n}):"):
                w("_tag, pos = _ruv(mv, pos)")
                w("_size, pos = _ruv(mv, pos)")
                w("_end = pos + _size")
                w("if _end > len(mv): raise _trunc(pos, _size, len(mv))")
                for i, f in enumerate(tagged):
                    with w.block(f"{'if' if i == 0 else 'elif'} _tag == {f.tag}:"):
                        self.value(f, f"o.{f.attr}")
                        w(f"if pos > _end: raise _overrun({f.tag})")
                w("pos = _end")
