"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from moldau.client.client import Client
from moldau.errors import MoldauError

Bootstrap = Annotated[str, typer.Option("--bootstrap-server", "-b", envvar="MOLDAU_BOOTSTRAP_SERVER",
                                        help="host:port of a broker")]
DEFAULT_BOOTSTRAP = os.environ.get("MOLDAU_BOOTSTRAP_SERVER", "localhost:9092")


@contextmanager
def connect(bootstrap: str) -> Iterator[Client]:
    """A client, with failures turned into one readable line and exit code 1."""
    try:
        with Client(bootstrap) as client:
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
