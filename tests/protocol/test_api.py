"""Framing and header rules: request header v1/v2, response header v0/v1, ApiVersions, file regions."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

import pytest

from moldau.protocol import api
from moldau.protocol import messages as m
from moldau.protocol.api import (
    APIS,
    RequestHeader,
    decode_request,
    decode_request_header,
    decode_response,
    encode_request,
    encode_response,
)
from moldau.protocol.errors import DecodeError, EncodeError, UnsupportedVersionError
from moldau.protocol.schema import all_specs


def frame_body(frame: bytes) -> bytes:
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    return frame[4:]


def test_apis_cover_every_live_request_schema() -> None:
    assert len(APIS) == 89  # 93 keys, 4 removed ("none") in 4.x
    assert sum(a.max_version - a.min_version + 1 for a in APIS.values()) == 302
    broker = [a for a in APIS.values() if "broker" in a.listeners]
    assert len(broker) == 77
    assert sum(a.max_version - a.min_version + 1 for a in broker) == 278
    assert 4 not in APIS  # LeaderAndIsr
    produce = APIS[0]
    assert (produce.name, produce.min_version, produce.max_version) == ("Produce", 3, 13)
    assert (produce.request_flexible_min, produce.response_flexible_min) == (9, 9)
    assert APIS[17].request_flexible_min is None  # SaslHandshake
    assert [a.name for a in APIS.values() if a.latest_version_unstable] == ["InitProducerId"]


def test_request_header_v1_and_v2() -> None:
    body = m.MetadataRequest(topics=None)
    for version, tags in ((8, b""), (9, b"\x00")):
        frame = frame_body(encode_request(3, version, 42, "abc", body))
        assert frame[:13] == struct.pack(">hhih", 3, version, 42, 3) + b"abc"
        assert frame[13 : 13 + len(tags)] == tags
        header, offset = decode_request_header(frame)
        assert header == RequestHeader(3, version, 42, "abc")
        assert offset == 13 + len(tags)
        assert decode_request(3, version, frame, offset) == body


def test_client_id_keeps_its_int16_length_in_header_v2() -> None:
    frame = struct.pack(">hhih", 3, 12, 1, 200) + b"c" * 200 + b"\x00" + b"\x01\x00\x00\x00\x00\x00"
    header, offset = decode_request_header(frame)
    assert header.client_id == "c" * 200
    assert offset == 10 + 200 + 1


def test_null_client_id_and_header_tagged_fields() -> None:
    frame = struct.pack(">hhih", 18, 3, 5, -1) + b"\x01\x00\x02hi"
    header, offset = decode_request_header(frame)
    assert header == RequestHeader(18, 3, 5, None)
    assert offset == len(frame)


def test_header_of_unknown_api_key_or_version() -> None:
    frame = struct.pack(">hhih", 1000, 7, 9, 1) + b"x" + b"body"
    assert decode_request_header(frame) == (RequestHeader(1000, 7, 9, "x"), 11)
    # KIP-511: an ApiVersions request newer than ours is still parsed as header v2 (version >= 3).
    frame = struct.pack(">hhih", 18, 99, 9, 1) + b"x" + b"\x00" + b"body"
    assert decode_request_header(frame) == (RequestHeader(18, 99, 9, "x"), 12)
    frame = struct.pack(">hhih", 18, 2, 9, 1) + b"x" + b"body"
    assert decode_request_header(frame) == (RequestHeader(18, 2, 9, "x"), 11)


def test_truncated_headers() -> None:
    for frame in (b"", b"\x00\x12\x00", struct.pack(">hhih", 3, 1, 1, 5) + b"ab"):
        with pytest.raises(DecodeError):
            decode_request_header(frame)
    with pytest.raises(DecodeError):
        decode_request_header(struct.pack(">hhih", 18, 3, 1, -1) + b"\x01")  # tagged section cut short


def test_hand_written_header_agrees_with_the_generated_request_header() -> None:
    rng = random.Random(1)
    for _ in range(200):
        key = rng.choice([*APIS, 999])
        version = rng.randrange(20)
        client = rng.choice([None, "", "client-1", "é" * rng.randrange(50)])
        flexible = api._request_header_is_flexible(key, version)
        generated = m.RequestHeader(
            request_api_key=key,
            request_api_version=version,
            correlation_id=rng.randrange(2**31),
            client_id=client,
        )
        wire = api.encode_message("RequestHeader", 2 if flexible else 1, generated)
        header, offset = decode_request_header(wire + b"body")
        assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (
            key,
            version,
            generated.correlation_id,
            client,
        )
        assert offset == len(wire)


def test_api_versions_response_header_is_always_v0() -> None:
    body = m.ApiVersionsResponse(api_keys=[m.ApiVersionsResponse.ApiVersion(api_key=18, max_version=4)])
    for version in range(5):
        [frame] = encode_response(18, version, 77, body)
        frame = frame_body(frame)
        assert frame[:4] == struct.pack(">i", 77)
        assert frame[4:6] == b"\x00\x00"  # the body's error_code follows the correlation id directly
        assert decode_response(18, version, frame) == (77, body)


def test_flexible_responses_use_header_v1() -> None:
    body = m.MetadataResponse()
    frame = frame_body(encode_response(3, 9, 5, body)[0])
    assert frame[:5] == struct.pack(">i", 5) + b"\x00"
    assert decode_response(3, 9, frame) == (5, body)
    frame = frame_body(encode_response(3, 8, 5, body)[0])
    assert frame[:8] == struct.pack(">ii", 5, 0)  # header v0, then throttle_time_ms
    assert decode_response(3, 8, frame) == (5, body)


def test_api_versions_v0_fallback_reply() -> None:
    """KIP-511: a v0-format body with UNSUPPORTED_VERSION, under header v0."""
    body = m.ApiVersionsResponse(
        error_code=35, api_keys=[m.ApiVersionsResponse.ApiVersion(api_key=18, min_version=0, max_version=4)]
    )
    [frame] = encode_response(18, 0, 3, body)
    assert frame == struct.pack(">iih", 16, 3, 35) + struct.pack(">ihhh", 1, 18, 0, 4)


def test_unsupported_versions_and_keys() -> None:
    with pytest.raises(UnsupportedVersionError, match="Produce"):
        decode_request(0, 2, b"", 0)
    with pytest.raises(UnsupportedVersionError, match="unknown API key"):
        decode_request(4, 7, b"", 0)
    with pytest.raises(UnsupportedVersionError):
        decode_request(18, 5, b"", 0)
    with pytest.raises(UnsupportedVersionError):
        encode_response(1, 19, 0, m.FetchResponse())


def test_trailing_bytes_after_the_body_are_ignored() -> None:
    frame = frame_body(encode_request(12, 4, 1, "c", m.HeartbeatRequest(group_id="g"))) + b"extra"
    _, offset = decode_request_header(frame)
    assert decode_request(12, 4, frame, offset) == m.HeartbeatRequest(group_id="g")


def test_encode_errors_name_the_message() -> None:
    with pytest.raises(EncodeError, match="HeartbeatResponse v4"):
        encode_response(12, 4, 1, m.HeartbeatResponse(error_code=70000))
    with pytest.raises(EncodeError):
        encode_response(12, 4, 1, object())


@dataclass
class Region:
    """What the broker passes for a file region: sendfile parameters and a size."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


def fetch_response(records: object) -> m.FetchResponse:
    fr = m.FetchResponse
    partitions = [fr.PartitionData(partition_index=i, high_watermark=10, records=records) for i in range(2)]
    return fr(responses=[fr.FetchableTopicResponse(topic="t", partitions=partitions)])


def materialize(chunks: list) -> bytes:
    return b"".join(c if isinstance(c, bytes) else c.data for c in chunks)


@pytest.mark.parametrize("version", [4, 11, 12, 16, 18])
def test_file_regions_are_passed_through_and_counted_in_the_size(version: int) -> None:
    region = Region(b"R" * 100)
    chunks = encode_response(1, version, 9, fetch_response(region))
    assert [type(c) for c in chunks][:4] == [bytes, Region, bytes, Region]
    assert chunks[1] is region and chunks[3] is region
    assert all(type(c) is bytes for c in chunks[4:])  # the tail: tagged sections in flexible versions
    whole = materialize(chunks)
    assert struct.unpack_from(">i", whole)[0] == len(whole) - 4
    as_bytes = encode_response(1, version, 9, fetch_response(region.data))[0]
    assert whole == as_bytes
    correlation_id, decoded = decode_response(1, version, whole[4:])
    assert correlation_id == 9
    assert [p.records for p in decoded.responses[0].partitions] == [region.data] * 2


def test_several_segments_and_bytes_in_one_records_field() -> None:
    parts = [b"head", Region(b"A" * 10), Region(b"B" * 20)]
    chunks = encode_response(1, 12, 9, fetch_response(parts))
    assert sum(isinstance(c, Region) for c in chunks) == 4
    assert (
        materialize(chunks) == encode_response(1, 12, 9, fetch_response(b"head" + b"A" * 10 + b"B" * 20))[0]
    )


def test_bytes_records_give_one_chunk() -> None:
    chunks = encode_response(1, 12, 9, fetch_response(memoryview(b"xyz")))
    assert len(chunks) == 1 and type(chunks[0]) is bytes


def test_regions_cannot_go_into_a_request() -> None:
    request = m.ProduceRequest(
        topic_data=[
            m.ProduceRequest.TopicProduceData(
                name="t", partition_data=[m.ProduceRequest.PartitionProduceData(records=Region(b"x"))]
            )
        ]
    )
    with pytest.raises(EncodeError, match="region"):
        encode_request(0, 9, 1, None, request)


def test_every_request_schema_has_a_response_schema() -> None:
    specs = all_specs()
    assert all(a.name + "Response" in specs for a in APIS.values())


def test_records_as_a_list_of_one_part_or_none() -> None:
    for records in ([Region(b"abc")], (b"abc",), []):
        chunks = encode_response(1, 12, 9, fetch_response(records))
        expected = b"abc" if records else b""
        assert materialize(chunks) == encode_response(1, 12, 9, fetch_response(expected))[0]
        assert all(not (isinstance(c, bytes) and c == b"") for c in chunks)
