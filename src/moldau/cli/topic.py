"""`moldau topic create|list|describe|delete`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from moldau.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, CommandConfig, connect, parse_pairs

app = typer.Typer(help="Create, list, describe and delete topics.", no_args_is_help=True)
EARLIEST, LATEST = -2, -1


@app.command()
def create(
    name: str,
    partitions: Annotated[int, typer.Option("--partitions", "-p", help="default: num.partitions")] = -1,
    replication_factor: Annotated[int, typer.Option("--replication-factor", "-r")] = -1,
    config: Annotated[list[str] | None, typer.Option("--config", help="key=value topic config")] = None,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
) -> None:
    """Create a topic."""
    with connect(bootstrap_server, command_config) as client:
        result = client.create_topic(name, partitions, replication_factor, parse_pairs(config, "config"))
    typer.echo(f"Created topic {name} with {result.num_partitions} partition(s).")


@app.command("list")
def list_topics(bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
                as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List topic names."""
    with connect(bootstrap_server, command_config) as client:
        names = sorted(t.name for t in client.metadata(None).topics)
    typer.echo(json.dumps(names) if as_json else "\n".join(names))


@app.command()
def describe(name: str, bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
             as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a topic's id, partitions, leaders and offsets."""
    with connect(bootstrap_server, command_config) as client:
        entry = client.metadata([name]).topics[0]
        if entry.error_code:
            from moldau.protocol.errors import ErrorCode

            typer.echo(f"error: topic {name}: {ErrorCode(entry.error_code).name}", err=True)
            raise typer.Exit(1)
        moving = _reassignments(client, name, [p.partition_index for p in entry.partitions])
        rows = []
        for p in sorted(entry.partitions, key=lambda p: p.partition_index):
            ongoing = moving.get((name, p.partition_index))
            rows.append({
                "partition": p.partition_index,
                "leader": p.leader_id,
                "replicas": list(p.replica_nodes),
                "isr": list(p.isr_nodes),
                "offline": list(p.offline_replicas),
                "adding": list(ongoing.adding_replicas) if ongoing is not None else [],
                "removing": list(ongoing.removing_replicas) if ongoing is not None else [],
                "log_start_offset": _offset(client, name, p.partition_index, EARLIEST),
                "high_watermark": _offset(client, name, p.partition_index, LATEST),
            })
    if as_json:
        typer.echo(json.dumps({"topic": name, "topic_id": str(entry.topic_id), "partitions": rows}))
        return
    table = Table(title=f"{name} ({entry.topic_id})")
    for column in ("partition", "leader", "replicas", "isr", "offline", "adding", "removing", "log_start_offset",
                   "high_watermark"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


def _offset(client, topic: str, partition: int, timestamp: int) -> int | None:
    """The offset, when the broker asked leads the partition (in a cluster it may not: shown as null)."""
    from moldau.client.client import ClientError

    try:
        return int(client.list_offset(topic, partition, timestamp))
    except ClientError:
        return None


def _reassignments(client, topic: str, partitions: list[int]) -> dict:
    from moldau.client.client import ClientError

    try:
        return client.list_partition_reassignments({topic: partitions})
    except ClientError:
        return {}


@app.command()
def reassign(
    name: str,
    partition: Annotated[int, typer.Option("--partition", "-p")],
    replicas: Annotated[str | None, typer.Option("--replicas", help="target broker ids, e.g. 2,3")] = None,
    cancel: Annotated[bool, typer.Option("--cancel", help="cancel the ongoing reassignment")] = False,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
) -> None:
    """Move a partition's replicas to --replicas (AlterPartitionReassignments, KIP-455), or --cancel."""
    if cancel == (replicas is not None):
        typer.echo("error: give either --replicas or --cancel", err=True)
        raise typer.Exit(2)
    target = None if cancel else [int(r) for r in replicas.split(",") if r.strip()]  # type: ignore[union-attr]
    with connect(bootstrap_server, command_config) as client:
        code, message = client.alter_partition_reassignments({(name, partition): target})[(name, partition)]
    if code:
        typer.echo(f"error: {name}-{partition}: {code.name}" + (f": {message}" if message else ""), err=True)
        raise typer.Exit(1)
    typer.echo(f"{'Cancelled the reassignment of' if cancel else 'Reassigning'} {name}-{partition}"
               + ("" if cancel else f" to {target}") + ".")


@app.command()
def delete(name: str, bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP,
           command_config: CommandConfig = None) -> None:
    """Delete a topic and all its data."""
    with connect(bootstrap_server, command_config) as client:
        client.delete_topic(name)
    typer.echo(f"Deleted topic {name}.")


TOPIC_RESOURCE = 2
SOURCES = {1: "topic", 2: "broker", 3: "cluster-default", 4: "static", 5: "default"}


@app.command("describe-config")
def describe_config(
    name: str,
    only_overrides: Annotated[bool, typer.Option("--overrides", help="only the topic's own overrides")] = False,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a topic's configs: value and where it comes from (topic, broker, cluster-default, static, default)."""
    with connect(bootstrap_server, command_config) as client:
        result = client.describe_configs(TOPIC_RESOURCE, name, synonyms=True)
    rows = [{"name": c.name, "value": c.value, "source": SOURCES.get(c.config_source, "unknown"),
             "synonyms": [{"name": s.name, "value": s.value, "source": SOURCES.get(s.source, "unknown")}
                          for s in c.synonyms]}
            for c in result.configs if not only_overrides or c.config_source == 1]
    if as_json:
        typer.echo(json.dumps({"topic": name, "configs": rows}))
        return
    table = Table(title=f"configs of {name}")
    for column in ("name", "value", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], str(row["value"]), row["source"])
    Console().print(table)


@app.command("alter-config")
def alter_config(
    name: str,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value to set")] = None,
    delete_: Annotated[list[str] | None, typer.Option("--delete", help="key to reset to its default")] = None,
    append: Annotated[list[str] | None, typer.Option("--append", help="key=value to add to a list")] = None,
    subtract: Annotated[list[str] | None, typer.Option("--subtract", help="key=value to remove from a list")]
    = None,
    validate_only: Annotated[bool, typer.Option("--validate-only")] = False,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Change a topic's configs at run time (IncrementalAlterConfigs); takes effect without a restart."""
    ops: list[tuple[str, int, str | None]] = [(k, 0, v) for k, v in parse_pairs(set_, "--set").items()]
    ops += [(k, 1, None) for k in delete_ or []]
    ops += [(k, 2, v) for k, v in parse_pairs(append, "--append").items()]
    ops += [(k, 3, v) for k, v in parse_pairs(subtract, "--subtract").items()]
    if not ops:
        typer.echo("error: nothing to change: give --set, --delete, --append or --subtract", err=True)
        raise typer.Exit(2)
    with connect(bootstrap_server, command_config) as client:
        client.incremental_alter_configs(TOPIC_RESOURCE, name, ops, validate_only)
    verb = "Validated" if validate_only else "Altered"
    if as_json:
        typer.echo(json.dumps({"topic": name, "validate_only": validate_only,
                               "operations": [{"name": n, "op": ("SET", "DELETE", "APPEND", "SUBTRACT")[op],
                                               "value": v} for n, op, v in ops]}))
        return
    typer.echo(f"{verb} {len(ops)} config(s) of topic {name}.")


@app.command("add-partitions")
def add_partitions(
    name: str,
    count: Annotated[int, typer.Option("--count", "-c", help="the new total number of partitions")],
    validate_only: Annotated[bool, typer.Option("--validate-only")] = False,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Grow a topic to --count partitions (partitions can never be removed)."""
    with connect(bootstrap_server, command_config) as client:
        client.create_partitions(name, count, validate_only)
    if as_json:
        typer.echo(json.dumps({"topic": name, "partitions": count, "validate_only": validate_only}))
    else:
        typer.echo(f"{'Validated' if validate_only else 'Topic'} {name} now has {count} partition(s).")


@app.command("delete-records")
def delete_records(
    name: str,
    offset: Annotated[int, typer.Option("--offset", help="delete records before this offset; -1 = all")],
    partition: Annotated[list[int] | None, typer.Option("--partition", "-p", help="default: all")] = None,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Delete the records of partitions below an offset (moves their log start offset)."""
    with connect(bootstrap_server, command_config) as client:
        partitions = partition or client.partitions_of(name)
        low_watermarks = client.delete_records(name, {p: offset for p in partitions})
    if as_json:
        typer.echo(json.dumps({"topic": name, "low_watermarks": {str(p): o for p, o in low_watermarks.items()}}))
        return
    for p, low in sorted(low_watermarks.items()):
        typer.echo(f"{name}-{p}: log start offset is now {low}")
