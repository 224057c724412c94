"""`moldau produce`: stdin → topic, one record per line, sent as lines arrive.

Like Kafka's producer, records wait at most `linger.ms` for more to batch with (Kafka 4.x's default is 5 ms,
KIP-1030), and a batch goes out as soon as it is full. So `tail -f app.log | moldau produce logs` delivers
each line within milliseconds, while a file is sent in full batches.
"""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Annotated

import typer

from moldau.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, CommandConfig, connect, fail, parse_pairs
from moldau.cli.progress import RecordProgress, watched
from moldau.client.client import Client
from moldau.client.partitioner import partition_for_key
from moldau.protocol.records import Record, build_batch

COMPRESSION = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
MAX_BATCH_BYTES = 512 * 1024  # well under the broker's message.max.bytes (1 MiB by default)
READ_SIZE = 1 << 16


class Batcher:
    """Records per partition until a batch is full or the oldest record has lingered `linger_s`."""

    def __init__(self, client: Client, topic: str, acks: int, compression: int, batch_size: int,
                 linger_s: float) -> None:
        self.client, self.topic, self.acks, self.compression = client, topic, acks, compression
        self.batch_size, self.linger_s = batch_size, linger_s
        self.pending: dict[int, list[Record]] = {}
        self.pending_bytes: dict[int, int] = {}
        self.deadline: float | None = None  # when the oldest unsent record must go
        self.records_sent = 0

    def add(self, partition: int, record: Record) -> None:
        self.pending.setdefault(partition, []).append(record)
        size = self.pending_bytes.get(partition, 0) + len(record.value or b"") + len(record.key or b"")
        self.pending_bytes[partition] = size
        if self.deadline is None:
            self.deadline = time.monotonic() + self.linger_s
        if len(self.pending[partition]) >= self.batch_size or size >= MAX_BATCH_BYTES:
            self._send(partition)

    def wait_s(self) -> float | None:
        """How long input may be waited for before the lingering records are due; None: nothing pending."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def flush_due(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.flush()

    def flush(self) -> None:
        for partition in list(self.pending):
            self._send(partition)
        self.deadline = None

    def _send(self, partition: int) -> None:
        records = self.pending.pop(partition, [])
        self.pending_bytes.pop(partition, None)
        if records:
            self.client.produce(self.topic, partition, build_batch(records, compression=self.compression), self.acks)
            self.records_sent += len(records)
        if not self.pending:
            self.deadline = None


def read_lines(fd: int, batcher: Batcher) -> bytes | None:
    """Wait for input no longer than the batcher allows; the bytes read ('' at end of input), or None if
    nothing arrived in time."""
    ready, _, _ = select.select([fd], [], [], batcher.wait_s())
    if not ready:
        return None
    return os.read(fd, READ_SIZE)


def produce(
    topic: str,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
    key_separator: Annotated[str | None, typer.Option(help="split each line into key and value")] = None,
    header: Annotated[list[str] | None, typer.Option(help="key=value header on every record")] = None,
    partition: Annotated[int | None, typer.Option(help="default: by key hash, else round robin")] = None,
    acks: Annotated[int, typer.Option(help="0, 1 or -1")] = -1,
    compression: Annotated[str, typer.Option(help="none, gzip, snappy, lz4, zstd")] = "none",
    batch_size: Annotated[int, typer.Option(help="records per batch at most")] = 500,
    linger_ms: Annotated[int, typer.Option(help="how long a line may wait for more to batch with")] = 5,
) -> None:
    if compression not in COMPRESSION:
        fail(f"unknown compression {compression!r}; use one of {', '.join(COMPRESSION)}", 2)
    headers: list[tuple[str, bytes | None]] = [(k, v.encode()) for k, v in parse_pairs(header, "header").items()]
    separator = key_separator.encode() if key_separator is not None else None
    fd = sys.stdin.fileno()
    total = os.fstat(fd).st_size - os.lseek(fd, 0, os.SEEK_CUR) if watched(sys.stdin) else None
    with connect(bootstrap_server, command_config) as client, RecordProgress(
            f"producing to {topic}", enabled=total is not None, total=total, in_bytes=True) as progress:
        # Like Kafka's producers: an unknown topic is created if the broker allows auto-creation.
        partitions = client.partitions_of(topic, auto_create=True)
        batcher = Batcher(client, topic, acks, COMPRESSION[compression], max(batch_size, 1), linger_ms / 1000)
        try:
            sent = _send_lines(fd, batcher, partitions, partition, separator, headers, progress)
        except KeyboardInterrupt:  # Ctrl-C ends `tail -f | moldau produce`: what was read is still sent
            batcher.flush()
            typer.echo(f"Produced {batcher.records_sent} record(s) to {topic}.", err=True)
            raise typer.Exit(130) from None
        batcher.flush()
    typer.echo(f"Produced {sent} record(s) to {topic}.", err=True)


def _send_lines(fd: int, batcher: Batcher, partitions: list[int], partition: int | None, separator: bytes | None,
                headers: list[tuple[str, bytes | None]], progress: RecordProgress) -> int:
    """Read lines until end of input, handing each to the batcher as a record; the number of lines."""
    sent = 0
    round_robin = 0
    rest = b""
    while True:
        chunk = read_lines(fd, batcher)
        if chunk is None:
            batcher.flush_due()
            continue
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop() if chunk else b""  # at end of input, a last line without "\n" is a record too
        if not chunk and lines == [b""]:
            lines = []
        for line in lines:
            if line.endswith(b"\r"):  # CRLF input: the line ends before "\r\n", as for Kafka's console producer
                line = line[:-1]
            key: bytes | None = None
            value = line
            if separator is not None and separator in line:
                key, value = line.split(separator, 1)
            if partition is not None:
                target = partition
            elif key is not None:
                target = partitions[partition_for_key(key, len(partitions))]
            else:
                target = partitions[round_robin % len(partitions)]
                round_robin += 1
            batcher.add(target, Record(0, int(time.time() * 1000), key, value, headers))
        sent += len(lines)
        progress.advance(len(lines), len(chunk))
        if not chunk:
            break
        batcher.flush_due()
    return sent
