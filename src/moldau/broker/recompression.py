"""Topic-level `compression.type`: rewrite produced batches whose codec differs from the topic's.

Kafka's LogValidator recompresses when a topic's compression.type is a codec (not "producer") and a
batch uses another one. That means decoding the records, so only such topics pay for it; with the
default "producer" the batch bytes stay untouched (DESIGN §2.3, zero-copy).
"""

from __future__ import annotations

from moldau.protocol.records import build_batch, decode_batch, validate_produce_batches

PRODUCER = "producer"
CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def recompress(records: bytes | memoryview, compression_type: str, max_message_bytes: int) -> bytes | memoryview:
    """`records` with every non-control batch in the codec `compression_type`; unchanged if already so.

    Raises InvalidRecordError (with Kafka's error code) for batches the broker would refuse anyway.
    """
    target = CODECS[compression_type]
    batches = validate_produce_batches(records, max_message_bytes)
    if all(header.compression == target or header.is_control for _, header in batches):
        return records
    out = bytearray()
    view = memoryview(records)
    for pos, header in batches:
        end = pos + header.size_in_bytes
        if header.compression == target or header.is_control:
            out += view[pos:end]
            continue
        out += build_batch(
            decode_batch(view, pos),
            compression=target,
            timestamp_type=header.timestamp_type,
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
            is_transactional=header.is_transactional,
            partition_leader_epoch=header.partition_leader_epoch,
        )
    return bytes(out)
