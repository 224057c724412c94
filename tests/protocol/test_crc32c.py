"""CRC-32C of buffer slices: the direct path (no copy, big slices) agrees with google_crc32c on every
kind of buffer the broker hands it."""

from __future__ import annotations

import os

import google_crc32c
import pytest

from moldau.protocol import crc32c as module
from moldau.protocol.crc32c import DIRECT_ABOVE, crc32c


@pytest.mark.parametrize("size", [0, 1, 100, DIRECT_ABOVE + 1, 1_000_000])
def test_every_buffer_kind_and_offset_gives_google_crc32cs_value(size: int) -> None:
    data = os.urandom(size + 40)
    expected = google_crc32c.value(data[21 : 21 + size])
    for buf in (data, bytearray(data), memoryview(data), memoryview(bytearray(data))):
        assert crc32c(buf, 21, 21 + size) == expected
    # A view that starts inside its buffer (a batch in a request frame).
    assert crc32c(memoryview(bytearray(data))[7:], 14, 14 + size) == expected


def test_the_library_behind_google_crc32c_is_found() -> None:
    # The direct path is what saves the copy; if the wheel's layout changed, this says so.
    assert module._extend is not None
