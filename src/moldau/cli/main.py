"""The `moldau` command line: run a broker, manage topics, produce and consume."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

import moldau
from moldau.broker.config import BrokerConfig, ConfigError, load_config, parse_overrides
from moldau.cli import group as group_commands
from moldau.cli import topic as topic_commands
from moldau.cli import txn as txn_commands
from moldau.cli.common import fail
from moldau.cli.consume import consume
from moldau.cli.produce import produce

app = typer.Typer(help="Moldau: a Kafka-compatible event streaming platform.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(topic_commands.app, name="topic")
app.add_typer(group_commands.app, name="group")
app.add_typer(txn_commands.app, name="txn")
app.command(help="Write records from stdin (one per line, sent as they arrive) to a topic.")(produce)
app.command(help="Read records from a topic and print them (until Ctrl-C unless told when to stop).")(consume)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"moldau {moldau.__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                               help="print the version and exit")] = False) -> None:
    """Moldau: a Kafka-compatible event streaming platform."""


def _check_log_dirs(config: BrokerConfig) -> None:
    """Each of log.dirs must be a directory we can write, checked before the broker starts so that a bad
    path is one line naming it rather than a traceback (Kafka: "Failed to create or validate data directory")."""
    for directory in config.log_dirs:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            fail(f"cannot create log.dirs directory {str(directory)!r}: {exc.strerror or exc}", 2)
        if not os.access(directory, os.W_OK | os.X_OK):
            fail(f"log.dirs directory {str(directory)!r} is not writable", 2)


@app.command()
def server(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="server.properties or .toml")] = None,
    override: Annotated[list[str] | None, typer.Option("--override", "-o",
                                                          help="key=value, Kafka's config names")] = None,
    log_level: Annotated[str, typer.Option(help=", ".join(LOG_LEVELS))] = "INFO",
) -> None:
    """Run a broker until SIGTERM/SIGINT (data in ./moldau-data and port 9092 unless configured)."""
    if log_level.upper() not in LOG_LEVELS:
        fail(f"--log-level {log_level!r} is not one of {', '.join(LOG_LEVELS)}", 2)
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from moldau.broker.server import run_broker

    try:
        broker_config = load_config(config, parse_overrides(override or []))
    except (ConfigError, OSError) as exc:
        fail(str(exc), 2)
    _check_log_dirs(broker_config)
    run_broker(broker_config)


if __name__ == "__main__":
    app()
