"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from moldau.broker.config import parse_properties
from moldau.client.client import Client
from moldau.errors import MoldauError

if TYPE_CHECKING:
    from moldau.client.security import ClientSecurity

Bootstrap = Annotated[str, typer.Option("--bootstrap-server", "-b", envvar="MOLDAU_BOOTSTRAP_SERVER",
                                        help="host:port of a broker")]
DEFAULT_BOOTSTRAP = os.environ.get("MOLDAU_BOOTSTRAP_SERVER", "localhost:9092")
CommandConfig = Annotated[Path | None, typer.Option(
    "--command-config", envvar="MOLDAU_COMMAND_CONFIG",
    help="client.properties with security.protocol, ssl.* and sasl.* settings (Kafka's convention)")]


def client_security(command_config: Path | None) -> ClientSecurity | None:
    if command_config is None:
        return None
    import ssl  # only secured connections pay for the imports

    from moldau.client.security import ClientSecurity

    try:
        return ClientSecurity.from_properties(parse_properties(command_config.read_text()))
    except (MoldauError, OSError, ssl.SSLError) as exc:
        typer.echo(f"error: {command_config}: {exc}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def connect(bootstrap: str, command_config: Path | None = None) -> Iterator[Client]:
    """A client, with failures turned into one readable line and exit code 1."""
    security = client_security(command_config)
    try:
        with Client(bootstrap, security=security) as client:
            yield client
    except (MoldauError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def parse_pairs(pairs: list[str] | None, what: str) -> dict[str, str]:
    result = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            typer.echo(f"error: {what} {pair!r} is not key=value", err=True)
            raise typer.Exit(2)
        result[key] = value
    return result
