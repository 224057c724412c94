"""`moldau topic create|list|describe|delete`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from moldau.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, connect, parse_pairs

app = typer.Typer(help="Create, list, describe and delete topics.", no_args_is_help=True)
EARLIEST, LATEST = -2, -1


@app.command()
def create(
    name: str,
    partitions: Annotated[int, typer.Option("--partitions", "-p", help="default: num.partitions")] = -1,
    replication_factor: Annotated[int, typer.Option("--replication-factor", "-r")] = -1,
    config: Annotated[list[str] | None, typer.Option("--config", help="key=value topic config")] = None,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Create a topic."""
    with connect(bootstrap_server) as client:
        result = client.create_topic(name, partitions, replication_factor, parse_pairs(config, "config"))
    typer.echo(f"Created topic {name} with {result.num_partitions} partition(s).")


@app.command("list")
def list_topics(bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP,
                as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List topic names."""
    with connect(bootstrap_server) as client:
        names = sorted(t.name for t in client.metadata(None).topics)
    typer.echo(json.dumps(names) if as_json else "\n".join(names))


@app.command()
def describe(name: str, bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP,
             as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a topic's id, partitions, leaders and offsets."""
    with connect(bootstrap_server) as client:
        entry = client.metadata([name]).topics[0]
        if entry.error_code:
            from moldau.protocol.errors import ErrorCode

            typer.echo(f"error: topic {name}: {ErrorCode(entry.error_code).name}", err=True)
            raise typer.Exit(1)
        rows = []
        for p in sorted(entry.partitions, key=lambda p: p.partition_index):
            rows.append({
                "partition": p.partition_index,
                "leader": p.leader_id,
                "replicas": list(p.replica_nodes),
                "isr": list(p.isr_nodes),
                "log_start_offset": client.list_offset(name, p.partition_index, EARLIEST),
                "high_watermark": client.list_offset(name, p.partition_index, LATEST),
            })
    if as_json:
        typer.echo(json.dumps({"topic": name, "topic_id": str(entry.topic_id), "partitions": rows}))
        return
    table = Table(title=f"{name} ({entry.topic_id})")
    for column in ("partition", "leader", "replicas", "isr", "log_start_offset", "high_watermark"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


@app.command()
def delete(name: str, bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP) -> None:
    """Delete a topic and all its data."""
    with connect(bootstrap_server) as client:
        client.delete_topic(name)
    typer.echo(f"Deleted topic {name}.")
