"""`moldau schema ...` and `moldau registry`: use a schema registry's REST API, or run one standalone."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from moldau.cli.common import DEFAULT_BOOTSTRAP

app = typer.Typer(help="Register, read and check schemas in a schema registry.", no_args_is_help=True)

Url = Annotated[str, typer.Option("--url", "-u", envvar="MOLDAU_SCHEMA_REGISTRY_URL",
                                  help="Schema registry URL")]
DEFAULT_URL = "http://localhost:8081"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def call(url: str, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
    """One REST call; a registry error becomes one readable line and exit code 1."""
    target = url.rstrip("/") + path
    if query:
        target += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(target, data=data, method=method, headers={"Content-Type": CONTENT_TYPE,
                                                                                  "Accept": CONTENT_TYPE})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())
            message = f"{error.get('message')} (error code {error.get('error_code')})"
        except ValueError:
            message = str(exc)
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"error: cannot reach the schema registry at {url}: {exc}", err=True)
        raise typer.Exit(1) from None


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _schema_body(schema: str | None, schema_file: Path | None, schema_type: str,
                 references: list[str] | None) -> dict[str, Any]:
    if (schema is None) == (schema_file is None):
        typer.echo("error: give exactly one of --schema and --schema-file", err=True)
        raise typer.Exit(2)
    text = schema if schema is not None else schema_file.read_text()  # type: ignore[union-attr]
    body: dict[str, Any] = {"schema": text, "schemaType": schema_type.upper()}
    refs = []
    for reference in references or []:
        name, _, target = reference.partition("=")
        subject, _, version = target.rpartition(":")
        if not (name and subject and version.isdigit()):
            typer.echo(f"error: reference {reference!r} is not name=subject:version", err=True)
            raise typer.Exit(2)
        refs.append({"name": name, "subject": subject, "version": int(version)})
    if refs:
        body["references"] = refs
    return body


SchemaText = Annotated[str | None, typer.Option("--schema", "-s", help="The schema text")]
SchemaFile = Annotated[Path | None, typer.Option("--schema-file", "-f", help="A file holding the schema")]
SchemaType = Annotated[str, typer.Option("--type", "-t", help="AVRO, JSON or PROTOBUF")]
References = Annotated[list[str] | None, typer.Option("--reference", "-r", help="name=subject:version")]


@app.command()
def register(subject: str, schema: SchemaText = None, schema_file: SchemaFile = None, schema_type: SchemaType = "AVRO",
             reference: References = None, normalize: bool = False, url: Url = DEFAULT_URL) -> None:
    """Register a schema under SUBJECT and print its id."""
    body = _schema_body(schema, schema_file, schema_type, reference)
    result = call(url, "POST", f"/subjects/{_quote(subject)}/versions", body, {"normalize": str(normalize).lower()})
    typer.echo(result["id"])


@app.command()
def get(subject: Annotated[str | None, typer.Argument()] = None, version: str = "latest",
        schema_id: Annotated[int | None, typer.Option("--id", help="Get by global id instead")] = None,
        url: Url = DEFAULT_URL) -> None:
    """Print a subject's version (default: latest), or the schema with `--id`."""
    if schema_id is not None:
        typer.echo(json.dumps(call(url, "GET", f"/schemas/ids/{schema_id}")))
    elif subject is not None:
        typer.echo(json.dumps(call(url, "GET", f"/subjects/{_quote(subject)}/versions/{version}")))
    else:
        typer.echo("error: give a SUBJECT or --id", err=True)
        raise typer.Exit(2)


@app.command("list")
def list_(subject: Annotated[str | None, typer.Argument(help="List this subject's versions")] = None,
          deleted: bool = False, url: Url = DEFAULT_URL) -> None:
    """List subjects, or the versions of SUBJECT."""
    path = "/subjects" if subject is None else f"/subjects/{_quote(subject)}/versions"
    for item in call(url, "GET", path, query={"deleted": str(deleted).lower()}):
        typer.echo(item)


@app.command()
def delete(subject: str, version: Annotated[str | None, typer.Option(help="Only this version")] = None,
           permanent: bool = False, url: Url = DEFAULT_URL) -> None:
    """Soft-delete a subject (or one version); `--permanent` after a soft delete removes it for good."""
    path = f"/subjects/{_quote(subject)}" + (f"/versions/{version}" if version else "")
    typer.echo(json.dumps(call(url, "DELETE", path, query={"permanent": str(permanent).lower()})))


@app.command("check-compat")
def check_compat(subject: str, schema: SchemaText = None, schema_file: SchemaFile = None,
                 schema_type: SchemaType = "AVRO", reference: References = None, version: str = "latest",
                 url: Url = DEFAULT_URL) -> None:
    """Check a schema against SUBJECT's version under its compatibility level; exit 1 when incompatible."""
    body = _schema_body(schema, schema_file, schema_type, reference)
    result = call(url, "POST", f"/compatibility/subjects/{_quote(subject)}/versions/{version}", body,
                  {"verbose": "true"})
    if result["is_compatible"]:
        typer.echo("compatible")
        return
    typer.echo("incompatible")
    for message in result.get("messages") or []:
        typer.echo(f"  {message}")
    raise typer.Exit(1)


@app.command("set-compat")
def set_compat(level: Annotated[str, typer.Argument(help="NONE, BACKWARD, FORWARD, FULL, *_TRANSITIVE")],
               subject: Annotated[str | None, typer.Option(help="Only this subject")] = None,
               url: Url = DEFAULT_URL) -> None:
    """Set the compatibility level, globally or of one subject."""
    path = "/config" if subject is None else f"/config/{_quote(subject)}"
    typer.echo(call(url, "PUT", path, {"compatibility": level.upper()})["compatibility"])


def registry(
    bootstrap_server: Annotated[str | None, typer.Option("--bootstrap-server", "-b", envvar="MOLDAU_BOOTSTRAP_SERVER",
                                                         help="host:port of a broker")] = None,
    listener: Annotated[str | None, typer.Option("--listener", "-l", help="http://host:port to serve on "
                                                 "(default http://0.0.0.0:8081)")] = None,
    topic: Annotated[str | None, typer.Option(help="The schemas topic (kafkastore.topic, default _schemas)")] = None,
    replication_factor: Annotated[int | None, typer.Option(help="Of the schemas topic when created "
                                                           "(default 3, capped by the brokers)")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Confluent's schema-registry.properties "
                                                "(flags override it)")] = None,
    basic_auth_user: Annotated[list[str] | None, typer.Option(help="user:password; turns on HTTP Basic")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Run a standalone schema registry against any Kafka-compatible cluster, until SIGTERM/SIGINT."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from moldau.broker.config import parse_properties
    from moldau.errors import MoldauError
    from moldau.registry import RegistryConfig, RegistryServer

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        properties = parse_properties(config.read_text()) if config else {}
        flags = {"kafkastore.bootstrap.servers": bootstrap_server or (None if config else DEFAULT_BOOTSTRAP),
                 "listeners": listener, "kafkastore.topic": topic,
                 "kafkastore.topic.replication.factor": None if replication_factor is None else str(replication_factor)}
        properties.update({k: v for k, v in flags.items() if v is not None})
        registry_config = RegistryConfig.from_properties(properties)
        if basic_auth_user:
            registry_config.basic_auth_users = dict(pair.split(":", 1) for pair in basic_auth_user)
        server = RegistryServer(registry_config)
        server.start()
    except (MoldauError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        stop.wait()
    finally:
        server.stop()
