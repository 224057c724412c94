"""Request and response framing: headers, version checks, and the generated body codecs.

The broker's side::

    header, body_at = decode_request_header(frame)        # frame: the bytes after the size prefix
    request = decode_request(header.api_key, header.api_version, frame, body_at)
    ...
    chunks = encode_response(header.api_key, header.api_version, header.correlation_id, response)
    transport.writelines(chunks)                          # bytes, plus file regions for sendfile

Header rules (Kafka's ``ApiMessageType.requestHeaderVersion``/``responseHeaderVersion``): a request uses
header v2 (v1 plus tagged fields) in its flexible versions, v1 otherwise; ``client_id`` keeps its int16
length in both. A response uses header v1 in its flexible versions, v0 otherwise, except ApiVersions,
whose response header is always v0 so that a client can read the correlation id of a version it does not
understand (KIP-511).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from moldau.protocol.errors import DecodeError, EncodeError, UnsupportedVersionError
from moldau.protocol.messages import _apis
from moldau.protocol.primitives import read_uvarint, skip_tagged_fields

API_VERSIONS_KEY = 18

_REQUEST_HEADER = struct.Struct(">hhih")  # api_key, api_version, correlation_id, client_id length
_SIZE = struct.Struct(">i")
_SIZE_AND_CORRELATION = struct.Struct(">ii")
_SIZE_CORRELATION_TAGS = struct.Struct(">iix")  # header v1: the pad byte is the empty tagged section
_CORRELATION = struct.Struct(">i")
# Errors a malformed input can raise from inside generated code, re-raised as DecodeError.
_DECODE_FAILURES = (struct.error, IndexError, ValueError, TypeError, OverflowError, MemoryError)
_ENCODE_FAILURES = (struct.error, AttributeError, TypeError, ValueError, OverflowError)


@dataclass(slots=True, frozen=True)
class ApiSpec:
    """What the schemas say about one API key."""

    api_key: int
    name: str  # "Produce"
    min_version: int
    max_version: int
    request_flexible_min: int | None
    response_flexible_min: int | None
    listeners: tuple[str, ...]
    latest_version_unstable: bool


@dataclass(slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def _build_apis() -> dict[int, ApiSpec]:
    # From the table generated out of the schemas (messages/_apis.py), not the schemas themselves: reading
    # every JSON file took ~90 ms of each broker start (issue 9).
    return {
        api_key: ApiSpec(api_key, name, lo, hi, req_flex, resp_flex, listeners, unstable)
        for api_key, (name, lo, hi, req_flex, resp_flex, listeners, unstable) in _apis.APIS.items()
    }


#: Every live API (validVersions not "none") by key.
APIS: dict[int, ApiSpec] = _build_apis()


def _codegen() -> ModuleType:
    # Imported on the first request, not at startup: the generator and the schemas it reads cost ~30 ms
    # (issue 9: startup time), and a codec is compiled only for a (message, version) in use anyway.
    from moldau.protocol import codegen

    return codegen


def _api(api_key: int, api_version: int) -> ApiSpec:
    api = APIS.get(api_key)
    if api is None:
        raise UnsupportedVersionError(f"unknown API key {api_key}")
    if not api.min_version <= api_version <= api.max_version:
        raise UnsupportedVersionError(
            f"{api.name} (API key {api_key}) version {api_version} is not supported; "
            f"supported versions are {api.min_version}-{api.max_version}"
        )
    return api


_REQUEST_FLEXIBLE_MIN = {
    k: a.request_flexible_min for k, a in APIS.items() if a.request_flexible_min is not None
}


def _request_header_is_flexible(api_key: int, api_version: int) -> bool:
    return api_version >= _REQUEST_FLEXIBLE_MIN.get(api_key, 0x10000)


def _response_header_is_flexible(api: ApiSpec, api_version: int) -> bool:
    if api.api_key == API_VERSIONS_KEY:
        return False
    return api.response_flexible_min is not None and api_version >= api.response_flexible_min


def decode_request_header(buf: bytes | bytearray | memoryview) -> tuple[RequestHeader, int]:
    """Parse the request header of one frame (without its size prefix); return it and the body offset.

    Works for unknown API keys and versions too (as header v1, or v2 for a version in the API's flexible
    range, which includes an ApiVersions v3+ newer than ours), so the caller can answer or close.
    """
    try:
        api_key, api_version, correlation_id, n = _REQUEST_HEADER.unpack_from(buf, 0)
    except struct.error:
        raise DecodeError(f"request header needs at least 10 bytes, the frame has {len(buf)}") from None
    pos = 10
    if n < 0:
        client_id = None
    else:
        pos += n
        if pos > len(buf):
            raise DecodeError(f"client_id of {n} bytes runs past the end of the {len(buf)}-byte frame")
        raw = buf[10:pos]
        client_id = (raw.tobytes() if type(raw) is memoryview else raw).decode("utf-8", "replace")
    if api_version >= _REQUEST_FLEXIBLE_MIN.get(api_key, 0x10000):
        count, pos = read_uvarint(buf, pos)
        if count:
            pos = skip_tagged_fields(buf, pos, count)
    return RequestHeader(api_key, api_version, correlation_id, client_id), pos


def _decode(name: str, version: int, buf: Any, offset: int, decode: Any = None) -> tuple[Any, int]:
    if decode is None:
        decode = _codegen().decoder(name, version)
    mv = buf if type(buf) is memoryview else memoryview(buf)
    try:
        return decode(mv, offset)
    except DecodeError:
        raise
    except _DECODE_FAILURES as e:
        raise DecodeError(f"malformed {name} v{version}: {e}") from e


# (api_key, version) -> codec, filled on first use: the hot path skips the version check and name lookup.
_REQUEST_DECODERS: dict[tuple[int, int], Any] = {}
_RESPONSE_ENCODERS: dict[tuple[int, int], tuple[Any, bool]] = {}


def decode_request(api_key: int, api_version: int, buf: bytes | bytearray | memoryview, offset: int) -> Any:
    """Decode the body of a request that starts at ``offset`` of ``buf``.

    Trailing bytes after the body are ignored, as Kafka does. ``records`` fields are memoryview slices of
    ``buf`` (no copy), so keep ``buf`` unchanged while they are in use.
    """
    decode = _REQUEST_DECODERS.get((api_key, api_version))
    if decode is None:
        api = _api(api_key, api_version)
        decode = _REQUEST_DECODERS[api_key, api_version] = _codegen().decoder(api.name + "Request", api_version)
    mv = buf if type(buf) is memoryview else memoryview(buf)
    try:
        return decode(mv, offset)[0]
    except DecodeError:
        raise
    except _DECODE_FAILURES as e:
        raise DecodeError(f"malformed {APIS[api_key].name}Request v{api_version}: {e}") from e


def _encode_body(name: str, version: int, body: Any, out: bytearray, parts: list | None) -> None:
    encode = _codegen().encoder(name, version)
    try:
        encode(body, out, parts)
    except EncodeError:
        raise
    except _ENCODE_FAILURES as e:
        raise EncodeError(f"cannot encode {type(body).__name__} as {name} v{version}: {e}") from e


def encode_response(api_key: int, api_version: int, correlation_id: int, body: Any) -> list:
    """Encode a whole response frame: size prefix, header, body.

    Returns ``[bytes]``, or, when a ``records`` field holds file regions (objects with an integer
    ``size``), bytes and regions in wire order; the size prefix counts the regions' sizes.
    """
    cached = _RESPONSE_ENCODERS.get((api_key, api_version))
    if cached is None:
        api = _api(api_key, api_version)
        encoder = _codegen().encoder(api.name + "Response", api_version)
        cached = _RESPONSE_ENCODERS[api_key, api_version] = (
            encoder,
            _response_header_is_flexible(api, api_version),
        )
    encode, flexible_header = cached
    out = bytearray(
        (_SIZE_CORRELATION_TAGS if flexible_header else _SIZE_AND_CORRELATION).pack(0, correlation_id)
    )
    parts: list = []
    try:
        encode(body, out, parts)
    except EncodeError:
        raise
    except _ENCODE_FAILURES as e:
        raise EncodeError(
            f"cannot encode {type(body).__name__} as {APIS[api_key].name}Response v{api_version}: {e}"
        ) from e
    if not parts:
        _SIZE.pack_into(out, 0, len(out) - 4)
        return [bytes(out)]
    if out:
        parts.append(bytes(out))
    size = sum(len(p) if type(p) is bytes else p.size for p in parts) - 4
    parts[0] = _SIZE.pack(size) + parts[0][4:]
    return parts


def encode_request(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None, body: Any
) -> bytes:
    """Encode a whole request frame (size prefix, header v1/v2, body), as a client would send it."""
    api = _api(api_key, api_version)
    out = bytearray(_SIZE.pack(0))
    cid = None if client_id is None else client_id.encode("utf-8")
    out += _REQUEST_HEADER.pack(api_key, api_version, correlation_id, -1 if cid is None else len(cid))
    if cid:
        out += cid
    if _request_header_is_flexible(api_key, api_version):
        out.append(0)
    _encode_body(api.name + "Request", api_version, body, out, None)
    _SIZE.pack_into(out, 0, len(out) - 4)
    return bytes(out)


def decode_response(api_key: int, api_version: int, buf: bytes | bytearray | memoryview) -> tuple[int, Any]:
    """Decode a response frame without its size prefix; return (correlation id, body)."""
    api = _api(api_key, api_version)
    try:
        (correlation_id,) = _CORRELATION.unpack_from(buf, 0)
    except struct.error:
        raise DecodeError(f"response header needs 4 bytes, the frame has {len(buf)}") from None
    pos = 4
    if _response_header_is_flexible(api, api_version):
        count, pos = read_uvarint(buf, pos)
        if count:
            pos = skip_tagged_fields(buf, pos, count)
    return correlation_id, _decode(api.name + "Response", api_version, buf, pos)[0]


def encode_message(name: str, version: int, body: Any) -> bytes:
    """Encode any schema's message alone, without framing (e.g. ``ConsumerProtocolSubscription``)."""
    out = bytearray()
    _encode_body(name, version, body, out, None)
    return bytes(out)


def decode_message(
    name: str, version: int, buf: bytes | bytearray | memoryview, offset: int = 0
) -> tuple[Any, int]:
    """Decode any schema's message at ``offset``; return it and the offset after it."""
    return _decode(name, version, buf, offset)
