"""Log compaction throughput, and how long the cleaner thread stalls an event loop running beside it.

    python bench/compaction_bench.py --records 1000000 --keys 10000 --codec zstd

Writes a compacted log (``--batch`` records per batch, ``--value-size`` byte values, every
``--tombstone-every``-th record a tombstone) in a temporary directory, rolls it, then runs one clean on
a :class:`LogCleaner` thread while an asyncio loop on the main thread ticks every millisecond and records
the largest gap between ticks (what a produce or fetch would wait for the GIL). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from moldau.protocol.records import (
    COMPRESSION_GZIP,
    COMPRESSION_LZ4,
    COMPRESSION_NONE,
    COMPRESSION_SNAPPY,
    COMPRESSION_ZSTD,
    Record,
    build_batch,
)
from moldau.storage.config import LogConfig
from moldau.storage.log import Log
from moldau.storage.log_cleaner import CleanerConfig, LogCleaner

CODECS = {"none": COMPRESSION_NONE, "gzip": COMPRESSION_GZIP, "snappy": COMPRESSION_SNAPPY,
          "lz4": COMPRESSION_LZ4, "zstd": COMPRESSION_ZSTD}


def write_log(log: Log, records: int, keys: int, batch: int, value_size: int, codec: int,
              tombstone_every: int, now_ms: int) -> None:
    pool = random.Random(1).randbytes(1 << 16).hex().encode()  # values compress about as well as hex text
    pad_size = max(value_size - 12, 0)
    for base in range(0, records, batch):
        batch_records = []
        for i in range(base, min(base + batch, records)):
            start = (i * 7919) % (len(pool) - pad_size)
            pad = pool[start : start + pad_size]
            value = None if tombstone_every and i % tombstone_every == 0 else b"%012d" % i + pad
            batch_records.append(Record(i, now_ms, b"key-%06d" % (i % keys), value))
        log.append_as_leader(build_batch(batch_records, compression=codec), leader_epoch=0, now_ms=now_ms)
    log.roll()
    log.update_high_watermark(log.log_end_offset)


async def tick_for(seconds: float) -> float:
    """The largest gap between 1 ms ticks of an idle loop: the baseline the stall is compared with."""
    max_gap, end = 0.0, time.perf_counter() + seconds
    last = time.perf_counter()
    while last < end:
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        max_gap, last = max(max_gap, now - last), now
    return max_gap


async def clean_while_ticking(cleaner: LogCleaner) -> tuple[object, float, int]:
    """Run one clean on a thread; meanwhile tick the loop every 1 ms and return the largest gap."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def run() -> None:
        stats = cleaner.clean_once()
        loop.call_soon_threadsafe(done.set_result, stats)

    threading.Thread(target=run, name="bench-cleaner").start()
    max_gap, ticks = 0.0, 0
    last = time.perf_counter()
    while not done.done():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        max_gap, last, ticks = max(max_gap, now - last), now, ticks + 1
    return done.result(), max_gap, ticks


def produce_latencies(bootstrap: str, topic: str, until: Callable[[], bool], minimum: int = 200) -> list[float]:
    """Round-trip times (ms) of single acks=1 produces, one after another, until ``until()``."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1})
    producer.produce(topic, key=b"warmup", value=b"x")
    producer.flush(10)
    samples: list[float] = []
    while len(samples) < minimum or not until():
        started = time.perf_counter()
        producer.produce(topic, key=b"k", value=b"v" * 100)
        producer.flush(10)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"n": len(ordered), "p50_ms": round(ordered[len(ordered) // 2], 2),
            "p99_ms": round(ordered[int(len(ordered) * 0.99)], 2), "max_ms": round(ordered[-1], 2)}


def broker_latency(args: argparse.Namespace) -> dict[str, object]:
    """Produce latency to an in-process broker: idle, and while its cleaner thread cleans a big log."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from moldau.testing import running_broker

    with running_broker(log_cleaner_backoff_ms=3_600_000) as embedded:
        bootstrap = embedded.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topics = [NewTopic("compacted", 1, 1, config={"cleanup.policy": "compact"}), NewTopic("latency", 1, 1)]
        for future in admin.create_topics(topics).values():
            future.result(30)
        log = embedded.broker.log_manager.get_log("compacted", 0)
        write_log(log, args.records, args.keys, args.batch, args.value_size, CODECS[args.codec],
                  args.tombstone_every, time.time_ns() // 1_000_000)
        cleaner = embedded.broker.log_cleaner
        idle = produce_latencies(bootstrap, "latency", lambda: True)
        cleans = cleaner.cleans
        cleaner.wakeup()
        started = time.perf_counter()
        busy = produce_latencies(bootstrap, "latency", lambda: cleaner.cleans > cleans)
        return {"broker_clean_s": round(time.perf_counter() - started, 2),
                "produce_idle": summary(idle), "produce_while_cleaning": summary(busy)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--codec", choices=sorted(CODECS), default="zstd")
    parser.add_argument("--tombstone-every", type=int, default=97)
    parser.add_argument("--segment-bytes", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--broker", action="store_true",
                        help="also measure produce latency to an in-process broker while it cleans")
    args = parser.parse_args()
    now_ms = time.time_ns() // 1_000_000
    with tempfile.TemporaryDirectory(prefix="moldau-compaction-bench-") as tmp:
        config = LogConfig(cleanup_policy="compact", segment_bytes=args.segment_bytes, file_delete_delay_ms=0)
        log = Log.open(Path(tmp) / "bench-0", config)
        started = time.perf_counter()
        write_log(log, args.records, args.keys, args.batch, args.value_size, CODECS[args.codec],
                  args.tombstone_every, now_ms)
        write_s = time.perf_counter() - started
        size_before = log.size_in_bytes
        cleaner = LogCleaner(CleanerConfig(), [Path(tmp)], lambda: [log])
        stats, max_gap, ticks = asyncio.run(clean_while_ticking(cleaner))
        baseline_gap = asyncio.run(tick_for(min(stats.elapsed_s, 5.0)))  # type: ignore[attr-defined]
        assert stats is not None, "the log was not cleaned"
        elapsed = stats.elapsed_s  # type: ignore[attr-defined]
        result = {
            "records": args.records, "keys": args.keys, "codec": args.codec, "batch": args.batch,
            "value_size": args.value_size, "write_s": round(write_s, 2),
            "log_mb_before": round(size_before / 2**20, 2), "log_mb_after": round(log.size_in_bytes / 2**20, 3),
            "clean_s": round(elapsed, 2),
            "map_s": round(stats.map_done_s - stats.start_s, 2),  # type: ignore[attr-defined]
            "mb_per_s": round(size_before / 2**20 / elapsed, 2),
            "records_per_s": round(args.records / elapsed),
            "records_written": stats.messages_written,  # type: ignore[attr-defined]
            "loop_max_gap_ms": round(max_gap * 1000, 2), "loop_ticks": ticks,
            "idle_loop_max_gap_ms": round(baseline_gap * 1000, 2),
        }
        log.close()
    if args.broker:
        result |= broker_latency(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
