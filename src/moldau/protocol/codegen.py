"""Generate, compile and cache a specialised decoder and encoder per (message, version).

The generated code is straight-line Python: consecutive fixed-width fields are read and written by one
precompiled ``struct.Struct``, flexible-version lengths take a one-byte fast path, and a field outside
the version is neither read nor written (decoding gives it its default). Print the code with::

    python -m moldau.protocol.codegen --dump Produce 9

Generated decoders are ``f(mv: memoryview, pos: int) -> (message, new_pos)``; encoders are
``f(message, out: bytearray, parts: list | None) -> None`` (see ``primitives.write_records`` for parts).

Encoding a field in a version that lacks it is silently skipped, whatever its value. Kafka raises
UnsupportedVersionException for a non-ignorable field that differs from its default; a broker only
encodes responses it built for that version, so the check would cost time on every response for nothing.
"""

from __future__ import annotations

import argparse
import functools
import struct
import uuid
from collections.abc import Callable
from typing import Any

from moldau.protocol import primitives
from moldau.protocol.classes import struct_classes
from moldau.protocol.errors import DecodeError, UnsupportedVersionError
from moldau.protocol.gen_decode import DecoderGenerator
from moldau.protocol.gen_encode import EncoderGenerator
from moldau.protocol.gen_source import StructGenerator
from moldau.protocol.schema import ZERO_UUID, MessageSpec, all_specs, message_spec

_ZERO_BYTES = bytes(16)


def _make_uuid(raw: bytes) -> uuid.UUID:
    return ZERO_UUID if raw == _ZERO_BYTES else uuid.UUID(bytes=raw)


def _null_error(where: str) -> DecodeError:
    return DecodeError(f"{where} is null, but it is not nullable in this version")


def _count_error(where: str, count: int, left: int) -> DecodeError:
    return DecodeError(f"{where} has {count} elements, but only {left} bytes are left")


def _overrun_error(tag: int) -> DecodeError:
    return DecodeError(f"tagged field {tag} is longer than its declared size")


_RUNTIME: dict[str, Any] = {
    "_new": object.__new__,
    "_uuid": _make_uuid,
    "_ruv": primitives.read_uvarint,
    "_wuv": primitives.encode_uvarint,
    "_skip_section": primitives.skip_tagged_section,
    "_trunc": primitives.truncated,
    "_null": _null_error,
    "_count": _count_error,
    "_overrun": _overrun_error,
    "_records": primitives.write_records,
    "_pack": struct.pack,
    "_unpack_from": struct.unpack_from,
    "ZERO_UUID": ZERO_UUID,
}


def _namespace(spec: MessageSpec) -> dict[str, Any]:
    ns = dict(_RUNTIME)
    ns["_Struct"] = struct.Struct
    for name, cls in struct_classes(spec.name).items():
        ns[f"C_{name}"] = cls
    return ns


def _compile(name: str, version: int, generator: type[StructGenerator]) -> Callable:
    try:
        spec = message_spec(name)
    except KeyError:
        raise UnsupportedVersionError(f"there is no message schema named {name!r}") from None
    if version not in spec.valid:
        raise UnsupportedVersionError(
            f"{name} has no version {version}; valid versions are {spec.valid.lo}-{spec.valid.hi}"
        )
    gen = generator(spec, version)
    source = gen.source()
    ns = _namespace(spec)
    exec(compile(source, f"<{gen.prefix}{name}v{version}>", "exec"), ns)  # noqa: S102  (our generated code)
    return ns[f"{gen.prefix}{spec.name}"]


@functools.cache
def decoder(name: str, version: int) -> Callable[[memoryview, int], tuple[Any, int]]:
    """The decoder of message ``name`` at ``version``, compiled on first use."""
    return _compile(name, version, DecoderGenerator)


@functools.cache
def encoder(name: str, version: int) -> Callable[[Any, bytearray, list | None], None]:
    """The encoder of message ``name`` at ``version``, compiled on first use."""
    return _compile(name, version, EncoderGenerator)


def generated_source(name: str, version: int) -> str:
    """The decoder and encoder source of one (message, version), for reading and debugging."""
    spec = message_spec(name)
    return "\n".join(
        [
            f"# ---- decode {name} v{version}",
            DecoderGenerator(spec, version).source(),
            f"# ---- encode {name} v{version}",
            EncoderGenerator(spec, version).source(),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m moldau.protocol.codegen", description="Print the generated codec of a message."
    )
    parser.add_argument(
        "--dump",
        nargs=2,
        metavar=("NAME", "VERSION"),
        required=True,
        help="message name (ProduceRequest) or API name (Produce: request and response)",
    )
    args = parser.parse_args(argv)
    name, version = args.dump[0], int(args.dump[1])
    specs = all_specs()
    names = [name] if name in specs else [n for n in (name + "Request", name + "Response") if n in specs]
    if not names:
        parser.error(f"no schema named {name!r} or {name!r}Request/Response")
    for n in names:
        print(generated_source(n, version))


if __name__ == "__main__":
    main()
