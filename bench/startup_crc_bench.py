"""Startup cost of checking the active segment's tail CRCs after a clean shutdown (issue 9 item 3).

Creates ``--partitions`` logs in one log dir, appends ``--batches`` batches of about ``--batch-bytes``
to each, shuts the LogManager down cleanly, then times ``LogManager.startup`` (which opens every log)
``--runs`` times with the check, and as many times with it switched off, alternating. Page cache warm
(the files were just written), as after a restart on a broker host with free memory.

    python bench/startup_crc_bench.py [--partitions 1000] [--batches 20] [--batch-bytes 16384] [--runs 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from moldau.protocol.records import Record, build_batch
from moldau.storage import LogConfig, log_loader
from moldau.storage.log_manager import LogManager


def startup_seconds(log_dir: Path) -> float:
    manager = LogManager([log_dir], LogConfig())
    started = time.perf_counter()
    manager.startup()
    elapsed = time.perf_counter() - started
    manager.shutdown()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-bytes", type=int, default=16384)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    value = os.urandom(1024)
    records = max(args.batch_bytes // 1024, 1)
    batch = build_batch([Record(i, 1_700_000_000_000, None, value) for i in range(records)])
    root = Path(tempfile.mkdtemp(prefix="moldau-startup-", dir=args.dir))
    try:
        manager = LogManager([root], LogConfig())
        manager.startup()
        for p in range(args.partitions):
            log = manager.get_or_create_log("bench", p)
            for _ in range(args.batches):
                log.append_as_leader(batch, leader_epoch=0, now_ms=1_700_000_000_000)
        manager.shutdown()
        real_check = log_loader.first_corrupt_tail_batch
        with_check, without = [], []
        for _ in range(args.runs):
            log_loader.first_corrupt_tail_batch = real_check
            with_check.append(startup_seconds(root))
            log_loader.first_corrupt_tail_batch = lambda segment: None
            without.append(startup_seconds(root))
        log_loader.first_corrupt_tail_batch = real_check
        a, b = statistics.median(with_check), statistics.median(without)
        print(f"{args.partitions} partitions x {args.batches} batches of {len(batch)} B, clean shutdown, "
              f"median of {args.runs}:")
        print(f"  startup with the tail CRC check    {a * 1000:8.1f} ms")
        print(f"  startup without it                 {b * 1000:8.1f} ms")
        print(f"  cost                               {(a - b) * 1000:8.1f} ms ({(a - b) / b * 100:+.1f} %), "
              f"{(a - b) / args.partitions * 1e6:.0f} us per partition")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
