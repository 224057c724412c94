"""`moldau produce` (stdin → topic) and `moldau consume` (topic → stdout)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Annotated

import typer

from moldau.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, CommandConfig, connect, parse_pairs
from moldau.client.partitioner import partition_for_key
from moldau.protocol.records import Record, build_batch, decode_batch, iter_batches

COMPRESSION = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
EARLIEST, LATEST = -2, -1


def produce(
    topic: str,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
    key_separator: Annotated[str | None, typer.Option(help="split each line into key and value")] = None,
    header: Annotated[list[str] | None, typer.Option(help="key=value header on every record")] = None,
    partition: Annotated[int | None, typer.Option(help="default: by key hash, else round robin")] = None,
    acks: Annotated[int, typer.Option(help="0, 1 or -1")] = -1,
    compression: Annotated[str, typer.Option(help="none, gzip, snappy, lz4, zstd")] = "none",
    batch_size: Annotated[int, typer.Option(help="records per batch")] = 500,
) -> None:
    if compression not in COMPRESSION:
        typer.echo(f"error: unknown compression {compression!r}; use one of {', '.join(COMPRESSION)}", err=True)
        raise typer.Exit(2)
    headers = [(k, v.encode()) for k, v in parse_pairs(header, "header").items()]
    with connect(bootstrap_server, command_config) as client:
        # Like Kafka's producers: an unknown topic is created if the broker allows auto-creation.
        partitions = client.partitions_of(topic, auto_create=True)
        pending: dict[int, list[Record]] = {}
        sent = 0
        round_robin = 0

        def flush(p: int) -> None:
            records = pending.pop(p, [])
            if records:
                client.produce(topic, p, build_batch(records, compression=COMPRESSION[compression]), acks)

        for line in sys.stdin:
            line = line.rstrip("\n")
            key: bytes | None = None
            value = line
            if key_separator is not None and key_separator in line:
                raw_key, value = line.split(key_separator, 1)
                key = raw_key.encode()
            if partition is not None:
                target = partition
            elif key is not None:
                target = partitions[partition_for_key(key, len(partitions))]
            else:
                target = partitions[round_robin % len(partitions)]
                round_robin += 1
            now = int(time.time() * 1000)
            pending.setdefault(target, []).append(Record(0, now, key, value.encode(), headers))
            sent += 1
            if len(pending[target]) >= batch_size:
                flush(target)
        for p in list(pending):
            flush(p)
    typer.echo(f"Produced {sent} record(s) to {topic}.", err=True)


def _parse_timestamp(text: str) -> int:
    if text.lstrip("-").isdigit():
        return int(text)
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def consume(
    topic: str,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
    partition: Annotated[int | None, typer.Option(help="default: all partitions")] = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning")] = False,
    offset: Annotated[int | None, typer.Option(help="start offset (with --partition or for all)")] = None,
    timestamp: Annotated[str | None, typer.Option(help="start at this time: epoch ms or ISO 8601")] = None,
    max_messages: Annotated[int | None, typer.Option()] = None,
    timeout_ms: Annotated[int | None, typer.Option(help="exit after this long without records")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per record")] = False,
    print_key: Annotated[bool, typer.Option("--print-key")] = False,
) -> None:
    with connect(bootstrap_server, command_config) as client:
        partitions = [partition] if partition is not None else client.partitions_of(topic)
        positions: dict[int, int] = {}
        for p in partitions:
            if offset is not None:
                positions[p] = offset
            elif timestamp is not None:
                found = client.list_offset(topic, p, _parse_timestamp(timestamp))
                positions[p] = found if found >= 0 else client.list_offset(topic, p, LATEST)
            else:
                positions[p] = client.list_offset(topic, p, EARLIEST if from_beginning else LATEST)
        printed = 0
        idle_since = time.monotonic()
        while max_messages is None or printed < max_messages:
            got_any = False
            for p in partitions:
                result = client.fetch(topic, p, positions[p], max_wait_ms=200 // len(partitions) + 1)
                data = bytes(result.records or b"")
                for pos, header in iter_batches(data):
                    if header.is_control:
                        positions[p] = header.last_offset + 1
                        continue
                    for record in decode_batch(data[pos : pos + header.size_in_bytes]):
                        if record.offset < positions[p]:
                            continue
                        _print(record, topic, p, as_json, print_key)
                        got_any = True
                        printed += 1
                        positions[p] = record.offset + 1
                        if max_messages is not None and printed >= max_messages:
                            return
                    positions[p] = max(positions[p], header.last_offset + 1)
            if got_any:
                idle_since = time.monotonic()
            elif timeout_ms is not None and (time.monotonic() - idle_since) * 1000 >= timeout_ms:
                return


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def _print(record: Record, topic: str, partition: int, as_json: bool, print_key: bool) -> None:
    if as_json:
        typer.echo(json.dumps({
            "topic": topic, "partition": partition, "offset": record.offset, "timestamp": record.timestamp,
            "key": _text(record.key), "value": _text(record.value),
            "headers": {k: _text(v) for k, v in record.headers},
        }))
    elif print_key:
        typer.echo(f"{_text(record.key)}\t{_text(record.value)}")
    else:
        typer.echo(_text(record.value) or "")
