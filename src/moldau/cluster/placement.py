"""Replica placement: which brokers hold each partition's replicas, balanced and rack-aware.

Kafka's ZooKeeper-mode algorithm (AdminUtils.assignReplicasToBrokers, KIP-36 for racks), which is what the
design follows; pure functions, randomness injected.

- Without racks: the first replica of partition p is broker (p + start) mod n over the brokers sorted by
  id; the others follow at a shift that grows by one every n partitions, so that leaders and followers
  both spread evenly.
- With racks: the same walk over a rack-alternated broker list (rack a, rack b, rack c, a, b, ...), taking
  the next broker whose rack holds no replica yet, until every rack holds one.

The errors are KRaft's (ReplicationControlManager / StripedReplicaPlacer), which clients show today.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from moldau.cluster.state import BrokerRegistration
from moldau.errors import ApiError
from moldau.protocol.errors import ErrorCode

Assignment = dict[int, tuple[int, ...]]  # partition index -> replicas, preferred leader first


def _check(num_partitions: int, replication_factor: int, num_brokers: int) -> None:
    if num_partitions <= 0:
        raise ApiError(ErrorCode.INVALID_PARTITIONS, "Number of partitions was set to an invalid non-positive value.")
    if replication_factor <= 0:
        raise ApiError(ErrorCode.INVALID_REPLICATION_FACTOR,
                       f"Invalid replication factor {replication_factor}: the replication factor must be positive.")
    if replication_factor > num_brokers:
        raise ApiError(ErrorCode.INVALID_REPLICATION_FACTOR,
                       f"Unable to replicate the partition {replication_factor} time(s): The target replication "
                       f"factor of {replication_factor} cannot be reached because only {num_brokers} broker(s) "
                       f"are registered.")


def _replica_index(first: int, shift: int, j: int, n: int) -> int:
    return (first + 1 + (shift + j) % (n - 1)) % n


def _rack_alternated(brokers: Sequence[BrokerRegistration]) -> list[int]:
    by_rack: dict[str, list[int]] = {}
    for broker in sorted(brokers, key=lambda b: b.broker_id):
        by_rack.setdefault(broker.rack or "", []).append(broker.broker_id)
    racks = sorted(by_rack)
    result: list[int] = []
    depth = 0
    while len(result) < len(brokers):
        for rack in racks:
            if depth < len(by_rack[rack]):
                result.append(by_rack[rack][depth])
        depth += 1
    return result


def assign_replicas(brokers: Sequence[BrokerRegistration], num_partitions: int, replication_factor: int, *,
                    start_index: int | None = None, first_partition: int = 0,
                    rng: random.Random | None = None) -> Assignment:
    """Replicas for partitions first_partition .. first_partition + num_partitions - 1 on `brokers`.

    `start_index` fixes both the first broker and the shift (Kafka's fixedStartIndex); otherwise they are
    random, so that topics created one after another do not all lead on the same broker. Rack-aware when
    every broker has `rack`; a mix of racked and rackless brokers is refused, as Kafka refuses it.
    """
    _check(num_partitions, replication_factor, len(brokers))
    racks = {b.broker_id: b.rack for b in brokers}
    with_rack = [b for b in brokers if b.rack]
    if with_rack and len(with_rack) != len(brokers):
        raise ApiError(ErrorCode.INVALID_REPLICATION_FACTOR,
                       "Not all brokers have rack information for replica rack aware assignment.")
    ordered = _rack_alternated(brokers) if with_rack else sorted(racks)
    n = len(ordered)
    rng = rng or random.Random()
    start = start_index if start_index is not None else rng.randrange(n)
    shift = start_index if start_index is not None else rng.randrange(n)
    num_racks = len(set(racks.values())) if with_rack else 1
    assignment: Assignment = {}
    for partition in range(first_partition, first_partition + num_partitions):
        if partition > 0 and partition % n == 0:
            shift += 1
        first = (partition + start) % n
        replicas = [ordered[first]]
        if not with_rack:
            replicas += [ordered[_replica_index(first, shift, j, n)] for j in range(replication_factor - 1)]
        else:
            used_racks, k = {racks[ordered[first]]}, 0
            while len(replicas) < replication_factor:
                broker = ordered[_replica_index(first, shift * num_racks, k, n)]
                k += 1
                # A new rack while some rack holds none; a new broker while some broker holds none.
                if (racks[broker] not in used_racks or len(used_racks) == num_racks) \
                        and (broker not in replicas or len(replicas) == n):
                    replicas.append(broker)
                    used_racks.add(racks[broker])
        assignment[partition] = tuple(replicas)
    return assignment


def assign_added_partitions(brokers: Sequence[BrokerRegistration], existing: Assignment, count: int,
                            replication_factor: int | None = None) -> Assignment:
    """Replicas for `count` partitions added to a topic (CreatePartitions), continuing its pattern.

    As Kafka's AdminZkClient.createPartitions: the walk resumes at the partition count, starting from the
    broker that holds partition 0's preferred replica, with the topic's replication factor."""
    if count <= 0:
        raise ApiError(ErrorCode.INVALID_PARTITIONS, "Number of partitions to add must be positive.")
    rf = replication_factor if replication_factor is not None else len(existing.get(0, ())) or 1
    with_rack = any(b.rack for b in brokers)
    ordered = _rack_alternated(brokers) if with_rack else sorted(b.broker_id for b in brokers)
    leader0 = existing[0][0] if existing.get(0) else None
    start = next((i for i, b in enumerate(ordered) if leader0 is not None and b >= leader0), 0) \
        if not with_rack else (ordered.index(leader0) if leader0 in ordered else 0)
    return assign_replicas(brokers, count, rf, start_index=start, first_partition=len(existing))
