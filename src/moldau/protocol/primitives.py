"""Variable-length integers and tagged-field helpers shared by the generated codecs.

Unsigned varints (KIP-482: lengths, counts and tags of flexible versions) are protobuf's 7-bit groups,
least significant first. Signed varints/varlongs (record batches) zigzag first.

>>> encode_uvarint(300)
b'\\xac\\x02'
>>> read_uvarint(b"\\xac\\x02", 0)
(300, 2)
"""

from __future__ import annotations

import struct

from moldau.protocol.errors import DecodeError, EncodeError

Buffer = bytes | bytearray | memoryview

_ONE_BYTE = [bytes((i,)) for i in range(128)]


def encode_uvarint(value: int) -> bytes:
    """Encode a non-negative int (at most 2**32 - 1, as Kafka's int-based readers require)."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if value < 0 or value > 0xFFFFFFFF:
        raise EncodeError(f"unsigned varint {value} is outside 0..2**32-1")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_uvarint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Read an unsigned varint at ``pos``; return (value, position after it).

    Like Kafka's ``ByteUtils.readUnsignedVarint`` it accepts at most 5 bytes. Unrolled: lengths and
    counts of a few KiB take two or three bytes and sit on the hot path.
    """
    try:
        b = buf[pos]
        if b < 0x80:
            return b, pos + 1
        value = b & 0x7F
        b = buf[pos + 1]
        if b < 0x80:
            return value | b << 7, pos + 2
        value |= (b & 0x7F) << 7
        b = buf[pos + 2]
        if b < 0x80:
            return value | b << 14, pos + 3
        value |= (b & 0x7F) << 14
        b = buf[pos + 3]
        if b < 0x80:
            return value | b << 21, pos + 4
        value |= (b & 0x7F) << 21
        b = buf[pos + 4]
        if b < 0x80:
            return value | b << 28, pos + 5
    except IndexError:
        raise DecodeError(f"input ends inside the unsigned varint at byte {pos}") from None
    raise DecodeError(f"unsigned varint at byte {pos} is longer than 5 bytes")


def _read_zigzag(buf: Buffer, pos: int, max_bytes: int) -> tuple[int, int]:
    """The one zigzag varint reader (Kafka's ``ByteUtils.readVarint``/``readVarlong``): record batches,
    the produce validator and the log cleaner all read through it. A one-byte fast path: most record
    fields (deltas, lengths of small keys) take one byte."""
    try:
        b = buf[pos]
        if b < 0x80:
            return (b >> 1) ^ -(b & 1), pos + 1
        result = b & 0x7F
        shift = 7
        end = pos + max_bytes
        pos += 1
        while pos < end:
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return (result >> 1) ^ -(result & 1), pos
            shift += 7
    except IndexError:
        raise DecodeError(f"input ends inside a varint at byte {pos}") from None
    raise DecodeError(f"varint ending at byte {pos} is longer than {max_bytes} bytes")


def read_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Read a zigzag varint (a Java int, at most 5 bytes)."""
    return _read_zigzag(buf, pos, 5)


def read_varlong(buf: Buffer, pos: int) -> tuple[int, int]:
    """Read a zigzag varlong (a Java long, at most 10 bytes)."""
    return _read_zigzag(buf, pos, 10)


def encode_varint(value: int) -> bytes:
    """Zigzag-encode a signed 32-bit int."""
    if not -0x80000000 <= value <= 0x7FFFFFFF:
        raise EncodeError(f"varint {value} is outside the int32 range")
    return _encode_unsigned((value << 1) ^ (value >> 31))


def encode_varlong(value: int) -> bytes:
    """Zigzag-encode a signed 64-bit long."""
    if not -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
        raise EncodeError(f"varlong {value} is outside the int64 range")
    return _encode_unsigned((value << 1) ^ (value >> 63))


def _encode_unsigned(value: int) -> bytes:
    if value < 0x80:
        return _ONE_BYTE[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def skip_tagged_fields(buf: Buffer, pos: int, count: int) -> int:
    """Skip ``count`` tagged fields (tag, size, bytes) starting at ``pos``; return the position after."""
    end = len(buf)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
        if pos > end:
            raise DecodeError(f"tagged field of {size} bytes runs past the end of the input ({end} bytes)")
    return pos


def skip_tagged_section(buf: Buffer, pos: int) -> int:
    """Skip a whole tagged-field section (count, then fields) at ``pos``; return the position after."""
    count, pos = read_uvarint(buf, pos)
    return skip_tagged_fields(buf, pos, count)


def read_tagged_fields(buf: Buffer, pos: int) -> tuple[dict[int, memoryview], int]:
    """Read a whole tagged-field section into ``{tag: raw value bytes}`` (for headers and tests)."""
    count, pos = read_uvarint(buf, pos)
    fields = {}
    view = memoryview(buf)
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        if pos + size > len(buf):
            raise DecodeError(f"tagged field {tag} of {size} bytes runs past the end of the input")
        fields[tag] = view[pos : pos + size]
        pos += size
    return fields, pos


def truncated(pos: int, need: int, have: int) -> DecodeError:
    """The error for a value of ``need`` bytes at ``pos`` in an input of ``have`` bytes."""
    return DecodeError(f"value of {need} bytes at byte {pos} runs past the end of the input ({have} bytes)")


# Shared precompiled formats for the generated code.
INT8 = struct.Struct(">b")
INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")


def _part_size(part: object) -> int:
    if isinstance(part, (bytes, bytearray)):
        return len(part)
    if isinstance(part, memoryview):
        return part.nbytes
    size = getattr(part, "size", None)
    if size.__class__ is not int or size < 0:  # type: ignore[operator]
        raise EncodeError(f"records value {part!r} is neither bytes nor an object with an integer size >= 0")
    return size  # type: ignore[return-value]


def write_records(b: bytearray, parts: list | None, value: object, flexible: bool, nullable: bool) -> None:
    """Write a ``records`` field: None, bytes-like, a file region (anything with an int ``size``), or a
    list/tuple of those. Regions are not copied: the bytes so far go to ``parts``, then the region."""
    if value is None:
        if not nullable:
            raise EncodeError("a records field is null in a version where it is not nullable")
        b += b"\x00" if flexible else b"\xff\xff\xff\xff"
        return
    chunks = value if value.__class__ is list or value.__class__ is tuple else (value,)
    size = _part_size(chunks[0]) if len(chunks) == 1 else sum(map(_part_size, chunks))  # type: ignore[arg-type]
    if flexible:
        size += 1
        if size < 0x80:
            b.append(size)
        else:
            b += encode_uvarint(size)
    else:
        b += INT32.pack(size)
    for part in chunks:  # type: ignore[union-attr]
        if isinstance(part, (bytes, bytearray, memoryview)):
            b += part
            continue
        if parts is None:
            raise EncodeError("file regions can only be sent in a response frame (encode_response)")
        if b:
            parts.append(bytes(b))
            b.clear()
        parts.append(part)
