"""Error codes match Kafka's Errors.java."""

from __future__ import annotations

from kio.schema.errors import ErrorCode as KioErrorCode

from moldau.errors import MoldauError
from moldau.protocol.errors import DecodeError, EncodeError, ErrorCode, ProtocolError, UnsupportedVersionError


def test_well_known_codes() -> None:
    assert ErrorCode.NONE == 0
    assert ErrorCode.UNKNOWN_SERVER_ERROR == -1
    assert ErrorCode.OFFSET_OUT_OF_RANGE == 1
    assert ErrorCode.CORRUPT_MESSAGE == 2
    assert ErrorCode.UNKNOWN_TOPIC_OR_PARTITION == 3
    assert ErrorCode.NOT_LEADER_OR_FOLLOWER == 6
    assert ErrorCode.UNSUPPORTED_VERSION == 35
    assert ErrorCode.INVALID_REQUEST == 42
    assert ErrorCode.UNKNOWN_TOPIC_ID == 100
    assert ErrorCode.INCONSISTENT_TOPIC_ID == 103
    assert ErrorCode.SHARE_SESSION_LIMIT_REACHED == 133


def test_codes_are_unique_and_contiguous() -> None:
    values = sorted(e.value for e in ErrorCode)
    assert values == list(range(-1, len(values) - 1))


def test_codes_agree_with_an_independent_list() -> None:
    """kio's table is generated from Kafka's protocol docs: every code it has, we have by the same name."""
    for code in KioErrorCode:
        assert ErrorCode(int(code)).name == code.name.upper()


def test_exception_hierarchy() -> None:
    for exc in (DecodeError, EncodeError, UnsupportedVersionError):
        assert issubclass(exc, ProtocolError)
    assert issubclass(ProtocolError, MoldauError)
