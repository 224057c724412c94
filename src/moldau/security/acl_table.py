"""Which ACL each request needs before its handler runs: Kafka's "Operations and Resources on Protocols".

`REQUEST_CHECKS` lists the checks that decide a whole request (a group, a transactional id, the
cluster). Checks on each topic or group inside a request (Produce, Fetch, Metadata, CreateTopics, ...)
are made by those handlers through `Session.allowed`, because Kafka answers them per item; the APIs
that do so are listed in `PER_RESOURCE` so the table documents every API in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moldau.protocol import api, messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import CLUSTER_NAME, AclOperation, ResourceType

Op, Res = AclOperation, ResourceType

ERROR_FOR = {
    ResourceType.TOPIC: ErrorCode.TOPIC_AUTHORIZATION_FAILED,
    ResourceType.GROUP: ErrorCode.GROUP_AUTHORIZATION_FAILED,
    ResourceType.CLUSTER: ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
    ResourceType.TRANSACTIONAL_ID: ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ResourceType.DELEGATION_TOKEN: ErrorCode.DELEGATION_TOKEN_AUTHORIZATION_FAILED,
}


@dataclass(slots=True, frozen=True)
class Check:
    resource_type: ResourceType
    operation: AclOperation
    # The resource name from the request (None: the cluster); a None name skips the check.
    name: Callable[[Any], str | None] | None = None
    when: Callable[[Any, int], bool] | None = None  # (request, version) -> does this check apply?


def _field(attr: str) -> Callable[[Any], str | None]:
    return lambda request: getattr(request, attr, None)


def _cluster(operation: AclOperation) -> Check:
    return Check(ResourceType.CLUSTER, operation)


GROUP_READ = Check(Res.GROUP, Op.READ, _field("group_id"))
TXN_WRITE = Check(Res.TRANSACTIONAL_ID, Op.WRITE, _field("transactional_id"))

REQUEST_CHECKS: dict[int, tuple[Check, ...]] = {
    8: (GROUP_READ,),  # OffsetCommit (+ READ per topic in the handler)
    11: (GROUP_READ,),  # JoinGroup
    12: (GROUP_READ,),  # Heartbeat
    13: (GROUP_READ,),  # LeaveGroup
    14: (GROUP_READ,),  # SyncGroup
    22: (TXN_WRITE,),  # InitProducerId (idempotent producers: IDEMPOTENT_WRITE, see idempotent_write_allowed)
    24: (Check(Res.TRANSACTIONAL_ID, Op.WRITE, _field("v3_and_below_transactional_id"), lambda r, v: v < 4),
         Check(Res.CLUSTER, Op.CLUSTER_ACTION, None, lambda r, v: v >= 4)),  # AddPartitionsToTxn (v4+: brokers)
    25: (TXN_WRITE, GROUP_READ),  # AddOffsetsToTxn
    26: (TXN_WRITE,),  # EndTxn
    27: (_cluster(Op.CLUSTER_ACTION),),  # WriteTxnMarkers
    28: (TXN_WRITE, GROUP_READ),  # TxnOffsetCommit (+ READ per topic in the handler)
    29: (_cluster(Op.DESCRIBE),),  # DescribeAcls
    30: (_cluster(Op.ALTER),),  # CreateAcls
    31: (_cluster(Op.ALTER),),  # DeleteAcls
    35: (_cluster(Op.DESCRIBE),),  # DescribeLogDirs
    47: (Check(Res.GROUP, Op.DELETE, _field("group_id")),),  # OffsetDelete (+ READ per topic)
    48: (_cluster(Op.DESCRIBE_CONFIGS),),  # DescribeClientQuotas
    49: (_cluster(Op.ALTER_CONFIGS),),  # AlterClientQuotas
    50: (_cluster(Op.DESCRIBE),),  # DescribeUserScramCredentials
    51: (_cluster(Op.ALTER),),  # AlterUserScramCredentials
    68: (GROUP_READ,),  # ConsumerGroupHeartbeat
}

# Checked per topic/group/transactional id by their handlers (Kafka answers per item).
PER_RESOURCE = {
    0: "Produce: WRITE on each topic, WRITE on the transactional id",
    1: "Fetch: READ on each topic (followers: CLUSTER_ACTION)",
    2: "ListOffsets: DESCRIBE on each topic",
    3: "Metadata: DESCRIBE on each topic (others hidden); CREATE on cluster or topic to auto-create",
    9: "OffsetFetch: DESCRIBE on the group and on each topic",
    10: "FindCoordinator: DESCRIBE on each group / transactional id",
    15: "DescribeGroups: DESCRIBE on each group",
    16: "ListGroups: DESCRIBE on the cluster, else the groups the principal may DESCRIBE",
    19: "CreateTopics: CREATE on the cluster or on each topic",
    20: "DeleteTopics: DELETE on each topic",
    21: "DeleteRecords: DELETE on each topic",
    23: "OffsetForLeaderEpoch: DESCRIBE on each topic (followers: CLUSTER_ACTION)",
    24: "AddPartitionsToTxn: WRITE on each topic",
    28: "TxnOffsetCommit: READ on each topic",
    32: "DescribeConfigs: DESCRIBE_CONFIGS on the cluster or each topic",
    33: "AlterConfigs: ALTER_CONFIGS on the cluster or each topic",
    37: "CreatePartitions: ALTER on each topic",
    42: "DeleteGroups: DELETE on each group",
    43: "ElectLeaders: ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED per partition)",
    44: "IncrementalAlterConfigs: ALTER_CONFIGS on the cluster or each topic",
    45: "AlterPartitionReassignments: ALTER on the cluster (top level and per partition)",
    46: "ListPartitionReassignments: DESCRIBE on the cluster",
    61: "DescribeProducers: READ on each topic",
    65: "DescribeTransactions: DESCRIBE on each transactional id",
    66: "ListTransactions: the transactional ids the principal may DESCRIBE",
    69: "ConsumerGroupDescribe: DESCRIBE on each group",
}


def required(api_key: int, version: int, request: Any) -> list[tuple[ResourceType, AclOperation, str]]:
    """The (resource type, operation, name) a whole request needs, in the order Kafka checks them."""
    result = []
    for check in REQUEST_CHECKS.get(api_key, ()):
        if check.when is not None and not check.when(request, version):
            continue
        name = CLUSTER_NAME if check.name is None else check.name(request)
        if name is not None:
            result.append((check.resource_type, check.operation, name))
    return result


def error_response(api_key: int, request: Any, error: ErrorCode) -> Any:
    """The response refusing a whole request: its error code at the top, or on every item it names."""
    builder = _BUILDERS.get(api_key)
    if builder is not None:
        return builder(request, error)
    response = getattr(messages, api.APIS[api_key].name + "Response")()
    if hasattr(response, "error_code"):
        response.error_code = error
    return response


def _offset_commit(request: Any, error: ErrorCode) -> Any:
    r = messages.OffsetCommitResponse
    return r(topics=[r.OffsetCommitResponseTopic(name=t.name, topic_id=t.topic_id, partitions=[
        r.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=error) for p in t.partitions])
        for t in request.topics])


def _add_partitions_to_txn(request: Any, error: ErrorCode) -> Any:
    r = messages.AddPartitionsToTxnResponse
    if request.transactions:  # v4+: the broker form, refused as a whole
        return r(error_code=error)
    return r(results_by_topic_v3_and_below=[r.AddPartitionsToTxnTopicResult(name=t.name, results_by_partition=[
        r.AddPartitionsToTxnPartitionResult(partition_index=p, partition_error_code=error) for p in t.partitions])
        for t in request.v3_and_below_topics])


def _txn_offset_commit(request: Any, error: ErrorCode) -> Any:
    r = messages.TxnOffsetCommitResponse
    return r(topics=[r.TxnOffsetCommitResponseTopic(name=t.name, partitions=[
        r.TxnOffsetCommitResponsePartition(partition_index=p.partition_index, error_code=error)
        for p in t.partitions]) for t in request.topics])


def _create_acls(request: Any, error: ErrorCode) -> Any:
    r = messages.CreateAclsResponse
    return r(results=[r.AclCreationResult(error_code=error) for _ in request.creations])


def _delete_acls(request: Any, error: ErrorCode) -> Any:
    r = messages.DeleteAclsResponse
    return r(filter_results=[r.DeleteAclsFilterResult(error_code=error) for _ in request.filters])


def _alter_scram(request: Any, error: ErrorCode) -> Any:
    r = messages.AlterUserScramCredentialsResponse
    users = dict.fromkeys([d.name for d in request.deletions] + [u.name for u in request.upsertions])
    return r(results=[r.AlterUserScramCredentialsResult(user=u, error_code=error) for u in users])


def _alter_quotas(request: Any, error: ErrorCode) -> Any:
    r = messages.AlterClientQuotasResponse
    return r(entries=[r.EntryData(error_code=error, entity=[
        r.EntityData(entity_type=e.entity_type, entity_name=e.entity_name) for e in entry.entity])
        for entry in request.entries])


_BUILDERS: dict[int, Callable[[Any, ErrorCode], Any]] = {
    8: _offset_commit, 24: _add_partitions_to_txn, 28: _txn_offset_commit, 30: _create_acls, 31: _delete_acls, 49: _alter_quotas,
    51: _alter_scram,
}
