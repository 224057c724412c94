"""ACL, SCRAM user and client quota administration calls of Moldau's client (used by the CLI and tests)."""

from __future__ import annotations

import os
from typing import Any

from moldau.client.client import Client, ClientError
from moldau.protocol import messages
from moldau.security.acl import AclBinding, AclBindingFilter
from moldau.security.sasl.scram import MECHANISMS, salted_password


def create_acls(client: Client, bindings: list[AclBinding]) -> None:
    r = messages.CreateAclsRequest
    response = client.send(30, r(creations=[r.AclCreation(
        resource_type=b.resource_type, resource_name=b.resource_name, resource_pattern_type=b.pattern_type,
        principal=b.principal, host=b.host, operation=b.operation, permission_type=b.permission_type)
        for b in bindings]))
    for result in response.results:
        if result.error_code:
            raise ClientError(result.error_code, f"Create ACLs: {result.error_message or ''}".rstrip(": "))


def describe_acls(client: Client, acl_filter: AclBindingFilter) -> list[AclBinding]:
    response = client.send(29, messages.DescribeAclsRequest(
        resource_type_filter=acl_filter.resource_type, resource_name_filter=acl_filter.resource_name,
        pattern_type_filter=acl_filter.pattern_type, principal_filter=acl_filter.principal,
        host_filter=acl_filter.host, operation=acl_filter.operation, permission_type=acl_filter.permission_type))
    if response.error_code:
        raise ClientError(response.error_code, f"Describe ACLs: {response.error_message or ''}".rstrip(": "))
    return [AclBinding.from_json({"resource_type": res.resource_type, "resource_name": res.resource_name,
                                  "pattern_type": res.pattern_type, "principal": a.principal, "host": a.host,
                                  "operation": a.operation, "permission_type": a.permission_type})
            for res in response.resources for a in res.acls]


def delete_acls(client: Client, acl_filter: AclBindingFilter) -> int:
    r = messages.DeleteAclsRequest
    response = client.send(31, r(filters=[r.DeleteAclsFilter(
        resource_type_filter=acl_filter.resource_type, resource_name_filter=acl_filter.resource_name,
        pattern_type_filter=acl_filter.pattern_type, principal_filter=acl_filter.principal,
        host_filter=acl_filter.host, operation=acl_filter.operation, permission_type=acl_filter.permission_type)]))
    result = response.filter_results[0]
    if result.error_code:
        raise ClientError(result.error_code, f"Delete ACLs: {result.error_message or ''}".rstrip(": "))
    return len(result.matching_acls)


def upsert_scram_user(client: Client, user: str, password: str, mechanism: str = "SCRAM-SHA-512",
                      iterations: int = 8192) -> None:
    salt = os.urandom(32)
    r = messages.AlterUserScramCredentialsRequest
    response = client.send(51, r(deletions=[], upsertions=[r.ScramCredentialUpsertion(
        name=user, mechanism=MECHANISMS[mechanism][0], iterations=iterations, salt=salt,
        salted_password=salted_password(mechanism, password, salt, iterations))]))
    _check_users(response)


def delete_scram_user(client: Client, user: str, mechanism: str) -> None:
    r = messages.AlterUserScramCredentialsRequest
    response = client.send(51, r(upsertions=[], deletions=[r.ScramCredentialDeletion(
        name=user, mechanism=MECHANISMS[mechanism][0])]))
    _check_users(response)


def _check_users(response: Any) -> None:
    for result in response.results:
        if result.error_code:
            raise ClientError(result.error_code, f"User {result.user}: {result.error_message or ''}".rstrip(": "))


def describe_scram_users(client: Client, users: list[str] | None = None) -> dict[str, list[tuple[int, int]]]:
    r = messages.DescribeUserScramCredentialsRequest
    response = client.send(50, r(users=None if not users else [r.UserName(name=u) for u in users]))
    if response.error_code:
        raise ClientError(response.error_code, "Describe users")
    result = {}
    for entry in response.results:
        if entry.error_code:
            raise ClientError(entry.error_code, f"User {entry.user}: {entry.error_message or ''}".rstrip(": "))
        result[entry.user] = [(c.mechanism, c.iterations) for c in entry.credential_infos]
    return result


def alter_quota(client: Client, entity: list[tuple[str, str | None]], values: dict[str, float | None]) -> None:
    """Set (value) or remove (None) quota keys of one entity, e.g. [("client-id", "app")], {"producer_byte_rate": 1e6}."""
    r = messages.AlterClientQuotasRequest
    response = client.send(49, r(validate_only=False, entries=[r.EntryData(
        entity=[r.EntityData(entity_type=t, entity_name=n) for t, n in entity],
        ops=[r.OpData(key=k, value=v or 0.0, remove=v is None) for k, v in values.items()])]))
    for entry in response.entries:
        if entry.error_code:
            raise ClientError(entry.error_code, f"Alter quotas: {entry.error_message or ''}".rstrip(": "))


def describe_quotas(client: Client, components: list[tuple[str, int, str | None]] | None = None,
                    strict: bool = False) -> list[tuple[list[tuple[str, str | None]], dict[str, float]]]:
    r = messages.DescribeClientQuotasRequest
    response = client.send(48, r(strict=strict, components=[
        r.ComponentData(entity_type=t, match_type=m, match=n) for t, m, n in components or []]))
    if response.error_code:
        raise ClientError(response.error_code, f"Describe quotas: {response.error_message or ''}".rstrip(": "))
    return [([(e.entity_type, e.entity_name) for e in entry.entity], {v.key: v.value for v in entry.values})
            for entry in response.entries or []]
