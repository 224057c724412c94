"""Given request frames cut at any byte (a real socket, written in pieces), when the broker reads them, then
every request is answered once, in order: small frames many to a read, frames straddling reads, and frames
bigger than the connection's scratch buffer (read into a buffer of their own, connection.py)."""

from __future__ import annotations

import socket
import time

import pytest

from moldau.client.client import Client
from moldau.protocol import api, messages
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import Record, build_batch, decode_batch, iter_batches
from moldau.testing import running_broker
from tests.broker.test_api import read_frame
from tests.fixtures import DEADLINE_S, unique_topic

PRODUCE, API_VERSIONS = 0, 18


def _produce(topic: str, size: int, correlation_id: int) -> bytes:
    batch = build_batch([Record(0, 0, None, bytes([correlation_id % 251]) * size)])
    body = messages.ProduceRequest(acks=1, timeout_ms=10000, topic_data=[
        messages.ProduceRequest.TopicProduceData(name=topic, partition_data=[
            messages.ProduceRequest.PartitionProduceData(index=0, records=batch)])])
    return api.encode_request(PRODUCE, 9, correlation_id, "frames-test", body)


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_frames_cut_anywhere_are_each_answered_once_in_order(event_loop):
    with running_broker(num_partitions=1, moldau_event_loop=event_loop) as broker:
        topic = unique_topic("frames")
        with Client(broker.bootstrap_servers) as client:
            client.create_topic(topic, 1, 1)
        # Record sizes around the 64 KiB scratch buffer and well past it, each followed by small requests.
        # Twice: the second time big frames reuse the buffers of the first (FramePool) and must not mix.
        sizes = [10, 65_400, 65_536, 70_000, 900_000, 100, 300_000, 280_000] * 2
        frames: list[bytes] = []
        expected: list[tuple[int, int]] = []  # (api key, correlation id)
        for size in sizes:
            correlation_id = len(frames) + 1
            frames.append(_produce(topic, size, correlation_id))
            expected.append((PRODUCE, correlation_id))
            for _ in range(3):
                frames.append(api.encode_request(API_VERSIONS, 0, len(frames) + 1, "frames-test",
                                                 messages.ApiVersionsRequest()))
                expected.append((API_VERSIONS, len(frames)))
        stream = b"".join(frames)
        with socket.create_connection(("127.0.0.1", broker.port), timeout=DEADLINE_S) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Pieces of awkward sizes (a frame's size field cut in two, 1 byte, 64 KiB + 3...), with pauses
            # so that the broker reads them separately.
            cuts = [1, 2, 3, 5, 7, 4096, 65_539, 1, 200_000]
            position, i = 0, 0
            while position < len(stream):
                piece = cuts[i % len(cuts)]
                sock.sendall(stream[position:position + piece])
                position += piece
                i += 1
                if i % 3 == 0:
                    time.sleep(0.002)
            answers = []
            for key, correlation_id in expected:
                version = 9 if key == PRODUCE else 0
                got_id, response = api.decode_response(key, version, read_frame(sock))
                assert got_id == correlation_id
                answers.append(response)
        offsets = [a.responses[0].partition_responses[0] for (key, _), a in zip(expected, answers, strict=True)
                   if key == PRODUCE]
        assert [(p.error_code, p.base_offset) for p in offsets] == [(ErrorCode.NONE, i) for i in range(len(sizes))]
        assert all(a.error_code == ErrorCode.NONE for (key, _), a in zip(expected, answers, strict=True)
                   if key == API_VERSIONS)
        # The stored records are the bytes sent.
        values = []
        with Client(broker.bootstrap_servers) as client:
            while len(values) < len(sizes):
                records = client.fetch(topic, 0, len(values), max_bytes=4 << 20).records
                values += [r.value for pos, _ in iter_batches(records) for r in decode_batch(records, pos)]
        assert values == [bytes([(i * 4 + 1) % 251]) * size for i, size in enumerate(sizes)]
