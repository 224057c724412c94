"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from moldau.broker.config import parse_properties
from moldau.client.client import Client
from moldau.errors import MoldauError

if TYPE_CHECKING:
    from moldau.client.security import ClientSecurity

DEFAULT_BOOTSTRAP_SERVER = "localhost:9092"
BOOTSTRAP_ENV = "MOLDAU_BOOTSTRAP_SERVER"
Bootstrap = Annotated[str, typer.Option("--bootstrap-server", "-b", envvar=BOOTSTRAP_ENV,
                                        help="host:port of a broker")]
DEFAULT_BOOTSTRAP = os.environ.get(BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP_SERVER)


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and an exit status: what went wrong and, where we know it, how to fix it."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class StdoutClosed(Exception):
    """Writing to stdout failed with EPIPE: the reader is gone. A distinct type, because a BrokenPipeError
    from the broker's socket is a real failure."""


def write_out(text: str) -> None:
    """Write to stdout and flush, so that records reach a pipe as they are read (`| grep`)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise StdoutClosed from None


def check_stdout_reader() -> None:
    """Raise StdoutClosed once the reader of a pipe on stdout has gone, even while we have nothing to write:
    `moldau consume t | head -1` then ends at once instead of at the next record. (poll reports POLLERR on
    the write end of a pipe whose read end is closed.)"""
    try:
        events = select.poll()
        events.register(sys.stdout.fileno(), 0)
        if any(flags & (select.POLLERR | select.POLLHUP) for _, flags in events.poll(0)):
            raise StdoutClosed
    except (OSError, ValueError, AttributeError):  # no descriptor, or no poll() on this platform
        return


def stdout_closed() -> NoReturn:
    """The reader of our stdout went away (`moldau consume t | head -1`): stop quietly with status 0, as
    Unix tools do. stdout is pointed at /dev/null so that the flush at interpreter exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(0)


def _connect_error(bootstrap: str, exc: BaseException) -> NoReturn:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    fail(f"cannot connect to a broker at {bootstrap}: {reason}. Give the broker's address with "
         f"--bootstrap-server/-b HOST:PORT or the {BOOTSTRAP_ENV} environment variable "
         f"(default {DEFAULT_BOOTSTRAP_SERVER}).")
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
        client = Client(bootstrap, security=security)
    except (MoldauError, OSError, ValueError) as exc:  # ValueError: a port that is not a number
        _connect_error(bootstrap, exc)
    try:
        with client:
            yield client
    except StdoutClosed:
        stdout_closed()
    except (MoldauError, OSError) as exc:
        fail(str(exc))


def parse_pairs(pairs: list[str] | None, what: str) -> dict[str, str]:
    result = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"{what} {pair!r} is not key=value", 2)
        result[key] = value
    return result
