"""The `moldau` command line: run a broker, manage topics, produce and consume."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from moldau.broker.config import ConfigError, load_config, parse_overrides
from moldau.cli import connect as connect_commands
from moldau.cli import group as group_commands
from moldau.cli import topic as topic_commands
from moldau.cli import txn as txn_commands
from moldau.cli.produce_consume import consume, produce

app = typer.Typer(help="Moldau: a Kafka-compatible event streaming platform.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(topic_commands.app, name="topic")
app.add_typer(group_commands.app, name="group")
app.add_typer(txn_commands.app, name="txn")
app.add_typer(connect_commands.connect_app, name="connect")
app.add_typer(connect_commands.connector_app, name="connector")
app.command(help="Write records from stdin (one per line) to a topic.")(produce)
app.command(help="Read records from a topic and print them.")(consume)


@app.command()
def server(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="server.properties or .toml")] = None,
    override: Annotated[list[str] | None, typer.Option("--override", "-o",
                                                          help="key=value, Kafka's config names")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Run a broker until SIGTERM/SIGINT (data in ./moldau-data and port 9092 unless configured)."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from moldau.broker.server import run_broker

    try:
        broker_config = load_config(config, parse_overrides(override or []))
    except (ConfigError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    run_broker(broker_config)


if __name__ == "__main__":
    app()
