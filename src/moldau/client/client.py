"""A small blocking Kafka client on Moldau's own codec, used by the CLI and by tests at the protocol level.

It talks to one broker (the bootstrap server), negotiates versions with ApiVersions, and offers the
handful of calls the CLI needs. Applications should use a full Kafka client.
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING, Any, Self

from moldau.errors import MoldauError
from moldau.protocol import api, messages
from moldau.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from moldau.client.security import ClientSecurity

_SIZE = struct.Struct(">i")
DEFAULT_TIMEOUT_S = 30.0


class ClientError(MoldauError):
    """A Kafka error code in a response: what was asked, the code, and the broker's message if it gave one."""

    def __init__(self, error_code: int, what: str, message: str | None = None) -> None:
        code = ErrorCode(error_code)
        super().__init__(f"{what}: {code.name} ({int(code)})" + (f": {message}" if message else ""))
        self.error_code = code


def parse_bootstrap(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return (host.strip("[]") or "localhost", int(port or 9092))


class Client:
    def __init__(self, bootstrap: str = "localhost:9092", client_id: str = "moldau-cli",
                 timeout: float = DEFAULT_TIMEOUT_S, security: ClientSecurity | None = None) -> None:
        self.client_id = client_id
        self._address = parse_bootstrap(bootstrap)
        self._timeout = timeout
        self._security = security
        self._sock: socket.socket | None = self._connect()
        self._correlation_id = 0
        self.versions: dict[int, tuple[int, int]] = {}
        response = self.send(18, messages.ApiVersionsRequest(), version=0)
        if response.error_code:
            raise ClientError(response.error_code, "ApiVersions")
        self.versions = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        self._authenticate()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self._address, timeout=self._timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._security.wrap(sock, self._address[0]) if self._security is not None else sock

    def _authenticate(self) -> None:
        if self._security is not None:
            self._security.authenticate(lambda key, body, version: self.send(key, body, version=version))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

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
        if self._sock is None:
            self._sock = self._connect()
            self._authenticate()  # a new connection authenticates again before its first request
        self._correlation_id += 1
        try:
            self._sock.sendall(api.encode_request(api_key, version, self._correlation_id, self.client_id, body))
            if not expect_response:
                return None
            frame = self._recv_frame(self._sock)
        except BaseException:
            # A request cut short (Ctrl-C during a long-poll fetch, a timeout) leaves the stream mid-frame:
            # the next request gets a new connection, so that e.g. the final offset commit still works.
            self.close()
            raise
        correlation_id, response = api.decode_response(api_key, version, frame)
        if correlation_id != self._correlation_id:
            raise MoldauError(f"Response correlation id {correlation_id} != request {self._correlation_id}")
        return response

    @staticmethod
    def _recv_exactly(sock: socket.socket, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = sock.recv(n - len(chunks))
            if not chunk:
                raise ConnectionError("The broker closed the connection")
            chunks += chunk
        return bytes(chunks)

    def _recv_frame(self, sock: socket.socket) -> bytes:
        (size,) = _SIZE.unpack(self._recv_exactly(sock, 4))
        return self._recv_exactly(sock, size)

    # -- calls -----------------------------------------------------------------------------------

    def metadata(self, topics: list[str] | None = None, auto_create: bool = False) -> Any:
        request_type = messages.MetadataRequest
        wanted = None if topics is None else [request_type.MetadataRequestTopic(name=t) for t in topics]
        return self.send(3, request_type(topics=wanted, allow_auto_topic_creation=auto_create))

    def describe_cluster(self) -> Any:
        """DescribeCluster: the cluster id, the brokers and the (elected) controller."""
        return self.send(60, messages.DescribeClusterRequest(include_cluster_authorized_operations=False))

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
            raise ClientError(result.error_code, f"Create topic {name}", result.error_message)
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
        return self.fetch_partitions(topic, {partition: offset}, max_wait_ms, max_bytes)[partition]

    def fetch_partitions(self, topic: str, offsets: dict[int, int], max_wait_ms: int = 500,
                         max_bytes: int = 1 << 20) -> dict[int, Any]:
        """One Fetch of several partitions of a topic from their offsets: {partition: its result}. The broker
        answers as soon as any partition has data, or after `max_wait_ms` (long poll)."""
        request_type = messages.FetchRequest
        version = min(self.version_for(1), 12)
        request = request_type(
            replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=max_bytes, isolation_level=0,
            session_id=0, session_epoch=-1,
            topics=[request_type.FetchTopic(topic=topic, partitions=[request_type.FetchPartition(
                partition=p, fetch_offset=o, partition_max_bytes=max_bytes) for p, o in offsets.items()])],
        )
        results = {}
        for topic_response in self.send(1, request, version).responses:
            for result in topic_response.partitions:
                if result.error_code:
                    raise ClientError(result.error_code, f"Fetch {topic}-{result.partition_index} at offset "
                                                         f"{offsets.get(result.partition_index)}")
                results[result.partition_index] = result
        return results

    # -- admin: configs, partitions, records, log dirs -----------------------------------------------

    def describe_configs(self, resource_type: int, name: str, keys: list[str] | None = None,
                         synonyms: bool = False, documentation: bool = False) -> Any:
        """DescribeConfigs of one resource (2 = topic, 4 = broker); returns its result entry."""
        request_type = messages.DescribeConfigsRequest
        request = request_type(
            resources=[request_type.DescribeConfigsResource(resource_type=resource_type, resource_name=name,
                                                            configuration_keys=keys)],
            include_synonyms=synonyms, include_documentation=documentation,
        )
        result = self.send(32, request).results[0]
        if result.error_code:
            raise ClientError(result.error_code, f"Describe configs of {name!r}", result.error_message)
        return result

    def incremental_alter_configs(self, resource_type: int, name: str,
                                  ops: list[tuple[str, int, str | None]], validate_only: bool = False) -> None:
        """IncrementalAlterConfigs: `ops` are (config name, 0 SET | 1 DELETE | 2 APPEND | 3 SUBTRACT, value)."""
        request_type = messages.IncrementalAlterConfigsRequest
        resource = request_type.AlterConfigsResource(
            resource_type=resource_type, resource_name=name,
            configs=[request_type.AlterableConfig(name=n, config_operation=op, value=v) for n, op, v in ops],
        )
        result = self.send(44, request_type(resources=[resource], validate_only=validate_only)).responses[0]
        if result.error_code:
            raise ClientError(result.error_code, f"Alter configs of {name!r}", result.error_message)

    def create_partitions(self, topic: str, count: int, validate_only: bool = False) -> None:
        request_type = messages.CreatePartitionsRequest
        request = request_type(topics=[request_type.CreatePartitionsTopic(name=topic, count=count, assignments=None)],
                               timeout_ms=30000, validate_only=validate_only)
        result = self.send(37, request).results[0]
        if result.error_code:
            raise ClientError(result.error_code, f"Create partitions of {topic}", result.error_message)

    def delete_records(self, topic: str, offsets: dict[int, int]) -> dict[int, int]:
        """DeleteRecords: {partition: offset (-1 = high watermark)} -> {partition: new low watermark}."""
        request_type = messages.DeleteRecordsRequest
        request = request_type(topics=[request_type.DeleteRecordsTopic(name=topic, partitions=[
            request_type.DeleteRecordsPartition(partition_index=p, offset=o) for p, o in offsets.items()])],
            timeout_ms=30000)
        low_watermarks = {}
        for result in self.send(21, request).topics[0].partitions:
            if result.error_code:
                raise ClientError(result.error_code, f"Delete records of {topic}-{result.partition_index}")
            low_watermarks[result.partition_index] = result.low_watermark
        return low_watermarks

    # -- admin: leadership and reassignments (KIP-183/460, KIP-455) ----------------------------------

    def elect_leaders(self, partitions: dict[str, list[int]] | None, election_type: int = 0) -> dict[tuple[str, int],
                                                                                                   ErrorCode]:
        """ElectLeaders (0 preferred, 1 unclean) of `partitions` (None: every partition) -> error per partition."""
        request_type = messages.ElectLeadersRequest
        request = request_type(election_type=election_type, timeout_ms=30000, topic_partitions=None if partitions
                               is None else [request_type.TopicPartitions(topic=t, partitions=p)
                                             for t, p in partitions.items()])
        response = self.send(43, request)
        if response.error_code:
            raise ClientError(response.error_code, "ElectLeaders")
        return {(r.topic, p.partition_id): ErrorCode(p.error_code)
                for r in response.replica_election_results for p in r.partition_result}

    def alter_partition_reassignments(self, reassignments: dict[tuple[str, int], list[int] | None]
                                      ) -> dict[tuple[str, int], tuple[ErrorCode, str | None]]:
        """AlterPartitionReassignments: {(topic, partition): target replicas, or None to cancel}."""
        request_type = messages.AlterPartitionReassignmentsRequest
        by_topic: dict[str, list[Any]] = {}
        for (topic, index), replicas in reassignments.items():
            by_topic.setdefault(topic, []).append(
                request_type.ReassignablePartition(partition_index=index, replicas=replicas))
        request = request_type(timeout_ms=30000, topics=[
            request_type.ReassignableTopic(name=t, partitions=p) for t, p in by_topic.items()])
        response = self.send(45, request)
        if response.error_code:
            raise ClientError(response.error_code, "AlterPartitionReassignments", response.error_message)
        return {(t.name, p.partition_index): (ErrorCode(p.error_code), p.error_message)
                for t in response.responses for p in t.partitions}

    def list_partition_reassignments(self, topics: dict[str, list[int]] | None = None) -> dict[tuple[str, int],
                                                                                               Any]:
        """ListPartitionReassignments -> {(topic, partition): entry with replicas, adding/removing_replicas}."""
        request_type = messages.ListPartitionReassignmentsRequest
        request = request_type(timeout_ms=30000, topics=None if topics is None else [
            request_type.ListPartitionReassignmentsTopics(name=t, partition_indexes=p) for t, p in topics.items()])
        response = self.send(46, request)
        if response.error_code:
            raise ClientError(response.error_code, "ListPartitionReassignments", response.error_message)
        return {(t.name, p.partition_index): p for t in response.topics for p in t.partitions}

    def describe_log_dirs(self) -> Any:
        request_type = messages.DescribeLogDirsRequest
        return self.send(35, request_type(topics=None)).results

    # -- groups (the bootstrap broker is the coordinator of every group on a single broker) ---------

    def list_groups(self, states: list[str] | None = None) -> list[Any]:
        request = messages.ListGroupsRequest(states_filter=states or [], types_filter=[])
        response = self.send(16, request)
        if response.error_code:
            raise ClientError(response.error_code, "ListGroups")
        return list(response.groups)

    def describe_group(self, group_id: str) -> Any:
        """DescribeGroups of a classic group; raises GROUP_ID_NOT_FOUND for one that does not exist (v6+;
        older versions answer state Dead, which this turns into the same error)."""
        result = self.send(15, messages.DescribeGroupsRequest(groups=[group_id])).groups[0]
        if not result.error_code and result.group_state == "Dead":
            result.error_code = ErrorCode.GROUP_ID_NOT_FOUND
        if result.error_code:
            raise ClientError(result.error_code, f"Describe group {group_id}")
        return result

    def describe_consumer_group(self, group_id: str) -> Any:
        """ConsumerGroupDescribe (KIP-848) of a consumer group; GROUP_ID_NOT_FOUND for a classic group too."""
        request = messages.ConsumerGroupDescribeRequest(group_ids=[group_id], include_authorized_operations=False)
        result = self.send(69, request).groups[0]
        if result.error_code:
            raise ClientError(result.error_code, f"Describe consumer group {group_id}")
        return result

    def consumer_group_heartbeat(self, request: Any) -> Any:
        """One ConsumerGroupHeartbeat (KIP-848); the caller reads the response's error code."""
        return self.send(68, request)

    def delete_group(self, group_id: str) -> None:
        result = self.send(42, messages.DeleteGroupsRequest(groups_names=[group_id])).results[0]
        if result.error_code:
            raise ClientError(result.error_code, f"Delete group {group_id}")

    def fetch_offsets(self, group_id: str, require_stable: bool = False) -> dict[tuple[str, int], tuple[int, str]]:
        """Every committed offset of a group: (topic, partition) -> (offset, metadata). Like Kafka's admin
        client, offsets of open transactions are not waited for unless `require_stable`."""
        request_type = messages.OffsetFetchRequest
        version = min(self.version_for(9), 9)  # topics by name
        request = request_type(groups=[request_type.OffsetFetchRequestGroup(group_id=group_id, topics=None)],
                               require_stable=require_stable)
        group = self.send(9, request, version).groups[0]
        if group.error_code:
            raise ClientError(group.error_code, f"Fetch offsets of group {group_id}")
        return {(t.name, p.partition_index): (p.committed_offset, p.metadata)
                for t in group.topics for p in t.partitions if p.committed_offset >= 0}

    # -- transactions (this broker is the coordinator of every transactional id) ---------------------

    def list_transactions(self, states: list[str] | None = None, producer_ids: list[int] | None = None,
                          ) -> list[Any]:
        request = messages.ListTransactionsRequest(state_filters=states or [], producer_id_filters=producer_ids or [],
                                                   duration_filter=-1)
        response = self.send(66, request, min(self.version_for(66), 1))
        if response.error_code:
            raise ClientError(response.error_code, "ListTransactions")
        return list(response.transaction_states)

    def describe_transaction(self, transactional_id: str) -> Any:
        result = self.send(65, messages.DescribeTransactionsRequest(transactional_ids=[transactional_id]))
        state = result.transaction_states[0]
        if state.error_code:
            raise ClientError(state.error_code, f"Describe transaction {transactional_id}")
        return state

    def commit_offsets(self, group_id: str, offsets: dict[tuple[str, int], int], member_id: str = "",
                       member_epoch: int = -1) -> None:
        """Commit offsets. Without a member: a simple (generation -1) commit, as an admin's offset reset does,
        which also works for a group that does not exist yet (Kafka's `kafka-consumer-groups --reset-offsets`).
        A KIP-848 member passes its member id and epoch (OffsetCommit v9+)."""
        request_type = messages.OffsetCommitRequest
        by_topic: dict[str, list[Any]] = {}
        for (topic, partition), offset in sorted(offsets.items()):
            by_topic.setdefault(topic, []).append(request_type.OffsetCommitRequestPartition(
                partition_index=partition, committed_offset=offset, committed_metadata=""))
        topics = [request_type.OffsetCommitRequestTopic(name=t, partitions=ps) for t, ps in by_topic.items()]
        request = request_type(group_id=group_id, generation_id_or_member_epoch=member_epoch, member_id=member_id,
                               topics=topics)
        version = min(self.version_for(8), 9)
        for topic in self.send(8, request, version).topics:
            for p in topic.partitions:
                if p.error_code:
                    raise ClientError(p.error_code, f"Commit offset of {topic.name}-{p.partition_index}")
