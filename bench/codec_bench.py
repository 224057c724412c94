"""Micro benchmark of the protocol codec's hot paths.

    python bench/codec_bench.py      (with moldau installed, or PYTHONPATH=src)

- encode_response of a FetchResponse with 10 partitions (1 KiB of records each, as bytes and as file
  regions), at v12 (flexible, topic names) and v11 (not flexible);
- decode_request_header + decode_request of a ProduceRequest (1 topic, 3 partitions of 16 KiB), at
  v9 (flexible) and v8.

kio, the test oracle, is timed on the same messages for comparison when it is installed.
Prints operations per second, best of 5 runs.
"""

from __future__ import annotations

import io
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from moldau.protocol import messages as m
from moldau.protocol.api import decode_request, decode_request_header, encode_request, encode_response


class Region:
    """Stands in for a file region (sendfile arguments): only ``size`` is read by the codec."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


def fetch_response(records: object) -> m.FetchResponse:
    fr = m.FetchResponse
    partitions = [
        fr.PartitionData(
            partition_index=i,
            high_watermark=1000 + i,
            last_stable_offset=1000 + i,
            log_start_offset=0,
            records=records,
        )
        for i in range(10)
    ]
    return fr(
        responses=[fr.FetchableTopicResponse(topic="orders", topic_id=uuid.uuid4(), partitions=partitions)]
    )


def produce_request() -> m.ProduceRequest:
    pr = m.ProduceRequest
    data = [pr.PartitionProduceData(index=i, records=bytes(16384)) for i in range(3)]
    return pr(acks=-1, timeout_ms=30000, topic_data=[pr.TopicProduceData(name="orders", partition_data=data)])


def rate(fn: Callable[[], object], seconds: float = 0.4) -> float:
    best = 0.0
    for _ in range(5):
        n = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(100):
                fn()
            n += 100
        best = max(best, n / elapsed)
    return best


def main() -> None:
    results: list[tuple[str, float]] = []
    for version in (12, 11):
        body = fetch_response(bytes(1024))
        results.append(
            (
                f"encode FetchResponse v{version}, 10 partitions x 1 KiB bytes",
                rate(lambda body=body, v=version: encode_response(1, v, 1, body)),
            )
        )
        body = fetch_response(Region(1024))
        results.append(
            (
                f"encode FetchResponse v{version}, 10 partitions x file region",
                rate(lambda body=body, v=version: encode_response(1, v, 1, body)),
            )
        )
    for version in (9, 8):
        frame = encode_request(0, version, 1, "bench-client", produce_request())[4:]

        def decode(frame: bytes = frame) -> object:
            header, offset = decode_request_header(frame)
            return decode_request(header.api_key, header.api_version, frame, offset)

        results.append((f"decode ProduceRequest v{version} (header + body), 3 partitions", rate(decode)))
    results += kio_results()
    width = max(len(name) for name, _ in results)
    for name, ops in results:
        print(f"{name:<{width}}  {ops:>10,.0f} ops/s")


def kio_results() -> list[tuple[str, float]]:
    """The same two messages through kio's codec, when kio (a test dependency) is installed."""
    try:
        from kio.schema.fetch.v12.response import FetchResponse
        from kio.schema.produce.v9.request import ProduceRequest
        from kio.serial import entity_reader, entity_writer
    except ImportError:
        return []
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.protocol
    from moldau.protocol.api import encode_message
    from moldau.protocol.schema import all_specs
    from tests.protocol.protocol_oracle import to_kio

    spec = all_specs()["FetchResponse"]
    kobj = to_kio(fetch_response(bytes(1024)), spec, spec.root, 12, FetchResponse)
    write = entity_writer(FetchResponse)

    def kio_encode() -> bytes:
        buf = io.BytesIO()
        write(buf, kobj)
        return buf.getvalue()

    body = encode_message("ProduceRequest", 9, produce_request())
    read = entity_reader(ProduceRequest)
    return [
        ("kio: encode FetchResponse v12 body, 10 partitions x 1 KiB", rate(kio_encode)),
        ("kio: decode ProduceRequest v9 body, 3 partitions", rate(lambda: read(body, 0))),
    ]


if __name__ == "__main__":
    main()
