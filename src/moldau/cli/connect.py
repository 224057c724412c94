"""`moldau connect start` (a Connect worker) and `moldau connector ...` (its REST API from the command line)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from moldau.cli.common import parse_pairs

connect_app = typer.Typer(help="Run Kafka Connect workers.", no_args_is_help=True)
connector_app = typer.Typer(help="Manage connectors through a Connect worker's REST API.", no_args_is_help=True)

Url = Annotated[str, typer.Option("--url", "-u", envvar="MOLDAU_CONNECT_URL", help="the worker's REST API")]
DEFAULT_URL = os.environ.get("MOLDAU_CONNECT_URL", "http://localhost:8083")
Name = Annotated[str, typer.Argument(help="connector name")]
HTTP_TIMEOUT_S = 60


@connect_app.command("start")
def start(
    worker_properties: Annotated[Path, typer.Argument(help="worker config (Kafka's connect-*.properties)")],
    connectors: Annotated[list[Path] | None, typer.Argument(help="standalone mode: connector .properties")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Run a worker: distributed when the config has group.id, else standalone with the given connectors."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from moldau.connect.api.errors import ConnectException
    from moldau.connect.server import load_server

    try:
        server = load_server(worker_properties, list(connectors or []))
    except (ConnectException, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    def shutdown(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    try:
        server.start()
        typer.echo(f"Kafka Connect REST API at {server.rest_url}", err=True)
        server.wait()
    except KeyboardInterrupt:
        pass
    except ConnectException as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        server.stop()


def request(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"error_code": exc.code, "message": raw.decode(errors="replace")}


def call(url: str, method: str, path: str, body: Any = None) -> Any:
    """One REST call; a Kafka error body becomes `error: <message>` and exit code 1."""
    try:
        status, result = request(url, method, path, body)
    except OSError as exc:
        typer.echo(f"error: cannot reach the Connect REST API at {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    if status >= 400:
        message = result.get("message") if isinstance(result, dict) else result
        typer.echo(f"error: {message} (HTTP {status})", err=True)
        raise typer.Exit(1)
    return result


def emit(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


@connector_app.command("list")
def list_connectors(url: Url = DEFAULT_URL,
                    expand: Annotated[list[str] | None, typer.Option(help="status and/or info")] = None) -> None:
    """List connectors (GET /connectors)."""
    query = "&".join(f"expand={e}" for e in expand or [])
    emit(call(url, "GET", "/connectors" + (f"?{query}" if query else "")))


def _read_config(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        parsed = json.loads(text)
        return parsed.get("config", parsed) if isinstance(parsed, dict) else {}
    from moldau.connect.runtime.worker_config import read_properties

    return read_properties(path)


@connector_app.command("create")
def create(name: Name,
           config_file: Annotated[Path | None, typer.Option("--config-file", "-f", help=".properties or .json")] = None,
           config: Annotated[list[str] | None, typer.Option("--config", "-c", help="key=value")] = None,
           replace: Annotated[bool, typer.Option(help="update if it exists (PUT .../config)")] = False,
           url: Url = DEFAULT_URL) -> None:
    """Create a connector (POST /connectors), or create-or-update with --replace."""
    settings: dict[str, Any] = _read_config(config_file) if config_file else {}
    settings.update(parse_pairs(config, "config"))
    settings["name"] = name
    if replace:
        emit(call(url, "PUT", f"/connectors/{name}/config", settings))
    else:
        emit(call(url, "POST", "/connectors", {"name": name, "config": settings}))


@connector_app.command("status")
def status(name: Name, url: Url = DEFAULT_URL) -> None:
    """Connector and task states (GET /connectors/{name}/status)."""
    emit(call(url, "GET", f"/connectors/{name}/status"))


@connector_app.command("config")
def config_of(name: Name, url: Url = DEFAULT_URL) -> None:
    """The connector's config."""
    emit(call(url, "GET", f"/connectors/{name}/config"))


@connector_app.command("pause")
def pause(name: Name, url: Url = DEFAULT_URL) -> None:
    call(url, "PUT", f"/connectors/{name}/pause")
    typer.echo(f"Pausing connector {name}")


@connector_app.command("resume")
def resume(name: Name, url: Url = DEFAULT_URL) -> None:
    call(url, "PUT", f"/connectors/{name}/resume")
    typer.echo(f"Resuming connector {name}")


@connector_app.command("stop")
def stop(name: Name, url: Url = DEFAULT_URL) -> None:
    """Stop the connector and shut its tasks down (KIP-875), keeping its config."""
    call(url, "PUT", f"/connectors/{name}/stop")
    typer.echo(f"Stopped connector {name}")


@connector_app.command("restart")
def restart(name: Name, include_tasks: Annotated[bool, typer.Option("--include-tasks")] = False,
            only_failed: Annotated[bool, typer.Option("--only-failed")] = False, url: Url = DEFAULT_URL) -> None:
    """Restart the connector (and its tasks with --include-tasks) (KIP-745)."""
    query = f"?includeTasks={str(include_tasks).lower()}&onlyFailed={str(only_failed).lower()}"
    result = call(url, "POST", f"/connectors/{name}/restart{query}")
    if result is not None:
        emit(result)
    else:
        typer.echo(f"Restarted connector {name}")


@connector_app.command("delete")
def delete(name: Name, url: Url = DEFAULT_URL) -> None:
    call(url, "DELETE", f"/connectors/{name}")
    typer.echo(f"Deleted connector {name}")


@connector_app.command("offsets")
def offsets(name: Name, reset: Annotated[bool, typer.Option("--reset", help="DELETE the offsets")] = False,
            set_offsets: Annotated[str | None, typer.Option(
                "--set", help='PATCH: {"offsets": [{"partition": {...}, "offset": {...}}]}')] = None,
            url: Url = DEFAULT_URL) -> None:
    """Show, alter (--set) or reset (--reset) a stopped connector's offsets (KIP-875)."""
    if reset:
        emit(call(url, "DELETE", f"/connectors/{name}/offsets"))
    elif set_offsets is not None:
        emit(call(url, "PATCH", f"/connectors/{name}/offsets", json.loads(set_offsets)))
    else:
        emit(call(url, "GET", f"/connectors/{name}/offsets"))


@connector_app.command("plugins")
def plugins(url: Url = DEFAULT_URL) -> None:
    """Installed connector plugins (GET /connector-plugins)."""
    emit(call(url, "GET", "/connector-plugins"))
