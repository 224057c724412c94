"""`moldau txn list|describe`: transactional ids, their state and open partitions (KIP-664's admin view)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from moldau.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, CommandConfig, connect
from moldau.cli.group import JsonFlag, _table

app = typer.Typer(help="List and describe transactions.", no_args_is_help=True)


@app.command("list")
def list_transactions(
    state: Annotated[list[str] | None, typer.Option("--state", help="filter, e.g. Ongoing")] = None,
    producer_id: Annotated[list[int] | None, typer.Option("--producer-id", help="filter by producer id")] = None,
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP,
    command_config: CommandConfig = None, as_json: JsonFlag = False,
) -> None:
    """List transactional ids with their producer id and state."""
    with connect(bootstrap_server, command_config) as client:
        rows = [{"transactional_id": t.transactional_id, "producer_id": t.producer_id, "state": t.transaction_state}
                for t in client.list_transactions(state, producer_id)]
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        _table("transactions", rows, ["transactional_id", "producer_id", "state"])


@app.command("describe")
def describe_transaction(transactional_id: str, bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP,
                         command_config: CommandConfig = None,
                         as_json: JsonFlag = False) -> None:
    """State, producer, timeout and partitions of one transactional id."""
    with connect(bootstrap_server, command_config) as client:
        t = client.describe_transaction(transactional_id)
    row: dict[str, Any] = {
        "transactional_id": t.transactional_id, "state": t.transaction_state, "producer_id": t.producer_id,
        "producer_epoch": t.producer_epoch, "timeout_ms": t.transaction_timeout_ms,
        "start_time_ms": t.transaction_start_time_ms,
        "partitions": [f"{topic.topic}-{p}" for topic in t.topics for p in topic.partitions]}
    if as_json:
        typer.echo(json.dumps(row))
    else:
        _table(f"transaction {transactional_id}", [{**row, "partitions": ", ".join(row["partitions"])}],
               list(row))
