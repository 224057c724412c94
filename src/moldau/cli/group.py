"""`moldau group list|describe|delete|reset-offsets`: consumer groups, their members, offsets and lag."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from moldau.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, CommandConfig, connect, fail
from moldau.cli.consume import parse_timestamp
from moldau.client.client import Client, ClientError
from moldau.protocol import api
from moldau.protocol.errors import ErrorCode, ProtocolError

app = typer.Typer(help="List, describe, delete consumer groups and reset their offsets.", no_args_is_help=True)
EARLIEST, LATEST = -2, -1
JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def decode_assignment(data: bytes) -> list[tuple[str, int]]:
    """Partitions of a consumer-protocol assignment; [] for other protocols or empty bytes."""
    if len(data) < 2:
        return []
    version = min(int.from_bytes(data[:2], "big", signed=True), 3)
    try:
        body, _ = api.decode_message("ConsumerProtocolAssignment", max(version, 0), data, 2)
    except ProtocolError:  # a non-consumer protocol's bytes: show no partitions
        return []
    return [(t.topic, p) for t in body.assigned_partitions for p in t.partitions]


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console(width=200).print(table)


@app.command("list")
def list_groups(state: Annotated[list[str] | None, typer.Option("--state", help="filter, e.g. Stable")] = None,
                bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP,
                command_config: CommandConfig = None, as_json: JsonFlag = False) -> None:
    """List groups with their type (classic or KIP-848 consumer), state and protocol type."""
    with connect(bootstrap_server, command_config) as client:
        groups = [{"group": g.group_id, "type": (g.group_type or "").lower() or None, "state": g.group_state,
                   "protocol_type": g.protocol_type} for g in client.list_groups(state)]
    if as_json:
        typer.echo(json.dumps(groups))
    else:
        _table("groups", groups, ["group", "type", "state", "protocol_type"])


def _not_found(exc: ClientError) -> bool:
    return exc.error_code == ErrorCode.GROUP_ID_NOT_FOUND


def _members(client: Client, group_id: str) -> dict[str, Any] | None:
    """State and members of a KIP-848 consumer group (ConsumerGroupDescribe) or else of a classic group
    (DescribeGroups), as Kafka's admin client tries them; None if the group does not exist."""
    if 69 in client.versions:
        try:
            group = client.describe_consumer_group(group_id)
        except ClientError as exc:
            if not _not_found(exc):  # GROUP_ID_NOT_FOUND also answers for a classic group: try that next
                raise
        else:
            members = [{"member_id": m.member_id, "group_instance_id": m.instance_id, "client_id": m.client_id,
                        "host": m.client_host, "member_epoch": m.member_epoch,
                        "assignment": [(t.topic_name, p) for t in m.assignment.topic_partitions
                                       for p in t.partitions]} for m in group.members]
            return {"type": "consumer", "state": group.group_state, "protocol_type": "consumer",
                    "protocol": group.assignor_name, "group_epoch": group.group_epoch, "members": members}
    try:
        described = client.describe_group(group_id)
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise
    members = [{"member_id": m.member_id, "group_instance_id": m.group_instance_id, "client_id": m.client_id,
                "host": m.client_host, "assignment": decode_assignment(bytes(m.member_assignment))}
               for m in described.members]
    return {"type": "classic", "state": described.group_state, "protocol_type": described.protocol_type,
            "protocol": described.protocol_data, "members": members}


def _describe(client: Client, group_id: str) -> dict[str, Any]:
    group = _members(client, group_id)
    if group is None:
        fail(f"Consumer group '{group_id}' does not exist.")  # Kafka's kafka-consumer-groups wording
    owner: dict[tuple[str, int], dict[str, Any]] = {}
    for member in group["members"]:
        for tp in member["assignment"]:
            owner[tp] = member
        member["assignment"] = [f"{t}-{p}" for t, p in member["assignment"]]
    committed = client.fetch_offsets(group_id)
    partitions = []
    for topic, partition in sorted(set(committed) | set(owner)):
        offset = committed.get((topic, partition), (None, ""))[0]
        end = client.list_offset(topic, partition, LATEST)
        member = owner.get((topic, partition))
        partitions.append({"topic": topic, "partition": partition, "current_offset": offset,
                           "log_end_offset": end, "lag": None if offset is None else end - offset,
                           "member_id": member["member_id"] if member else None,
                           "client_id": member["client_id"] if member else None})
    return {"group": group_id, **group, "partitions": partitions}


@app.command()
def describe(group: str, bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP,
             command_config: CommandConfig = None, as_json: JsonFlag = False) -> None:
    """Show a group's state, members with their assignments, and per-partition offsets and lag."""
    with connect(bootstrap_server, command_config) as client:
        result = _describe(client, group)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"group {group} ({result['type']}): {result['state']}, protocol {result['protocol_type']}/"
               f"{result['protocol']}, {len(result['members'])} member(s)")
    members = [dict(m, assignment=", ".join(m["assignment"])) for m in result["members"]]
    _table("members", members, ["member_id", "group_instance_id", "client_id", "host", "assignment"])
    _table("offsets", result["partitions"],
           ["topic", "partition", "current_offset", "log_end_offset", "lag", "member_id", "client_id"])


@app.command()
def delete(group: str, bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP,
           command_config: CommandConfig = None) -> None:
    """Delete an empty group and its committed offsets."""
    with connect(bootstrap_server, command_config) as client:
        try:
            client.delete_group(group)
        except ClientError as exc:
            if _not_found(exc):
                fail(f"Consumer group '{group}' does not exist.")
            raise
    typer.echo(f"Deleted group {group}.")


def _target_offset(client: Client, topic: str, partition: int, current: int | None, *, to_earliest: bool,
                   to_latest: bool, to_offset: int | None, to_time: int | None, shift_by: int | None) -> int:
    earliest = client.list_offset(topic, partition, EARLIEST)
    latest = client.list_offset(topic, partition, LATEST)
    if to_earliest:
        return earliest
    if to_latest:
        return latest
    if to_offset is not None:
        wanted = to_offset
    elif to_time is not None:
        found = client.list_offset(topic, partition, to_time)
        wanted = latest if found < 0 else found
    else:
        wanted = (current if current is not None else latest) + (shift_by or 0)
    return max(earliest, min(wanted, latest))  # Kafka's tool clamps into the log's range


@app.command("reset-offsets")
def reset_offsets(
    group: str,
    topic: Annotated[list[str] | None, typer.Option("--topic", help="topic to reset (default: all committed)")] = None,
    to_earliest: Annotated[bool, typer.Option("--to-earliest")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest")] = False,
    to_offset: Annotated[int | None, typer.Option("--to-offset")] = None,
    to_datetime: Annotated[str | None, typer.Option("--to-datetime", help="ISO 8601, e.g. 2024-05-01T12:00")] = None,
    shift_by: Annotated[int | None, typer.Option("--shift-by")] = None,
    execute: Annotated[bool, typer.Option("--execute", help="commit; without it this is a dry run")] = False,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
    as_json: JsonFlag = False,
) -> None:
    """Move a group's committed offsets (the group must have no active members)."""
    chosen = [to_earliest, to_latest, to_offset is not None, to_datetime is not None, shift_by is not None]
    if sum(chosen) != 1:
        fail("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by", 2)
    to_time = parse_timestamp(to_datetime, "--to-datetime") if to_datetime is not None else None
    with connect(bootstrap_server, command_config) as client:
        # Like Kafka's tool, a group that does not exist yet is fine: the commit below creates it with
        # these offsets, so consumers that join later start there.
        described = _members(client, group)
        state = "Dead" if described is None else described["state"]
        if execute and state not in ("Empty", "Dead"):
            fail(f"Assignments can only be reset if the group '{group}' is inactive, but the current state is "
                 f"{state}. Stop its consumers first.")
        committed = client.fetch_offsets(group)
        partitions = ([(t, p) for t in topic for p in client.partitions_of(t)] if topic else sorted(committed))
        if not partitions:
            fail(f"group {group} has no committed offsets: name the topics to reset with --topic", 2)
        rows, new = [], {}
        for t, p in partitions:
            current = committed.get((t, p), (None, ""))[0]
            target = _target_offset(client, t, p, current, to_earliest=to_earliest, to_latest=to_latest,
                                    to_offset=to_offset, to_time=to_time, shift_by=shift_by)
            new[t, p] = target
            rows.append({"topic": t, "partition": p, "current_offset": current, "new_offset": target})
        if execute:
            client.commit_offsets(group, new)
    if as_json:
        typer.echo(json.dumps({"group": group, "executed": execute, "partitions": rows}))
        return
    _table(f"{group}: {'reset' if execute else 'dry run (add --execute)'}", rows,
           ["topic", "partition", "current_offset", "new_offset"])
