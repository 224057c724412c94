"""ElectLeaders (43): preferred (KIP-183) and unclean (KIP-460) leader elections.

In a cluster the election is a compare-and-set of the partition's state in etcd
(ClusterController.elect_leaders), with KRaft's per-partition answers (ReplicationControlManager.electLeader):
ELECTION_NOT_NEEDED when the preferred replica already leads (PREFERRED) or the partition has a leader
(UNCLEAN), PREFERRED_LEADER_NOT_AVAILABLE / ELIGIBLE_LEADERS_NOT_AVAILABLE when nobody eligible is alive.
A null partition list means every partition, and then the partitions that need no election are left out
of the answer, as Kafka does. On a single broker every partition has one replica that leads it: each
named partition answers ELECTION_NOT_NEEDED.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from moldau.cluster.election import ElectionType
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import CLUSTER_NAME, AclOperation, ResourceType

API_KEY = 43
Response = messages.ElectLeadersResponse

log = logging.getLogger(__name__)

# Kafka's Errors.*.message(): KRaft puts them in the response (ApiError.message() falls back to them).
MESSAGES = {
    ErrorCode.ELECTION_NOT_NEEDED: "Leader election not needed for topic partition.",
    ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE: "The preferred leader was not available.",
    ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE: "Eligible topic partition leaders are not available.",
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: "This server does not host this topic-partition.",
    ErrorCode.CLUSTER_AUTHORIZATION_FAILED: "Cluster authorization failed.",
    ErrorCode.INVALID_REQUEST: "Unknown election type.",
}


def _message(code: ErrorCode, topic: str, index: int, known_topics: Collection[str]) -> str | None:
    if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:  # KRaft's electLeader wording
        return f"No such partition as {topic}-{index}" if topic in known_topics else f"No such topic as {topic}"
    return MESSAGES.get(code) if code else None


def _response(results: dict[tuple[str, int], ErrorCode], error: ErrorCode = ErrorCode.NONE, *,
              known: Collection[str] = (), listed: Collection[str] = ()) -> Response:
    """`known`: the topics that exist; `listed`: topics answered even without results (a null request
    lists every topic, as KRaft does)."""
    by_topic: dict[str, list] = {t: [] for t in listed}
    for (topic, index), code in results.items():
        by_topic.setdefault(topic, []).append(Response.PartitionResult(
            partition_id=index, error_code=code, error_message=_message(code, topic, index, known)))
    return Response(throttle_time_ms=0, error_code=error, replica_election_results=[
        Response.ReplicaElectionResult(topic=t, partition_result=p) for t, p in by_topic.items()])


async def handle(conn, header, request: messages.ElectLeadersRequest) -> Response:
    wanted = None if request.topic_partitions is None else list(dict.fromkeys(
        (t.topic, p) for t in request.topic_partitions for p in t.partitions))
    if not conn.session.allowed(AclOperation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
        code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        return _response({tp: code for tp in wanted or []}, code)
    election_type = request.election_type if header.api_version >= 1 else ElectionType.PREFERRED
    if election_type not in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        return _response({tp: ErrorCode.INVALID_REQUEST for tp in wanted or []}, ErrorCode.INVALID_REQUEST)
    cluster = conn.broker.cluster
    if cluster is None or cluster.controller is None:
        results = _single_broker(conn.broker.replica_manager, wanted)
        known: Collection[str] = list(conn.broker.replica_manager.topics)
    else:
        results = await cluster.controller.elect_leaders(wanted, ElectionType(election_type))
        known = list(cluster.store.image.topics)
    if wanted is None:  # every partition: only those an election was needed for
        results = {tp: code for tp, code in results.items() if code != ErrorCode.ELECTION_NOT_NEEDED}
    elected = [tp for tp, code in results.items() if code == ErrorCode.NONE]
    if elected:
        log.info("%s leader election for %s", ElectionType(election_type).name.lower(), elected)
    return _response(results, known=known, listed=sorted(known) if wanted is None else ())


def _single_broker(manager, wanted: list[tuple[str, int]] | None) -> dict[tuple[str, int], ErrorCode]:
    """One replica per partition, leading it: nothing to elect (Kafka answers so for a 1-replica partition)."""
    if wanted is None:
        wanted = [(name, p.index) for name, topic in manager.topics.items() for p in topic.partitions]
    results = {}
    for topic, index in wanted:
        entry = manager.topics.get(topic)
        known = entry is not None and 0 <= index < len(entry.partitions)
        results[(topic, index)] = ErrorCode.ELECTION_NOT_NEEDED if known else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    return results
