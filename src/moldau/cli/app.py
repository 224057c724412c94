"""The typer app behind every `moldau` command but `server` (see `cli/main.py`)."""

from __future__ import annotations

from typing import Annotated

import typer

import moldau
from moldau.cli import cluster as cluster_commands
from moldau.cli import connect as connect_commands
from moldau.cli import group as group_commands
from moldau.cli import schema as schema_commands
from moldau.cli import security as security_commands
from moldau.cli import server as server_command
from moldau.cli import topic as topic_commands
from moldau.cli import txn as txn_commands
from moldau.cli.consume import consume
from moldau.cli.produce import produce

app = typer.Typer(help="Moldau: a Kafka-compatible event streaming platform.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(topic_commands.app, name="topic")
app.add_typer(group_commands.app, name="group")
app.add_typer(cluster_commands.app, name="cluster")
app.add_typer(txn_commands.app, name="txn")
app.add_typer(connect_commands.connect_app, name="connect")
app.add_typer(connect_commands.connector_app, name="connector")
app.add_typer(schema_commands.app, name="schema")
app.add_typer(security_commands.acl_app, name="acl")
app.add_typer(security_commands.user_app, name="user")
app.add_typer(security_commands.quota_app, name="quota")
app.command(help="Run a standalone schema registry against a Kafka-compatible cluster.")(schema_commands.registry)
app.command(help="Write records from stdin (one per line, sent as they arrive) to a topic.")(produce)
app.command(help="Read records from a topic and print them (until Ctrl-C unless told when to stop).")(consume)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"moldau {moldau.__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                               help="print the version and exit")] = False) -> None:
    """Moldau: a Kafka-compatible event streaming platform."""


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False, help=server_command.HELP)
def server(ctx: typer.Context) -> None:
    # Listed here for `moldau --help`; `moldau server` itself skips typer (see cli/main.py).
    raise typer.Exit(server_command.main(ctx.args))
