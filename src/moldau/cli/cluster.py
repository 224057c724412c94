"""`moldau cluster up|status`: a local development cluster, and the health of any cluster.

`up` starts one etcd and N brokers on this machine (data under `--data-dir`, kept across runs), prints the
bootstrap string and runs until Ctrl-C. `status` asks a broker for the brokers, the controller, and the
under-replicated (ISR smaller than the replicas) and offline (no leader) partitions.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from moldau.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, CommandConfig, connect, fail

app = typer.Typer(help="Run a local cluster, or show a cluster's brokers and partition health.",
                  no_args_is_help=True)


@app.command()
def up(brokers: Annotated[int, typer.Option("--brokers", "-n", min=1, help="how many brokers")] = 3,
       data_dir: Annotated[Path, typer.Option("--data-dir", help="etcd and broker data (kept)")] =
       Path("moldau-cluster"),
       override: Annotated[list[str] | None, typer.Option("--override", help="broker config key=value")] = None,
       ) -> None:
    """Start etcd and BROKERS brokers on loopback, print the bootstrap string, run until Ctrl-C."""
    from moldau.cluster.etcd_server import EtcdNotFoundError
    from moldau.testing_cluster import running_cluster

    settings: dict[str, Any] = {}
    for pair in override or []:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"--override {pair!r}: expected key=value", 2)
        settings[key.replace(".", "_")] = value
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with running_cluster(brokers, data_dir=data_dir.resolve(), **settings) as cluster:
            typer.echo(f"etcd: {cluster.metadata_store}")
            for broker in cluster.brokers.values():
                typer.echo(f"broker {broker.broker_id}: {broker.bootstrap_servers} (log {broker.log_path})")
            typer.echo(f"bootstrap servers: {cluster.bootstrap_servers}")
            stop.wait()
            typer.echo("stopping the cluster")
    except EtcdNotFoundError as exc:
        fail(str(exc))


@app.command()
def status(bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
           as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Brokers, controller, and under-replicated and offline partitions."""
    with connect(bootstrap_server, command_config) as client:
        metadata = client.metadata(None)
        controller = client.describe_cluster().controller_id  # Metadata's names the broker asked, as KRaft's do
    brokers = sorted(({"id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack} for b in metadata.brokers),
                     key=lambda b: b["id"])
    under, offline, total = [], [], 0
    for topic in metadata.topics:
        for p in topic.partitions:
            total += 1
            entry = {"topic": topic.name, "partition": p.partition_index, "leader": p.leader_id,
                     "replicas": list(p.replica_nodes), "isr": list(p.isr_nodes),
                     "offline_replicas": list(p.offline_replicas or [])}
            if p.leader_id < 0:
                offline.append(entry)
            elif len(p.isr_nodes) < len(p.replica_nodes):
                under.append(entry)
    result = {"cluster_id": metadata.cluster_id, "controller": controller, "brokers": brokers,
              "partitions": total, "under_replicated": under, "offline": offline}
    if as_json:
        typer.echo(json.dumps(result))
        return
    console = Console()
    console.print(f"cluster {metadata.cluster_id}: {len(brokers)} broker(s), controller {controller}, "
                  f"{total} partition(s), {len(under)} under-replicated, {len(offline)} offline")
    table = Table(title="brokers")
    for column in ("id", "host", "port", "rack"):
        table.add_column(column)
    for b in brokers:
        table.add_row(str(b["id"]), b["host"], str(b["port"]), b["rack"] or "-")
    console.print(table)
    for title, rows in (("under-replicated partitions", under), ("offline partitions", offline)):
        if rows:
            t = Table(title=title)
            for column in ("topic", "partition", "leader", "replicas", "isr", "offline_replicas"):
                t.add_column(column)
            for r in rows:
                t.add_row(r["topic"], str(r["partition"]), str(r["leader"]), str(r["replicas"]), str(r["isr"]),
                          str(r["offline_replicas"]))
            console.print(t)


@app.command("elect-leaders")
def elect_leaders(
    topic: Annotated[str | None, typer.Option("--topic", help="default: every partition")] = None,
    partition: Annotated[list[int] | None, typer.Option("--partition", "-p", help="default: all of --topic")]
    = None,
    election_type: Annotated[str, typer.Option("--election-type", help="preferred or unclean")] = "preferred",
    bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
) -> None:
    """Elect leaders (ElectLeaders, KIP-183/460): the preferred replica, or a live replica of an offline
    partition (unclean: may lose data)."""
    kinds = {"preferred": 0, "unclean": 1}
    if election_type not in kinds:
        fail("--election-type is preferred or unclean")
    with connect(bootstrap_server, command_config) as client:
        wanted = None
        if topic is not None:
            wanted = {topic: partition or client.partitions_of(topic)}
        results = client.elect_leaders(wanted, kinds[election_type])
    for (name, index), code in sorted(results.items()):
        typer.echo(f"{name}-{index}: {'elected' if code == 0 else code.name}")
    if not results:
        typer.echo("No election was needed.")
