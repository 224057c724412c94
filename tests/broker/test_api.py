"""Given a broker, when a client speaks the protocol directly, then each API answers as Kafka does."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from moldau.client.client import Client, ClientError
from moldau.protocol import api, messages
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch
from tests.fixtures import unique_topic

EARLIEST, LATEST = -2, -1


def raw_frame(api_key: int, version: int, correlation_id: int, body: bytes = b"", client_id: bytes = b"t") -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    (size,) = struct.unpack(">i", exactly(4))
    return exactly(size)


def is_closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def batch(values: list[bytes], timestamp: int = 1_000) -> bytes:
    return build_batch([Record(0, timestamp + i, None, v, []) for i, v in enumerate(values)])


def test_api_versions_newer_than_supported_gets_v0_error_reply(broker):
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
        # ApiVersions v5 does not exist yet: header v2 (tagged fields byte), body unparsed.
        sock.sendall(raw_frame(18, 5, 42, b"\x00\x00"))
        frame = read_frame(sock)
    correlation_id, error_code = struct.unpack_from(">ih", frame)
    assert (correlation_id, error_code) == (42, ErrorCode.UNSUPPORTED_VERSION)
    (count,) = struct.unpack_from(">i", frame, 6)
    entries = [struct.unpack_from(">hhh", frame, 10 + 6 * i) for i in range(count)]
    assert (18, 0, 4) in entries


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_api_versions_lists_served_apis(broker, version):
    with Client(broker.bootstrap_servers) as client:
        body = messages.ApiVersionsRequest(client_software_name="moldau-test", client_software_version="1.0")
        response = client.send(18, body, version=version)
    assert response.error_code == 0
    served = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert served[0] == (0, 13) and served[1] == (4, 18) and served[3][1] == 13 and served[18] == (0, 4)


def test_api_versions_v3_with_invalid_software_name_is_invalid_request(broker):
    with Client(broker.bootstrap_servers) as client:
        body = messages.ApiVersionsRequest(client_software_name="-bad name-", client_software_version="1")
        assert client.send(18, body, version=3).error_code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("api_key,version", [(0, 2), (1, 3), (9999, 0), (67, 0)])
def test_unsupported_api_or_version_closes_connection(broker, api_key, version):
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
        sock.sendall(raw_frame(api_key, version, 1, b"\x00" * 16))
        assert is_closed(sock)


def test_oversized_request_closes_connection_and_broker_keeps_serving(broker):
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
        sock.sendall(struct.pack(">i", 200 * 1024 * 1024))
        assert is_closed(sock)
    with Client(broker.bootstrap_servers) as client:
        assert client.metadata(None).cluster_id


def test_produce_errors_use_kafka_codes(broker):
    topic = unique_topic()
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, 1)
        good = bytearray(batch([b"a", b"b"]))
        corrupt = bytearray(good)
        corrupt[-1] ^= 0xFF
        with pytest.raises(ClientError) as info:
            client.produce(topic, 0, bytes(corrupt))
        assert info.value.error_code == ErrorCode.CORRUPT_MESSAGE
        with pytest.raises(ClientError) as info:
            client.produce(unique_topic("missing"), 0, bytes(good))
        assert info.value.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        with pytest.raises(ClientError) as info:
            client.produce(topic, 7, bytes(good))
        assert info.value.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        # Nothing bad was stored: the next good batch starts at offset 0.
        assert client.produce(topic, 0, bytes(good)).base_offset == 0
        assert client.list_offset(topic, 0, LATEST) == 2


def test_record_too_large_is_rejected(broker):
    topic = unique_topic()
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, 1, configs={"max.message.bytes": "1000"})
        with pytest.raises(ClientError) as info:
            client.produce(topic, 0, batch([b"x" * 2000]))
        assert info.value.error_code == ErrorCode.MESSAGE_TOO_LARGE


def test_list_offsets_latest_is_last_offset_plus_one_and_by_timestamp(broker):
    topic = unique_topic()
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, 1)
        client.produce(topic, 0, batch([b"a", b"b", b"c"], timestamp=1_000))
        client.produce(topic, 0, batch([b"d", b"e"], timestamp=5_000))
        assert client.list_offset(topic, 0, EARLIEST) == 0
        assert client.list_offset(topic, 0, LATEST) == 5
        assert client.list_offset(topic, 0, 1_001) == 1
        assert client.list_offset(topic, 0, 4_000) == 3
        assert client.list_offset(topic, 0, 10_000) == -1


def test_fetch_returns_a_whole_batch_even_above_max_bytes(broker):
    topic = unique_topic()
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, 1)
        first = batch([b"x" * 500, b"y" * 500])
        client.produce(topic, 0, first)
        client.produce(topic, 0, batch([b"z" * 500]))
        result = client.fetch(topic, 0, 0, max_wait_ms=0, max_bytes=100)
        assert len(bytes(result.records)) == len(first)  # exactly the first batch, whole (KIP-74)
        assert result.high_watermark == 3


def test_long_poll_fetch_wakes_when_data_arrives(broker):
    topic = unique_topic()
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, 1)

    def produce_later():
        time.sleep(0.3)  # the fetch must already be waiting; this is the delay under test
        with Client(broker.bootstrap_servers) as producer:
            producer.produce(topic, 0, batch([b"wake"]))

    thread = threading.Thread(target=produce_later)
    with Client(broker.bootstrap_servers) as consumer:
        started = time.monotonic()
        thread.start()
        result = consumer.fetch(topic, 0, 0, max_wait_ms=20_000)
        elapsed = time.monotonic() - started
    thread.join()
    assert result.records and len(bytes(result.records)) > 61
    assert elapsed < 10, f"fetch waited {elapsed:.1f}s instead of waking on the produce"


def test_pipelined_requests_are_answered_in_order(broker):
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
        frames = b"".join(
            api.encode_request(3, 12, cid, "pipe", messages.MetadataRequest(topics=None))
            if cid % 2 else api.encode_request(18, 0, cid, "pipe", messages.ApiVersionsRequest())
            for cid in range(1, 21)
        )
        sock.sendall(frames)
        ids = [struct.unpack_from(">i", read_frame(sock))[0] for _ in range(20)]
    assert ids == list(range(1, 21))


def test_acks_zero_produce_gets_no_response(broker):
    topic = unique_topic()
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, 1)
        assert client.produce(topic, 0, batch([b"fire-and-forget"]), acks=0) is None
        # The next request's response is the next frame on the wire.
        assert client.list_offset(topic, 0, LATEST) == 1


def test_create_topic_validation(broker):
    with Client(broker.bootstrap_servers) as client:
        for name, configs, code in [
            ("bad name!", {}, ErrorCode.INVALID_TOPIC_EXCEPTION),
            (unique_topic(), {"segment.bytes": "1000"}, ErrorCode.INVALID_CONFIG),  # KIP-1030 minimum
            (unique_topic(), {"cleanup.policy": "sometimes"}, ErrorCode.INVALID_CONFIG),
            (unique_topic(), {"no.such.config": "1"}, ErrorCode.INVALID_CONFIG),
        ]:
            with pytest.raises(ClientError) as info:
                client.create_topic(name, 1, configs=configs)
            assert info.value.error_code == code, name
        topic = unique_topic()
        client.create_topic(topic, 2)
        with pytest.raises(ClientError) as info:
            client.create_topic(topic, 2)
        assert info.value.error_code == ErrorCode.TOPIC_ALREADY_EXISTS
        with pytest.raises(ClientError) as info:
            client.create_topic(unique_topic(), 1, replication_factor=3)
        assert info.value.error_code == ErrorCode.INVALID_REPLICATION_FACTOR
        client.delete_topic(topic)
        with pytest.raises(ClientError) as info:
            client.delete_topic(topic)
        assert info.value.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_incremental_fetch_session_sends_only_changes(broker):
    topic = unique_topic()
    request_type = messages.FetchRequest
    with Client(broker.bootstrap_servers) as client:
        client.create_topic(topic, 2)
        client.produce(topic, 0, batch([b"a"]))

        def fetch(session_id, epoch, partitions):
            request = request_type(
                replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
                session_id=session_id, session_epoch=epoch,
                topics=[request_type.FetchTopic(topic=topic, partitions=[
                    request_type.FetchPartition(partition=p, fetch_offset=o, partition_max_bytes=1 << 20)
                    for p, o in partitions])] if partitions else [],
            )
            return client.send(1, request, version=12)

        full = fetch(0, 0, [(0, 0), (1, 0)])
        assert full.error_code == 0 and full.session_id > 0
        assert sorted(p.partition_index for t in full.responses for p in t.partitions) == [0, 1]
        # Nothing changed: an incremental fetch that names no partitions gets none back.
        quiet = fetch(full.session_id, 1, [(0, 1)])
        assert quiet.session_id == full.session_id
        assert [p for t in quiet.responses for p in t.partitions] == []
        client.produce(topic, 1, batch([b"b"]))
        news = fetch(full.session_id, 2, [])
        assert [(p.partition_index, p.high_watermark) for t in news.responses for p in t.partitions] == [(1, 1)]
        assert fetch(full.session_id, 7, []).error_code == ErrorCode.INVALID_FETCH_SESSION_EPOCH
        assert fetch(12345, 1, []).error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
