"""End-to-end latency probe (confluent-kafka), run as two processes by bench/clients.py.

  latency.py --bootstrap H:P --topic T consume --count N [--warmup S] [--timeout S]
      assigns partition 0 from offset 0 (no group membership, so no coordinator is involved),
      prints READY, then receives N records and prints one JSON line: percentiles in ms of
      (receive wall clock - producer wall clock stamped in the first 8 bytes of the value).
  latency.py --bootstrap H:P --topic T produce --count N --rate R [--size B]
      produces N records of B bytes at R records/s (acks=1, other settings librdkafka's defaults).

Default consumer settings otherwise (fetch.wait.max.ms=500, fetch.min.bytes=1). Both processes
use the same clock (CLOCK_REALTIME on one machine).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

STAMP = struct.Struct(">q")


def consume(args) -> int:
    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "moldau-bench-latency",
            "enable.auto.commit": False,
            **dict(args.X),
        }
    )
    c.assign([TopicPartition(args.topic, 0, 0)])
    settle = time.monotonic() + 1.0
    while time.monotonic() < settle:  # connect, fetch metadata, start fetching the empty log
        c.poll(0.1)
    print("READY", flush=True)
    lat_ns: list[int] = []
    first_stamp = None
    received = errors = 0
    deadline = time.monotonic() + args.timeout
    while received < args.count and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            errors += 1
            continue
        now = time.time_ns()
        stamp = STAMP.unpack_from(msg.value())[0]
        received += 1
        if first_stamp is None:
            first_stamp = stamp
        if stamp - first_stamp >= args.warmup * 1e9:
            lat_ns.append(now - stamp)
    c.close()
    lat_ns.sort()

    def pct(q: float) -> float | None:
        return round(lat_ns[min(len(lat_ns) - 1, int(q * len(lat_ns)))] / 1e6, 3) if lat_ns else None

    print(
        json.dumps(
            {
                "received": received,
                "expected": args.count,
                "measured": len(lat_ns),
                "errors": errors,
                "p50_ms": pct(0.50),
                "p90_ms": pct(0.90),
                "p99_ms": pct(0.99),
                "p999_ms": pct(0.999),
                "max_ms": round(lat_ns[-1] / 1e6, 3) if lat_ns else None,
                "mean_ms": round(sum(lat_ns) / len(lat_ns) / 1e6, 3) if lat_ns else None,
            }
        ),
        flush=True,
    )
    return 0 if received == args.count else 1


def produce(args) -> int:
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": 1, **dict(args.X)})
    pad = b"\0" * (args.size - STAMP.size)
    interval = 1.0 / args.rate
    t0 = time.monotonic()
    sent = 0
    while sent < args.count:
        due = t0 + sent * interval
        now = time.monotonic()
        if now < due:
            p.poll(0)
            time.sleep(min(due - now, 0.0005))
            continue
        while sent < args.count and t0 + sent * interval <= now:
            p.produce(args.topic, STAMP.pack(time.time_ns()) + pad, partition=0)
            sent += 1
        p.poll(0)
    left = p.flush(30)
    elapsed = time.monotonic() - t0
    print(f"produced {sent} in {elapsed:.2f}s ({sent / elapsed:.0f}/s), {left} undelivered", flush=True)
    return 0 if left == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument(
        "-X",
        action="append",
        default=[],
        type=lambda kv: kv.split("=", 1),
        help="extra librdkafka property key=value (for experiments; the benchmark sets none)",
    )
    sub = ap.add_subparsers(dest="role", required=True)
    c = sub.add_parser("consume")
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--warmup", type=float, default=1.0, help="seconds of records left out of the stats")
    c.add_argument("--timeout", type=float, default=120.0)
    p = sub.add_parser("produce")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()
    return consume(args) if args.role == "consume" else produce(args)


if __name__ == "__main__":
    sys.exit(main())
