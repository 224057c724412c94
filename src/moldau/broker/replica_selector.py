"""Fetch from the closest replica (KIP-392): which replica a consumer should read a partition from.

With `replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector`, the leader answers a
consumer's Fetch (v11+, which carries the client's `client.rack`) with `preferred_read_replica` when an
in-sync follower in the client's rack has the fetch offset, and the client reads from that follower from
then on (until its metadata max age, or an error, sends it back to the leader). Followers serve such
consumers up to their high watermark. Kafka's ReplicaManager.findPreferredReadReplica and
RackAwareReplicaSelector decide as `preferred_read_replica` does below.
"""

from __future__ import annotations

from collections.abc import Mapping

from moldau.broker.partition import Partition

RACK_AWARE = "org.apache.kafka.common.replica.RackAwareReplicaSelector"


def preferred_read_replica(partition: Partition, fetch_offset: int, client_rack: str,
                           racks: Mapping[int, str | None], now_ms: int) -> int | None:
    """The follower `client_rack`'s consumer should fetch from, or None to keep reading from this leader.

    Candidates are the in-sync followers whose log has `fetch_offset` (a lagging one would stall the
    consumer); among those in the client's rack, the furthest ahead, then the most recently caught up.
    The leader itself wins when it is in the client's rack, or when no follower there qualifies."""
    if not client_rack or racks.get(partition.node_id) == client_rack or partition.state is None:
        return None
    best: tuple[int, int, int] | None = None  # (log end offset, -time since caught up, broker id)
    for broker_id in partition.state.isr:
        follower = partition.followers.get(broker_id)
        if follower is None or broker_id == partition.node_id or racks.get(broker_id) != client_rack:
            continue
        if follower.log_end_offset < fetch_offset:
            continue
        candidate = (follower.log_end_offset, -(now_ms - follower.last_caught_up_time_ms), broker_id)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return None if best is None else best[2]
