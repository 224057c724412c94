"""Property tests against kio, an independently written codec generated from the same schemas.

For every request and response schema and every valid version: random valid messages encoded by us
decode with kio to the same values, encode with kio to the same bytes, and kio's bytes decode with us
to the same message.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from moldau.protocol.api import decode_message, encode_message
from moldau.protocol.schema import all_specs
from tests.protocol.protocol_oracle import (
    Mismatch,
    from_kio,
    kio_class,
    kio_decode,
    kio_encode,
    strategy,
    to_kio,
)

PAIRS = [
    (spec.name, version)
    for spec in all_specs().values()
    if spec.kind in ("request", "response", "header", "data")
    for version in spec.valid
]


def _settings():  # type: ignore[no-untyped-def]
    return settings(
        max_examples=6,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.mark.parametrize(("name", "version"), PAIRS, ids=[f"{n}-v{v}" for n, v in PAIRS])
def test_round_trip_against_kio(name: str, version: int) -> None:
    spec = all_specs()[name]
    try:
        kio_cls = kio_class(spec, version)
        messages = strategy(spec, spec.root, version, kio_cls)
    except Mismatch as e:
        pytest.fail(f"kio disagrees with the schema: {e}")

    @_settings()
    @given(messages)
    def check(message: object) -> None:
        ours = encode_message(name, version, message)
        kobj = to_kio(message, spec, spec.root, version, kio_cls)
        decoded_by_kio, size = kio_decode(kio_cls, ours)
        assert size == len(ours)
        assert from_kio(decoded_by_kio, spec, spec.root, version) == message
        theirs = kio_encode(kio_cls, kobj)
        assert theirs == ours
        decoded, end = decode_message(name, version, theirs)
        assert end == len(theirs)
        assert decoded == message

    check()
