"""`moldau consume`: topic → stdout, from chosen partitions or as a member of a consumer group.

It follows the topic until Ctrl-C, like `tail -f` and Kafka's console consumer, unless told when to stop:
`--exit-at-end` (kcat's `-e`: stop once every partition is read up to its end), `--max-messages` or
`--timeout-ms`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

import typer

from moldau.cli.common import (
    DEFAULT_BOOTSTRAP,
    Bootstrap,
    CommandConfig,
    check_stdout_reader,
    connect,
    fail,
    write_out,
)
from moldau.cli.progress import RecordProgress, watched
from moldau.client.client import Client, ClientError
from moldau.client.group_member import GroupMember, TopicPartition
from moldau.errors import MoldauError
from moldau.protocol.records import Record, decode_batch, iter_batches

EARLIEST, LATEST = -2, -1
MAX_WAIT_MS = 200
AUTO_COMMIT_INTERVAL_S = 5.0  # Kafka's auto.commit.interval.ms


def parse_timestamp(text: str, option: str = "--timestamp") -> int:
    """Epoch milliseconds, or an ISO 8601 time (local time when it has no zone), as epoch milliseconds."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        fail(f"{option} {text!r} is neither epoch milliseconds nor an ISO 8601 time such as 2026-11-25T10:00:00", 2)


class Reader:
    """Positions per partition, and the records printed from them."""

    def __init__(self, client: Client, topic: str, *, as_json: bool, print_key: bool, max_messages: int | None,
                 progress: RecordProgress | None = None) -> None:
        self.client, self.topic = client, topic
        self.as_json, self.print_key, self.max_messages = as_json, print_key, max_messages
        self.progress = progress or RecordProgress("", enabled=False)
        self.positions: dict[int, int] = {}
        self.high_watermarks: dict[int, int] = {}
        self.printed = 0

    @property
    def done(self) -> bool:
        return self.max_messages is not None and self.printed >= self.max_messages

    def at_end(self, partitions: list[int]) -> bool:
        """Every partition read up to the high watermark its last fetch reported."""
        return all(p in self.high_watermarks and self.positions[p] >= self.high_watermarks[p] for p in partitions)

    def fetch_round(self, partitions: list[int]) -> bool:
        """One fetch of `partitions` (long poll); prints what came; True if any record was printed."""
        results = self.client.fetch_partitions(self.topic, {p: self.positions[p] for p in partitions},
                                               max_wait_ms=MAX_WAIT_MS)
        room = None if self.max_messages is None else self.max_messages - self.printed
        lines: list[str] = []
        for p, result in results.items():
            self.high_watermarks[p] = result.high_watermark
            for record in self._new_records(p, bytes(result.records or b"")):
                if room is not None and len(lines) >= room:
                    break
                lines.append(self._format(record, p))
                self.positions[p] = record.offset + 1
        if lines:
            write_out("".join(lines))
            self.printed += len(lines)
            self.progress.advance(len(lines))
        else:
            check_stdout_reader()
        return bool(lines)

    def _new_records(self, p: int, data: bytes) -> Iterator[Record]:
        """Records at or after the position; the position passes a batch (and control batches) only once
        the caller has taken all of it."""
        for pos, header in iter_batches(data):
            if not header.is_control:
                for record in decode_batch(data[pos : pos + header.size_in_bytes]):
                    if record.offset >= self.positions[p]:
                        yield record
            self.positions[p] = max(self.positions[p], header.last_offset + 1)

    def _format(self, record: Record, partition: int) -> str:
        if self.as_json:
            return json.dumps({
                "topic": self.topic, "partition": partition, "offset": record.offset, "timestamp": record.timestamp,
                "key": _text(record.key), "value": _text(record.value),
                "headers": {k: _text(v) for k, v in record.headers},
            }) + "\n"
        if self.print_key:
            return f"{_text(record.key)}\t{_text(record.value)}\n"
        return (_text(record.value) or "") + "\n"


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def consume(
    topic: str,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
    partition: Annotated[int | None, typer.Option(help="default: all partitions")] = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="start at the earliest offset (with "
                                                 "--group: where the group has no committed offset)")] = False,
    offset: Annotated[int | None, typer.Option(help="start offset (with --partition or for all)")] = None,
    timestamp: Annotated[str | None, typer.Option(help="start at this time: epoch ms or ISO 8601")] = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="consume as a member of this consumer "
                                              "group (KIP-848), committing offsets")] = None,
    max_messages: Annotated[int | None, typer.Option(help="exit after this many records")] = None,
    timeout_ms: Annotated[int | None, typer.Option(help="exit after this long without records")] = None,
    exit_at_end: Annotated[bool, typer.Option("--exit-at-end", "-e", help="exit once every partition is read "
                                              "to its end (like kcat -e)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per record")] = False,
    print_key: Annotated[bool, typer.Option("--print-key")] = False,
) -> None:
    start_time = parse_timestamp(timestamp) if timestamp is not None else None
    if group is not None and (partition is not None or offset is not None or timestamp is not None):
        fail("--group starts at the group's committed offsets on the partitions it is assigned: it cannot be "
             "combined with --partition, --offset or --timestamp (use `moldau group reset-offsets`)", 2)
    with connect(bootstrap_server, command_config) as client:
        reader = Reader(client, topic, as_json=as_json, print_key=print_key, max_messages=max_messages)
        partitions = [partition] if partition is not None else client.partitions_of(topic)
        if group is None:
            for p in partitions:
                reader.positions[p] = _start_offset(client, topic, p, offset, start_time, from_beginning)
        show = watched(sys.stdout)
        total = _records_to_end(reader, partitions) if show and exit_at_end and group is None else None
        if max_messages is not None:
            total = max_messages if total is None else min(total, max_messages)
        with RecordProgress(f"consuming {topic}", enabled=show, total=total) as reader.progress:
            try:
                if group is None:
                    _consume_partitions(reader, partitions, timeout_ms, exit_at_end)
                else:
                    _consume_as_member(reader, group, from_beginning, timeout_ms, exit_at_end)
            except KeyboardInterrupt:
                raise typer.Exit(130) from None  # the usual way to stop following a topic: no "Aborted!"


def _records_to_end(reader: Reader, partitions: list[int]) -> int:
    return sum(max(0, reader.client.list_offset(reader.topic, p, LATEST) - reader.positions[p]) for p in partitions)


def _start_offset(client: Client, topic: str, p: int, offset: int | None, start_time: int | None,
                  from_beginning: bool) -> int:
    if offset is not None:
        return offset
    if start_time is not None:
        found = client.list_offset(topic, p, start_time)
        return found if found >= 0 else client.list_offset(topic, p, LATEST)
    return client.list_offset(topic, p, EARLIEST if from_beginning else LATEST)


class Idle:
    """`--timeout-ms`: time since the last record."""

    def __init__(self, timeout_ms: int | None) -> None:
        self.timeout_ms = timeout_ms
        self.since = time.monotonic()

    def record(self, got_any: bool) -> bool:
        """Note a round; True once the timeout has passed without records."""
        if got_any:
            self.since = time.monotonic()
        return self.timeout_ms is not None and (time.monotonic() - self.since) * 1000 >= self.timeout_ms


def _consume_partitions(reader: Reader, partitions: list[int], timeout_ms: int | None, exit_at_end: bool) -> None:
    idle = Idle(timeout_ms)
    while not reader.done:
        got_any = reader.fetch_round(partitions)
        if idle.record(got_any) or (exit_at_end and reader.at_end(partitions)):
            return


def _consume_as_member(reader: Reader, group: str, from_beginning: bool, timeout_ms: int | None,
                       exit_at_end: bool) -> None:
    """Fetch what the coordinator assigns this member; commit positions every 5 s, on revocation and at exit."""
    client, topic = reader.client, reader.topic
    committed: dict[int, int] = {}

    def commit(partitions: set[TopicPartition]) -> None:
        offsets = {(topic, p): reader.positions[p] for _, p in partitions
                   if p in reader.positions and committed.get(p) != reader.positions[p]}
        if offsets:
            client.commit_offsets(group, offsets, member.member_id, member.member_epoch)
            committed.update({p: o for (_, p), o in offsets.items()})

    def forget(partitions: set[TopicPartition]) -> None:
        for _, p in partitions:
            reader.positions.pop(p, None)
            reader.high_watermarks.pop(p, None)
            committed.pop(p, None)

    def revoke(partitions: set[TopicPartition]) -> None:
        _try_commit(commit, partitions)  # KIP-848: a member commits what it read before giving partitions up
        forget(partitions)

    # Fenced (e.g. stdout blocked past the session timeout): the partitions may be another member's now, so
    # they are dropped without a commit and, if assigned again, start from the group's committed offsets.
    member = GroupMember(client, group, [topic], on_revoke=revoke, on_lost=forget)
    idle = Idle(timeout_ms)
    last_commit = time.monotonic()
    try:
        member.ensure_active()
        while not reader.done:
            member.poll()
            owned = sorted(p for _, p in member.owned)
            new = [p for p in owned if p not in reader.positions]
            if new:
                offsets = client.fetch_offsets(group)
                for p in new:
                    start = offsets.get((topic, p))
                    if start is not None:
                        reader.positions[p] = committed[p] = start[0]
                    else:  # auto.offset.reset; the position is committed like any other, as Kafka's consumer does
                        reader.positions[p] = client.list_offset(topic, p, EARLIEST if from_beginning else LATEST)
            if owned:
                got_any = reader.fetch_round(owned)
            else:
                time.sleep(MAX_WAIT_MS / 1000)  # nothing assigned (yet): wait for the next heartbeat
                got_any = False
            # With nothing assigned, "at the end" only once the coordinator had a heartbeat to assign something.
            settled = member.received_assignment and (bool(owned) or member.heartbeats >= 2)
            if idle.record(got_any) or (exit_at_end and settled and reader.at_end(owned)):
                return
            if time.monotonic() - last_commit >= AUTO_COMMIT_INTERVAL_S:
                _try_commit(commit, member.owned)
                last_commit = time.monotonic()
    finally:
        _try_commit(commit, member.owned)
        try:
            member.leave()
        except (MoldauError, OSError):
            pass  # the session timeout removes the member instead


def _try_commit(commit: Callable[[set[TopicPartition]], None], owned: set[TopicPartition]) -> None:
    try:
        commit(owned)
    except ClientError as exc:  # e.g. STALE_MEMBER_EPOCH while a rebalance completes: the next commit covers it
        typer.echo(f"warning: {exc}", err=True)
    except (MoldauError, OSError):
        pass
