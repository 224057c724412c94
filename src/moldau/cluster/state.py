"""The cluster's shared vocabulary: registered brokers and the state of each partition's replicas.

These are the values the metadata store keeps (etcd in a cluster, as Kafka's ZooKeeper mode kept
`/brokers/ids/<id>` and `/brokers/topics/<t>/partitions/<p>/state`) and that brokers act on. They are
plain, immutable data with a JSON form, so that cluster/ and broker/ share them without importing each
other's machinery.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

NO_LEADER = -1


@dataclass(frozen=True, slots=True)
class Endpoint:
    listener: str  # "PLAINTEXT", "SASL_SSL", ...
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    """A live broker, as Kafka's BrokerRegistration: stored under the broker's lease, gone when it dies."""

    broker_id: int
    endpoints: tuple[Endpoint, ...]
    rack: str | None = None
    # Bumped by every start of the broker (Kafka's broker epoch), so a restarted broker is told apart.
    epoch: int = 0

    def endpoint(self, listener: str) -> Endpoint | None:
        for endpoint in self.endpoints:
            if endpoint.listener == listener:
                return endpoint
        return None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> BrokerRegistration:
        data = json.loads(raw)
        return cls(broker_id=int(data["broker_id"]), rack=data.get("rack"), epoch=int(data.get("epoch", 0)),
                   endpoints=tuple(Endpoint(e["listener"], e["host"], int(e["port"])) for e in data["endpoints"]))


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Kafka's PartitionRegistration (KRaft) / LeaderAndIsr (ZooKeeper mode).

    - `replicas`: the assigned replicas, preferred leader first.
    - `isr`: the in-sync replicas; only they may become leader (unless unclean election is enabled).
    - `leader`: a broker id, or NO_LEADER when no ISR member is alive (the partition is offline).
    - `leader_epoch`: bumped on every leader change; fences zombie leaders and stale fetches (KIP-101/320).
    - `partition_epoch`: bumped on every change of any field; a writer proposes a change for the epoch it
      saw and the store refuses it when another change came first (KIP-497's AlterPartition fencing).
    - `adding` / `removing`: replicas being moved in and out by a reassignment (KIP-455).
    """

    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int = 0
    partition_epoch: int = 0
    adding: tuple[int, ...] = field(default=())
    removing: tuple[int, ...] = field(default=())

    @property
    def online(self) -> bool:
        return self.leader != NO_LEADER

    def with_changes(self, **changes: Any) -> PartitionState:
        """A successor state: partition_epoch + 1, and leader_epoch + 1 when the leader changes."""
        new = replace(self, **changes)
        leader_epoch = self.leader_epoch + 1 if new.leader != self.leader else new.leader_epoch
        return replace(new, leader_epoch=leader_epoch, partition_epoch=self.partition_epoch + 1)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> PartitionState:
        data = json.loads(raw)
        return cls(replicas=tuple(data["replicas"]), isr=tuple(data["isr"]), leader=int(data["leader"]),
                   leader_epoch=int(data["leader_epoch"]), partition_epoch=int(data["partition_epoch"]),
                   adding=tuple(data.get("adding", ())), removing=tuple(data.get("removing", ())))
