"""Storage-layer throughput: Log.append_as_leader, then Log.read in 1 MiB fetches.

Appends batches of 100 records of 1 KiB (about 100 KiB per batch, as a producer with linger sends them)
until ~1 GiB is written or 10 s pass, then reads everything back with ``Log.read`` in 1 MiB fetches,
both as the broker's fetch path does it (``read`` only: the FileRegion would go to ``sendfile``) and with
the bytes copied out (``read`` + ``FileRegion.read_bytes``). No fsync is involved (Kafka's default
``flush.messages``), so the numbers are page-cache numbers.

    python bench/storage_bench.py [--bytes 1073741824] [--seconds 10] [--dir /tmp] [--codec 0]
        [--records-per-batch 100] [--segment-bytes 1073741824]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from moldau.protocol.records import Record, build_batch, read_batch_header
from moldau.storage import Log, LogConfig

RECORD_SIZE = 1024
RECORDS_PER_BATCH = 100
FETCH_BYTES = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=1 << 30, help="stop appending after this many bytes")
    parser.add_argument("--seconds", type=float, default=10.0, help="or after this many seconds")
    parser.add_argument("--dir", default=None, help="parent directory of the temporary log")
    parser.add_argument("--codec", type=int, default=0, help="0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd")
    parser.add_argument("--segment-bytes", type=int, default=LogConfig().segment_bytes)
    parser.add_argument("--records-per-batch", type=int, default=RECORDS_PER_BATCH)
    args = parser.parse_args()

    value = os.urandom(RECORD_SIZE // 2) * 2  # half random: compressible like real payloads
    now = time.time_ns() // 1_000_000
    batch = build_batch(
        [Record(i, now, None, value, []) for i in range(args.records_per_batch)], compression=args.codec
    )
    batch_size = len(batch)
    root = Path(tempfile.mkdtemp(prefix="moldau-bench-", dir=args.dir))
    try:
        # Baseline in the same run (these machines are noisy): plain os.write of the same batches.
        raw_path = root / "raw.bin"
        fd = os.open(raw_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        raw_written = 0
        start = time.perf_counter()
        deadline = start + args.seconds
        while raw_written < args.bytes and time.perf_counter() < deadline:
            os.write(fd, batch)
            raw_written += batch_size
        raw_s = time.perf_counter() - start
        os.close(fd)
        raw_path.unlink()
        print(f"{'os.write':10s} {raw_written / raw_s / 1e6:8.1f} MB/s  (baseline: the same bytes, no log)")

        log = Log.open(root / "bench-0", LogConfig(segment_bytes=args.segment_bytes))

        written = 0
        batches = 0
        start = time.perf_counter()
        deadline = start + args.seconds
        while written < args.bytes and (batches % 64 or time.perf_counter() < deadline):
            log.append_as_leader(batch, leader_epoch=0, now_ms=now)
            written += batch_size
            batches += 1
        append_s = time.perf_counter() - start
        log.update_high_watermark(log.log_end_offset)
        print(
            f"{'append':10s} {written / append_s / 1e6:8.1f} MB/s  {batches / append_s:9.0f} batches/s  "
            f"({written / 1e6:.0f} MB in {append_s:.2f} s, {batch_size} B batches, codec {args.codec}, "
            f"{len(log.segments)} segments)"
        )

        for copy in (False, True):
            offset, read_bytes, fetches = 0, 0, 0
            start = time.perf_counter()
            while offset < log.high_watermark:
                info = log.read(offset, FETCH_BYTES, max_offset=log.high_watermark)
                region = info.records
                assert region is not None, f"no data at offset {offset}"
                if copy:
                    data = region.read_bytes()
                    last_pos = region.size - batch_size
                    header = read_batch_header(data, last_pos)
                else:
                    tail = os.pread(region.file.fileno(), 61, region.position + region.size - batch_size)
                    header = read_batch_header(tail)
                offset = header.last_offset + 1
                read_bytes += region.size
                fetches += 1
            read_s = time.perf_counter() - start
            label = "read+copy" if copy else "read"
            print(
                f"{label:10s} {read_bytes / read_s / 1e6:8.1f} MB/s  {fetches / read_s:9.0f} fetches/s  "
                f"({read_bytes / 1e6:.0f} MB in {read_s:.2f} s)"
            )
        log.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
