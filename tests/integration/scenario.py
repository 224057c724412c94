"""The produce/consume scenario every client is checked against, in client-neutral terms."""

from __future__ import annotations

from dataclasses import dataclass

NUM_PARTITIONS = 3
NUM_RECORDS = 120
KEYS = [f"key-{i}" for i in range(12)]
BASE_TIMESTAMP_MS = 1_700_000_000_000
COMPRESSIONS = ["none", "gzip", "snappy", "lz4", "zstd"]


@dataclass(frozen=True, slots=True)
class Sent:
    key: str
    value: str
    timestamp: int
    header: str


def records_to_send() -> list[Sent]:
    """Keyed records with headers and increasing explicit timestamps (one second apart)."""
    return [
        Sent(KEYS[i % len(KEYS)], f"value-{i}", BASE_TIMESTAMP_MS + i * 1000, f"h-{i}")
        for i in range(NUM_RECORDS)
    ]


@dataclass(frozen=True, slots=True)
class Received:
    partition: int
    offset: int
    key: str
    value: str
    timestamp: int
    header: str


def check_received(sent: list[Sent], received: list[Received]) -> None:
    """Everything arrived once; one key stays in one partition; offsets are dense and ordered per partition."""
    assert sorted(r.value for r in received) == sorted(s.value for s in sent)
    by_value = {s.value: s for s in sent}
    partitions_of_key: dict[str, set[int]] = {}
    for r in received:
        original = by_value[r.value]
        assert (r.key, r.timestamp, r.header) == (original.key, original.timestamp, original.header)
        partitions_of_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(ps) == 1 for ps in partitions_of_key.values()), partitions_of_key
    for p in {r.partition for r in received}:
        offsets = [r.offset for r in received if r.partition == p]
        assert offsets == list(range(len(offsets))), f"partition {p} offsets {offsets[:10]}..."
        values = [int(r.value.split("-")[1]) for r in received if r.partition == p]
        assert values == sorted(values), f"partition {p} out of order"
