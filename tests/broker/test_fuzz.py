"""Given a broker, when thousands of random and mutated frames arrive, then it neither crashes nor hangs,
and well-formed traffic on other connections keeps working."""

from __future__ import annotations

import random
import socket
import struct

from moldau.client.client import Client
from moldau.protocol import api, messages
from moldau.protocol.records import Record, build_batch
from tests.fixtures import unique_topic

FRAMES = 3000
FRAMES_PER_CONNECTION = 10


def valid_requests(topic: str) -> list[bytes]:
    produce = messages.ProduceRequest
    fetch = messages.FetchRequest
    batch = build_batch([Record(0, 1, b"k", b"v", [("h", b"x")])])
    return [
        api.encode_request(18, 3, 1, "fuzz", messages.ApiVersionsRequest(client_software_name="f",
                                                                         client_software_version="1")),
        api.encode_request(3, 12, 2, "fuzz", messages.MetadataRequest(
            topics=[messages.MetadataRequest.MetadataRequestTopic(name=topic)])),
        api.encode_request(0, 9, 3, "fuzz", produce(acks=1, timeout_ms=1000, topic_data=[
            produce.TopicProduceData(name=topic, partition_data=[
                produce.PartitionProduceData(index=0, records=batch)])])),
        api.encode_request(1, 12, 4, "fuzz", fetch(
            replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, session_id=0, session_epoch=-1,
            topics=[fetch.FetchTopic(topic=topic, partitions=[
                fetch.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])])),
    ]


def mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame[4:])
    choice = rng.random()
    if choice < 0.4:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif choice < 0.6:
        data = data[: rng.randrange(len(data))]
    elif choice < 0.8:
        position = rng.randrange(len(data))
        data[position:position] = rng.randbytes(rng.randint(1, 64))
    else:
        # Random header for a random api and version, random body.
        data = bytearray(struct.pack(">hhi", rng.randrange(-2, 100), rng.randrange(-1, 20), 7)
                         + rng.randbytes(rng.randint(0, 200)))
    return struct.pack(">i", len(data)) + bytes(data)


def test_random_and_mutated_frames_never_break_the_broker(broker):
    rng = random.Random(20261125)
    topic = unique_topic("fuzz")
    with Client(broker.bootstrap_servers) as healthy:
        healthy.create_topic(topic, 1)
        seeds = valid_requests(topic)
        sent = 0
        while sent < FRAMES:
            with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
                try:
                    for _ in range(FRAMES_PER_CONNECTION):
                        sock.sendall(mutate(rng, rng.choice(seeds)))
                        sent += 1
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the broker closed a connection that sent garbage: expected
            if sent % 500 < FRAMES_PER_CONNECTION:
                # The long-lived, well-behaved connection is still served.
                assert healthy.metadata([topic]).topics[0].error_code == 0
        assert healthy.list_offset(topic, 0, -1) >= 0
    with Client(broker.bootstrap_servers) as fresh:
        assert fresh.metadata(None).cluster_id
