"""A small blocking Kafka client on Moldau's own codec, used by the CLI and by tests at the protocol level.

It talks to one broker (the bootstrap server), negotiates versions with ApiVersions, and offers the
handful of calls the CLI needs. Applications should use a full Kafka client.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Self

from moldau.errors import MoldauError
from moldau.protocol import api, messages
from moldau.protocol.errors import ErrorCode

_SIZE = struct.Struct(">i")
DEFAULT_TIMEOUT_S = 30.0


class ClientError(MoldauError):
    def __init__(self, error_code: int, what: str) -> None:
        code = ErrorCode(error_code)
        super().__init__(f"{what}: {code.name} ({int(code)})")
        self.error_code = code


def parse_bootstrap(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return (host.strip("[]") or "localhost", int(port or 9092))


class Client:
    def __init__(self, bootstrap: str = "localhost:9092", client_id: str = "moldau-cli",
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.client_id = client_id
        self._sock = socket.create_connection(parse_bootstrap(bootstrap), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._correlation_id = 0
        self.versions: dict[int, tuple[int, int]] = {}
        response = self.send(18, messages.ApiVersionsRequest(), version=0)
        if response.error_code:
            raise ClientError(response.error_code, "ApiVersions")
        self.versions = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def version_for(self, api_key: int) -> int:
        ours = api.APIS[api_key]
        theirs = self.versions.get(api_key)
        if theirs is None:
            raise MoldauError(f"The broker does not support {ours.name} (api key {api_key})")
        high = min(theirs[1], ours.max_version)
        if high < max(theirs[0], ours.min_version):
            raise MoldauError(f"No common version of {ours.name}: broker {theirs}, client "
                              f"{ours.min_version}-{ours.max_version}")
        return high

    def send(self, api_key: int, body: Any, version: int | None = None, expect_response: bool = True) -> Any:
        if version is None:
            version = self.version_for(api_key)
        self._correlation_id += 1
        self._sock.sendall(api.encode_request(api_key, version, self._correlation_id, self.client_id, body))
        if not expect_response:
            return None
        frame = self._recv_frame()
        correlation_id, response = api.decode_response(api_key, version, frame)
        if correlation_id != self._correlation_id:
            raise MoldauError(f"Response correlation id {correlation_id} != request {self._correlation_id}")
        return response

    def _recv_exactly(self, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = self._sock.recv(n - len(chunks))
            if not chunk:
                raise ConnectionError("The broker closed the connection")
            chunks += chunk
        return bytes(chunks)

    def _recv_frame(self) -> bytes:
        (size,) = _SIZE.unpack(self._recv_exactly(4))
        return self._recv_exactly(size)

    # -- calls -----------------------------------------------------------------------------------

    def metadata(self, topics: list[str] | None = None, auto_create: bool = False) -> Any:
        request_type = messages.MetadataRequest
        wanted = None if topics is None else [request_type.MetadataRequestTopic(name=t) for t in topics]
        return self.send(3, request_type(topics=wanted, allow_auto_topic_creation=auto_create))

    def partitions_of(self, topic: str, auto_create: bool = False) -> list[int]:
        for entry in self.metadata([topic], auto_create=auto_create).topics:
            if entry.error_code:
                raise ClientError(entry.error_code, f"Topic {topic}")
            return sorted(p.partition_index for p in entry.partitions)
        raise ClientError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {topic}")

    def create_topic(self, name: str, partitions: int = -1, replication_factor: int = -1,
                     configs: dict[str, str] | None = None, validate_only: bool = False) -> Any:
        request_type = messages.CreateTopicsRequest
        topic = request_type.CreatableTopic(
            name=name, num_partitions=partitions, replication_factor=replication_factor,
            configs=[request_type.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()],
        )
        response = self.send(19, request_type(topics=[topic], timeout_ms=30000, validate_only=validate_only))
        result = response.topics[0]
        if result.error_code:
            raise ClientError(result.error_code, f"Create topic {name}: {result.error_message or ''}".rstrip(": "))
        return result

    def delete_topic(self, name: str) -> None:
        version = self.version_for(20)
        request_type = messages.DeleteTopicsRequest
        if version >= 6:
            request = request_type(topics=[request_type.DeleteTopicState(name=name)], timeout_ms=30000)
        else:
            request = request_type(topic_names=[name], timeout_ms=30000)
        result = self.send(20, request, version).responses[0]
        if result.error_code:
            raise ClientError(result.error_code, f"Delete topic {name}")

    def produce(self, topic: str, partition: int, records: bytes, acks: int = -1) -> Any:
        request_type = messages.ProduceRequest
        version = min(self.version_for(0), 12)  # by name, not topic id
        request = request_type(
            acks=acks, timeout_ms=30000,
            topic_data=[request_type.TopicProduceData(name=topic, partition_data=[
                request_type.PartitionProduceData(index=partition, records=records)])],
        )
        response = self.send(0, request, version, expect_response=acks != 0)
        if response is None:
            return None
        result = response.responses[0].partition_responses[0]
        if result.error_code:
            raise ClientError(result.error_code, f"Produce to {topic}-{partition}")
        return result

    def list_offset(self, topic: str, partition: int, timestamp: int) -> int:
        request_type = messages.ListOffsetsRequest
        request = request_type(replica_id=-1, topics=[request_type.ListOffsetsTopic(
            name=topic, partitions=[request_type.ListOffsetsPartition(partition_index=partition,
                                                                      timestamp=timestamp)])])
        result = self.send(2, request).topics[0].partitions[0]
        if result.error_code:
            raise ClientError(result.error_code, f"ListOffsets {topic}-{partition}")
        return result.offset

    def fetch(self, topic: str, partition: int, offset: int, max_wait_ms: int = 500,
              max_bytes: int = 1 << 20) -> Any:
        request_type = messages.FetchRequest
        version = min(self.version_for(1), 12)
        request = request_type(
            replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=max_bytes, isolation_level=0,
            session_id=0, session_epoch=-1,
            topics=[request_type.FetchTopic(topic=topic, partitions=[request_type.FetchPartition(
                partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes)])],
        )
        result = self.send(1, request, version).responses[0].partitions[0]
        if result.error_code:
            raise ClientError(result.error_code, f"Fetch {topic}-{partition} at offset {offset}")
        return result
