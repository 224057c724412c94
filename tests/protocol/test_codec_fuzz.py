"""Malformed input never escapes as anything but DecodeError (or UnsupportedVersionError).

For every (message, version): a valid encoding is truncated at every length, has random bytes
overwritten and inserted, and is replaced by random bytes; decoding must succeed or raise DecodeError.
"""

from __future__ import annotations

import random

import pytest

from moldau.protocol import api
from moldau.protocol.errors import DecodeError, UnsupportedVersionError
from moldau.protocol.schema import all_specs
from tests.protocol.protocol_oracle import random_message

PAIRS = [
    (spec.name, version)
    for spec in all_specs().values()
    if spec.kind in ("request", "response")
    for version in spec.valid
]


def mutations(data: bytes, rng: random.Random) -> list[bytes]:
    out = (
        [data[:n] for n in range(len(data))]
        if len(data) < 200
        else [data[: rng.randrange(len(data))] for _ in range(60)]
    )
    for _ in range(40):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            if b:
                b[rng.randrange(len(b))] = rng.choice((0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        out.append(bytes(b))
    for _ in range(10):
        at = rng.randrange(len(data) + 1)
        out.append(data[:at] + rng.randbytes(rng.randint(1, 8)) + data[at:])
    out += [rng.randbytes(rng.randrange(64)) for _ in range(10)]
    out += [b"\xff" * 64, b"\x80" * 64, b"\x7f\xff\xff\xff" * 16]
    return out


@pytest.mark.parametrize(("name", "version"), PAIRS, ids=[f"{n}-v{v}" for n, v in PAIRS])
def test_malformed_bodies_raise_only_decode_error(name: str, version: int) -> None:
    rng = random.Random(f"{name}{version}")
    spec = all_specs()[name]
    valid = api.encode_message(name, version, random_message(spec, spec.root, version, rng))
    for data in mutations(valid, rng):
        try:
            if spec.kind == "request":
                api.decode_request(spec.api_key, version, data, 0)  # type: ignore[arg-type]
            else:
                api.decode_message(name, version, data)
        except DecodeError:
            pass


def test_malformed_frames_raise_only_protocol_errors() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        frame = rng.randbytes(rng.randrange(40))
        if len(frame) >= 4 and rng.random() < 0.8:  # mostly known keys and versions, to reach the bodies
            key = rng.choice(list(api.APIS))
            frame = key.to_bytes(2, "big") + rng.randrange(20).to_bytes(2, "big") + frame[4:]
        try:
            header, offset = api.decode_request_header(frame)
            api.decode_request(header.api_key, header.api_version, frame, offset)
        except (DecodeError, UnsupportedVersionError):
            pass
