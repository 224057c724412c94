"""`moldau acl add|list|remove`, `moldau user add|list|remove` (SCRAM) and `moldau quota set|list`.

The options follow Kafka's tools: kafka-acls.sh (`--allow-principal User:alice --operation Read --topic t`),
kafka-configs.sh for SCRAM users and client quotas (`producer_byte_rate=1048576`).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from moldau.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, CommandConfig, connect, parse_pairs
from moldau.client import security_admin
from moldau.security.acl import (
    CLUSTER_NAME,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from moldau.security.sasl.scram import MECHANISM_BY_CODE, MECHANISMS

acl_app = typer.Typer(help="Add, list and remove ACLs (authorizer.class.name must be set).", no_args_is_help=True)
user_app = typer.Typer(help="Add, list and remove SCRAM users (KIP-554).", no_args_is_help=True)
quota_app = typer.Typer(help="Set and list client quotas (KIP-55, KIP-546).", no_args_is_help=True)

Principals = Annotated[list[str] | None, typer.Option(help="e.g. User:alice (repeatable)")]
Hosts = Annotated[list[str] | None, typer.Option(help="host the principal connects from; default *")]
Operations = Annotated[list[str] | None, typer.Option("--operation", help="Read, Write, Create, Delete, Alter, "
                                                                         "Describe, All, ... (repeatable)")]
Topic = Annotated[str | None, typer.Option("--topic")]
Group = Annotated[str | None, typer.Option("--group")]
TransactionalId = Annotated[str | None, typer.Option("--transactional-id")]
Cluster = Annotated[bool, typer.Option("--cluster", help="the cluster resource")]
PatternOption = Annotated[str, typer.Option("--resource-pattern-type", help="literal, prefixed (list/remove: "
                                                                            "also any, match)")]
JsonFlag = Annotated[bool, typer.Option("--json")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _resource(topic: str | None, group: str | None, transactional_id: str | None,
              cluster: bool) -> tuple[ResourceType, str] | None:
    chosen = [(ResourceType.TOPIC, topic), (ResourceType.GROUP, group),
              (ResourceType.TRANSACTIONAL_ID, transactional_id), (ResourceType.CLUSTER, CLUSTER_NAME if cluster else None)]
    given = [(t, n) for t, n in chosen if n is not None]
    if len(given) > 1:
        raise _fail("give one resource: --topic, --group, --transactional-id or --cluster")
    return given[0] if given else None


def _enum(kind, text: str, what: str):
    try:
        return kind[text.strip().upper().replace("-", "_")]
    except KeyError:
        raise _fail(f"unknown {what} {text!r}") from None


@acl_app.command("add")
def acl_add(allow_principal: Principals = None, deny_principal: Principals = None, allow_host: Hosts = None,
            deny_host: Hosts = None, operation: Operations = None, topic: Topic = None, group: Group = None,
            transactional_id: TransactionalId = None, cluster: Cluster = False,
            resource_pattern_type: PatternOption = "literal", bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP,
            command_config: CommandConfig = None) -> None:
    """Allow or deny principals operations on a topic, group, transactional id or the cluster."""
    resource = _resource(topic, group, transactional_id, cluster)
    if resource is None or not operation or not (allow_principal or deny_principal):
        raise _fail("acl add needs a resource, --operation and --allow-principal or --deny-principal")
    pattern = _enum(PatternType, resource_pattern_type, "pattern type")
    bindings = []
    for principals, hosts, permission in ((allow_principal, allow_host, AclPermissionType.ALLOW),
                                          (deny_principal, deny_host, AclPermissionType.DENY)):
        for principal in principals or []:
            for host in hosts or ["*"]:
                for op in operation:
                    bindings.append(AclBinding(resource[0], resource[1], pattern, principal, host,
                                               _enum(AclOperation, op, "operation"), permission))
    with connect(bootstrap_server, command_config) as client:
        security_admin.create_acls(client, bindings)
    typer.echo(f"Added {len(bindings)} ACL(s).")


def _filter(principal: str | None, topic: str | None, group: str | None, transactional_id: str | None,
            cluster: bool, pattern: str, operation: str | None = None,
            permission: str | None = None) -> AclBindingFilter:
    resource = _resource(topic, group, transactional_id, cluster)
    return AclBindingFilter(resource[0] if resource else ResourceType.ANY, resource[1] if resource else None,
                            _enum(PatternType, pattern, "pattern type"), principal, None,
                            _enum(AclOperation, operation, "operation") if operation else AclOperation.ANY,
                            _enum(AclPermissionType, permission, "permission") if permission
                            else AclPermissionType.ANY)


@acl_app.command("list")
def acl_list(principal: Annotated[str | None, typer.Option(help="only this principal")] = None,
             topic: Topic = None, group: Group = None, transactional_id: TransactionalId = None,
             cluster: Cluster = False, resource_pattern_type: PatternOption = "any",
             bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
             as_json: JsonFlag = False) -> None:
    """List ACLs (all, or those of one principal or resource; `--resource-pattern-type match` for every ACL
    that applies to the resource)."""
    acl_filter = _filter(principal, topic, group, transactional_id, cluster, resource_pattern_type)
    with connect(bootstrap_server, command_config) as client:
        bindings = security_admin.describe_acls(client, acl_filter)
    rows = [{"resource_type": b.resource_type.name, "name": b.resource_name, "pattern_type": b.pattern_type.name,
             "principal": b.principal, "host": b.host, "operation": b.operation.name,
             "permission": b.permission_type.name} for b in bindings]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        typer.echo(f"{row['permission']:5} {row['principal']} {row['operation']} on {row['resource_type']}:"
                   f"{row['name']} ({row['pattern_type']}) from {row['host']}")


@acl_app.command("remove")
def acl_remove(principal: Annotated[str | None, typer.Option(help="only this principal")] = None,
               operation: Annotated[str | None, typer.Option(help="only this operation")] = None,
               permission: Annotated[str | None, typer.Option(help="allow or deny")] = None,
               topic: Topic = None, group: Group = None, transactional_id: TransactionalId = None,
               cluster: Cluster = False, resource_pattern_type: PatternOption = "literal",
               bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None) -> None:
    """Remove the ACLs matching the filter."""
    if principal is None and _resource(topic, group, transactional_id, cluster) is None:
        raise _fail("acl remove needs a resource or --principal (removing every ACL is not a default)")
    acl_filter = _filter(principal, topic, group, transactional_id, cluster, resource_pattern_type, operation,
                         permission)
    with connect(bootstrap_server, command_config) as client:
        removed = security_admin.delete_acls(client, acl_filter)
    typer.echo(f"Removed {removed} ACL(s).")


Mechanism = Annotated[str, typer.Option(help="SCRAM-SHA-256 or SCRAM-SHA-512")]


@user_app.command("add")
def user_add(name: str, password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
             mechanism: Mechanism = "SCRAM-SHA-512", iterations: Annotated[int, typer.Option()] = 8192,
             bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None) -> None:
    """Create a SCRAM user or change its password (AlterUserScramCredentials)."""
    if mechanism.upper() not in MECHANISMS:
        raise _fail(f"unknown mechanism {mechanism}: SCRAM-SHA-256 or SCRAM-SHA-512")
    with connect(bootstrap_server, command_config) as client:
        security_admin.upsert_scram_user(client, name, password, mechanism.upper(), iterations)
    typer.echo(f"Set {mechanism.upper()} credentials of user {name}.")


@user_app.command("list")
def user_list(bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
              as_json: JsonFlag = False) -> None:
    """List SCRAM users and their mechanisms."""
    with connect(bootstrap_server, command_config) as client:
        users = security_admin.describe_scram_users(client)
    rows = {user: [{"mechanism": MECHANISM_BY_CODE.get(m, str(m)), "iterations": i} for m, i in creds]
            for user, creds in sorted(users.items())}
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for user, creds in rows.items():
        typer.echo(f"{user}: " + ", ".join(f"{c['mechanism']} (iterations={c['iterations']})" for c in creds))


@user_app.command("remove")
def user_remove(name: str, mechanism: Annotated[list[str] | None, typer.Option(help="default: both")] = None,
                bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None) -> None:
    """Delete a SCRAM user's credentials."""
    with connect(bootstrap_server, command_config) as client:
        existing = {MECHANISM_BY_CODE[m] for m, _ in security_admin.describe_scram_users(client, [name])[name]}
        for wanted in [m.upper() for m in mechanism] if mechanism else sorted(existing):
            security_admin.delete_scram_user(client, name, wanted)
    typer.echo(f"Removed user {name}.")


def _entity(user: str | None, user_default: bool, client_id: str | None, client_default: bool,
            ip: str | None, ip_default: bool) -> list[tuple[str, str | None]]:
    entity: list[tuple[str, str | None]] = []
    if user is not None or user_default:
        entity.append(("user", user))
    if client_id is not None or client_default:
        entity.append(("client-id", client_id))
    if ip is not None or ip_default:
        entity.append(("ip", ip))
    if not entity:
        raise _fail("name an entity: --user/--user-default, --client-id/--client-id-default, --ip/--ip-default")
    return entity


User = Annotated[str | None, typer.Option("--user")]
UserDefault = Annotated[bool, typer.Option("--user-default", help="the default of every user")]
ClientId = Annotated[str | None, typer.Option("--client-id")]
ClientDefault = Annotated[bool, typer.Option("--client-id-default", help="the default of every client id")]
Ip = Annotated[str | None, typer.Option("--ip")]
IpDefault = Annotated[bool, typer.Option("--ip-default")]


@quota_app.command("set")
def quota_set(config: Annotated[list[str] | None, typer.Option("--config", help="key=value, e.g. "
                                                                "producer_byte_rate=1048576")] = None,
              delete_config: Annotated[list[str] | None, typer.Option("--delete-config")] = None,
              user: User = None, user_default: UserDefault = False, client_id: ClientId = None,
              client_id_default: ClientDefault = False, ip: Ip = None, ip_default: IpDefault = False,
              bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None) -> None:
    """Set or delete quotas (producer_byte_rate, consumer_byte_rate, request_percentage, connection_creation_rate)."""
    entity = _entity(user, user_default, client_id, client_id_default, ip, ip_default)
    values: dict[str, float | None] = {}
    for key, value in parse_pairs(config, "config").items():
        try:
            values[key] = float(value)
        except ValueError:
            raise _fail(f"quota {key}={value!r} is not a number") from None
    values.update(dict.fromkeys(delete_config or []))
    if not values:
        raise _fail("give --config key=value or --delete-config key")
    with connect(bootstrap_server, command_config) as client:
        security_admin.alter_quota(client, entity, values)
    typer.echo(f"Updated quotas of {_describe_entity(entity)}.")


def _describe_entity(entity: list[tuple[str, str | None]]) -> str:
    return ", ".join(f"{t}={n if n is not None else '<default>'}" for t, n in entity)


@quota_app.command("list")
def quota_list(user: User = None, client_id: ClientId = None, ip: Ip = None,
               bootstrap_server: Bootstrap = DEFAULT_BOOTSTRAP, command_config: CommandConfig = None,
               as_json: JsonFlag = False) -> None:
    """List quotas (of every entity, or of the named user / client id / ip)."""
    components: list[tuple[str, int, str | None]] = [
        (t, 0, n) for t, n in (("user", user), ("client-id", client_id), ("ip", ip)) if n is not None]
    with connect(bootstrap_server, command_config) as client:
        entries = security_admin.describe_quotas(client, components)
    if as_json:
        typer.echo(json.dumps([{"entity": dict(entity), "values": values} for entity, values in entries]))
        return
    for entity, values in entries:
        typer.echo(f"{_describe_entity(entity)}: " + ", ".join(f"{k}={v:g}" for k, v in sorted(values.items())))
