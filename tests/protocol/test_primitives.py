"""Wire primitives: varints, compact strings, tagged fields (KIP-482), nullable structs (KIP-893)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.protocol import messages as m
from moldau.protocol.api import decode_message, encode_message
from moldau.protocol.errors import DecodeError, EncodeError
from moldau.protocol.primitives import (
    encode_uvarint,
    encode_varint,
    encode_varlong,
    read_tagged_fields,
    read_uvarint,
    read_varint,
    read_varlong,
    skip_tagged_fields,
)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2**32 - 1, b"\xff\xff\xff\xff\x0f"),
    ],
)
def test_unsigned_varint_known_encodings(value: int, wire: bytes) -> None:
    assert encode_uvarint(value) == wire
    assert read_uvarint(wire + b"tail", 0) == (value, len(wire))


@settings(database=None, derandomize=True)
@given(st.integers(0, 2**32 - 1))
def test_unsigned_varint_round_trip(value: int) -> None:
    assert read_uvarint(b"x" + encode_uvarint(value), 1) == (value, 1 + len(encode_uvarint(value)))


def test_unsigned_varint_rejects_bad_input() -> None:
    with pytest.raises(DecodeError, match="longer than 5 bytes"):
        read_uvarint(b"\x80\x80\x80\x80\x80\x01", 0)
    with pytest.raises(DecodeError, match="ends inside"):
        read_uvarint(b"\x80\x80", 0)
    with pytest.raises(EncodeError):
        encode_uvarint(-1)
    with pytest.raises(EncodeError):
        encode_uvarint(2**32)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0, b"\x00"),
        (-1, b"\x01"),
        (1, b"\x02"),
        (-64, b"\x7f"),
        (64, b"\x80\x01"),
        (2**31 - 1, b"\xfe\xff\xff\xff\x0f"),
        (-(2**31), b"\xff\xff\xff\xff\x0f"),
    ],
)
def test_zigzag_varint_known_encodings(value: int, wire: bytes) -> None:
    assert encode_varint(value) == wire
    assert read_varint(wire, 0) == (value, len(wire))


@settings(database=None, derandomize=True)
@given(st.integers(-(2**63), 2**63 - 1))
def test_zigzag_varlong_round_trip(value: int) -> None:
    wire = encode_varlong(value)
    assert len(wire) <= 10
    assert read_varlong(wire, 0) == (value, len(wire))


def test_zigzag_limits() -> None:
    with pytest.raises(EncodeError):
        encode_varint(2**31)
    with pytest.raises(DecodeError):
        read_varint(b"\xff\xff\xff\xff\xff\x01", 0)
    with pytest.raises(DecodeError):
        read_varlong(b"\xff" * 10 + b"\x01", 0)
    assert read_varlong(encode_varlong(-(2**63)), 0)[0] == -(2**63)


def test_strings_are_compact_in_flexible_versions_and_int16_before() -> None:
    request = m.FindCoordinatorRequest(key="abc", key_type=1)
    assert encode_message("FindCoordinatorRequest", 3, request) == b"\x04abc\x01\x00"
    assert encode_message("FindCoordinatorRequest", 2, request) == b"\x00\x03abc\x01"
    assert encode_message("FindCoordinatorRequest", 0, request) == b"\x00\x03abc"  # KeyType is v1+


def test_compact_length_takes_two_bytes_from_127() -> None:
    request = m.FindCoordinatorRequest(key="k" * 200)
    wire = encode_message("FindCoordinatorRequest", 3, request)
    assert wire[:2] == encode_uvarint(201) == b"\xc9\x01"
    assert decode_message("FindCoordinatorRequest", 3, wire)[0] == request


def test_null_strings() -> None:
    produce = m.ProduceRequest(transactional_id=None)
    assert encode_message("ProduceRequest", 9, produce)[:1] == b"\x00"  # compact null
    assert encode_message("ProduceRequest", 8, produce)[:2] == b"\xff\xff"  # int16 -1
    assert decode_message("ProduceRequest", 9, encode_message("ProduceRequest", 9, produce))[0] == produce


def test_null_in_a_non_nullable_field_is_refused_both_ways() -> None:
    with pytest.raises(EncodeError):
        encode_message("FindCoordinatorRequest", 3, m.FindCoordinatorRequest(key=None))
    with pytest.raises(DecodeError, match="Key is null"):
        decode_message("FindCoordinatorRequest", 3, b"\x00\x01\x00")


def test_tagged_fields_are_written_only_when_not_default_in_ascending_tag_order() -> None:
    response = m.ApiVersionsResponse(error_code=0, api_keys=[])
    wire = encode_message("ApiVersionsResponse", 3, response)
    assert wire == b"\x00\x00" + b"\x01" + b"\x00\x00\x00\x00" + b"\x00"
    response.zk_migration_ready = True  # tag 3
    response.finalized_features_epoch = 5  # tag 1
    wire = encode_message("ApiVersionsResponse", 3, response)
    tags, end = read_tagged_fields(wire, 7)
    assert end == len(wire)
    assert list(tags) == [1, 3]
    assert bytes(tags[1]) == (5).to_bytes(8, "big")
    assert bytes(tags[3]) == b"\x01"
    assert wire[7:] == b"\x02" + b"\x01\x08" + (5).to_bytes(8, "big") + b"\x03\x01\x01"
    assert decode_message("ApiVersionsResponse", 3, wire)[0] == response


def test_tagged_fields_are_not_written_in_non_flexible_versions() -> None:
    response = m.ApiVersionsResponse(finalized_features_epoch=5)
    wire = encode_message("ApiVersionsResponse", 2, response)
    assert wire == b"\x00\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
    assert decode_message("ApiVersionsResponse", 2, wire)[0].finalized_features_epoch == -1


def test_unknown_tags_are_skipped() -> None:
    response = m.ApiVersionsResponse(api_keys=[m.ApiVersionsResponse.ApiVersion(api_key=0, max_version=9)])
    wire = encode_message("ApiVersionsResponse", 3, response)
    assert wire.endswith(b"\x00\x00")  # the element's and the message's empty tagged sections
    element_end = len(wire) - 6  # before the element's tags, throttle_time_ms and the message's tags
    with_unknown = (
        wire[:element_end]
        + b"\x01\x09\x02\xaa\xbb"
        + wire[element_end + 1 : -1]
        + b"\x02\x07\x00\x1f\x01\xcc"
    )
    assert decode_message("ApiVersionsResponse", 3, with_unknown) == (response, len(with_unknown))


def test_a_tagged_value_longer_than_its_size_is_malformed() -> None:
    wire = encode_message("ApiVersionsResponse", 3, m.ApiVersionsResponse())
    bad = wire[:-1] + b"\x01\x01\x02" + (5).to_bytes(8, "big")  # tag 1 (int64) declared 2 bytes long
    with pytest.raises(DecodeError):
        decode_message("ApiVersionsResponse", 3, bad)


def test_skip_tagged_fields_checks_sizes() -> None:
    assert skip_tagged_fields(b"\x01\x02ab!", 0, 1) == 4
    with pytest.raises(DecodeError):
        skip_tagged_fields(b"\x01\x09ab", 0, 1)


def test_nullable_struct_is_marked_by_an_int8() -> None:
    request = m.DescribeTopicPartitionsRequest(cursor=None)
    assert encode_message("DescribeTopicPartitionsRequest", 0, request) == b"\x01\x00\x00\x07\xd0\xff\x00"
    request.cursor = m.DescribeTopicPartitionsRequest.Cursor(topic_name="t", partition_index=3)
    wire = encode_message("DescribeTopicPartitionsRequest", 0, request)
    assert wire == b"\x01\x00\x00\x07\xd0" + b"\x01" + b"\x02t\x00\x00\x00\x03\x00" + b"\x00"
    assert decode_message("DescribeTopicPartitionsRequest", 0, wire)[0] == request
    assert (
        decode_message("DescribeTopicPartitionsRequest", 0, b"\x01\x00\x00\x07\xd0\xff\x00")[0].cursor is None
    )


def test_arrays_null_and_empty() -> None:
    request = m.MetadataRequest(topics=None)
    assert encode_message("MetadataRequest", 9, request)[:1] == b"\x00"
    assert encode_message("MetadataRequest", 8, request)[:4] == b"\xff\xff\xff\xff"
    assert (
        decode_message("MetadataRequest", 9, encode_message("MetadataRequest", 9, request))[0].topics is None
    )
    request.topics = []
    assert encode_message("MetadataRequest", 9, request)[:1] == b"\x01"
    assert encode_message("MetadataRequest", 8, request)[:4] == b"\x00\x00\x00\x00"


def test_array_count_larger_than_the_input_is_malformed() -> None:
    with pytest.raises(DecodeError, match="elements"):
        decode_message("MetadataRequest", 8, b"\x7f\xff\xff\xff\x00")


def test_records_decode_as_a_zero_copy_view() -> None:
    request = m.ProduceRequest(
        topic_data=[
            m.ProduceRequest.TopicProduceData(
                name="t", partition_data=[m.ProduceRequest.PartitionProduceData(index=0, records=b"batch")]
            )
        ]
    )
    wire = bytearray(encode_message("ProduceRequest", 9, request))
    records = decode_message("ProduceRequest", 9, wire)[0].topic_data[0].partition_data[0].records
    assert isinstance(records, memoryview)
    assert records == b"batch"
    wire[wire.index(b"batch")] = ord("B")
    assert records == b"Batch"  # a view of the input, not a copy


def test_invalid_utf8_is_replaced_as_java_does() -> None:
    decoded, _ = decode_message("FindCoordinatorRequest", 3, b"\x03\xff\xfe\x00\x00")
    assert decoded.key == "\ufffd\ufffd"
