"""Kafka's StandardAuthorizer semantics over ACLs kept in the cluster metadata.

An action (principal, host, operation, resource) is allowed when the principal is a super user, or when
some ACL on the resource (its literal name, the `*` wildcard, or a prefix of the name) allows it and
none denies it: deny wins. ALLOW of READ, WRITE, DELETE or ALTER implies DESCRIBE; ALLOW of ALTER_CONFIGS
implies DESCRIBE_CONFIGS; ALL covers every operation. A resource without any ACL at all is allowed only
with `allow.everyone.if.no.acl.found=true`. Lookups are dictionary probes (literal names, then each
prefix of the name), so the cost does not grow with the number of unrelated ACLs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from moldau.security.acl import (
    RESOURCE_OPERATIONS,
    WILDCARD_HOST,
    WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from moldau.security.principal import KafkaPrincipal
from moldau.security.scram_store import SecurityMetadata

SECTION = "acls"
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
IMPLIES_DESCRIBE = {AclOperation.DESCRIBE, AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE,
                    AclOperation.ALTER}
IMPLIES_DESCRIBE_CONFIGS = {AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}


def parse_super_users(text: str | None) -> frozenset[str]:
    """`super.users=User:admin;User:ANONYMOUS` (semicolon-separated, as in Kafka)."""
    return frozenset(part.strip() for part in (text or "").split(";") if part.strip())


class StandardAuthorizer:
    def __init__(self, store: SecurityMetadata, super_users: frozenset[str], allow_if_no_acl: bool) -> None:
        self._store = store
        self.super_users = super_users
        self.allow_if_no_acl = allow_if_no_acl
        self._acls: list[AclBinding] = []
        self._literal: dict[tuple[ResourceType, str], list[AclBinding]] = defaultdict(list)
        self._prefixed: dict[tuple[ResourceType, str], list[AclBinding]] = defaultdict(list)
        self._prefix_lengths: dict[ResourceType, set[int]] = defaultdict(set)
        self.reload()
        store.subscribe(self._changed)

    def _changed(self, kind: str, name: str) -> None:
        if kind == "security" and name == SECTION:  # created here or, in a cluster, through another broker
            self.reload()

    def reload(self) -> None:
        self._load([AclBinding.from_json(doc) for doc in self._store.security(SECTION) or []])

    def _load(self, acls: list[AclBinding]) -> None:
        self._acls = list(dict.fromkeys(acls))
        self._literal.clear()
        self._prefixed.clear()
        self._prefix_lengths.clear()
        for acl in self._acls:
            key = (acl.resource_type, acl.resource_name)
            if acl.pattern_type == PatternType.LITERAL:
                self._literal[key].append(acl)
            else:
                self._prefixed[key].append(acl)
                self._prefix_lengths[acl.resource_type].add(len(acl.resource_name))

    # -- authorization ---------------------------------------------------------------------------

    def authorize(self, principal: KafkaPrincipal, host: str, operation: AclOperation,
                  resource_type: ResourceType, name: str) -> bool:
        principal_text = str(principal)
        if principal_text in self.super_users:
            return True
        found = False
        allowed = False
        for acl in self._resource_acls(resource_type, name):
            found = True
            result = _result(acl, principal_text, host, operation)
            if result is AclPermissionType.DENY:
                return False
            if result is AclPermissionType.ALLOW:
                allowed = True
        if not found:
            return self.allow_if_no_acl
        return allowed

    def _resource_acls(self, resource_type: ResourceType, name: str) -> Any:
        literal = self._literal
        yield from literal.get((resource_type, name), ())
        yield from literal.get((resource_type, WILDCARD_RESOURCE), ())
        prefixed = self._prefixed
        for length in self._prefix_lengths.get(resource_type, ()):
            if length <= len(name):
                yield from prefixed.get((resource_type, name[:length]), ())

    def authorized_operations(self, principal: KafkaPrincipal, host: str, resource_type: ResourceType,
                              name: str) -> int:
        """KIP-430's bitfield of the operations allowed on one resource."""
        bits = 0
        for operation in RESOURCE_OPERATIONS.get(resource_type, ()):
            if self.authorize(principal, host, operation, resource_type, name):
                bits |= 1 << operation
        return bits

    def authorize_any(self, principal: KafkaPrincipal, host: str, operation: AclOperation,
                      resource_type: ResourceType) -> bool:
        """Kafka's authorizeByResourceType: is `operation` allowed on some resource of this type?

        Used where Kafka accepts "WRITE on any topic" instead of IDEMPOTENT_WRITE on the cluster (KIP-679).
        """
        principal_text = str(principal)
        if principal_text in self.super_users:
            return True
        denied_all = any(acl.resource_type == resource_type and acl.resource_name == WILDCARD_RESOURCE
                         and acl.pattern_type == PatternType.LITERAL
                         and _result(acl, principal_text, host, operation) is AclPermissionType.DENY
                         for acl in self._acls)
        if denied_all:
            return False
        return any(acl.resource_type == resource_type
                   and _result(acl, principal_text, host, operation) is AclPermissionType.ALLOW
                   and not self._denied_exactly(acl, principal_text, host, operation) for acl in self._acls)

    def _denied_exactly(self, allow: AclBinding, principal: str, host: str, operation: AclOperation) -> bool:
        for acl in self._resource_acls(allow.resource_type, allow.resource_name):
            if _result(acl, principal, host, operation) is AclPermissionType.DENY:
                return True
        return False

    # -- administration --------------------------------------------------------------------------

    def acls(self, acl_filter: AclBindingFilter | None = None) -> list[AclBinding]:
        return [acl for acl in self._acls if acl_filter is None or acl_filter.matches(acl)]

    async def create(self, bindings: list[AclBinding]) -> None:
        """Adds the bindings to the stored ACLs (read-modify-write in the store: concurrent creations through
        other brokers are kept); every broker's authorizer reloads on the change."""
        def add(current: Any) -> Any:
            acls = [AclBinding.from_json(doc) for doc in current or []]
            known = set(acls)
            return [acl.to_json() for acl in acls + [b for b in dict.fromkeys(bindings) if b not in known]]

        await self._store.update_security(SECTION, add)

    async def delete(self, filters: list[AclBindingFilter]) -> list[list[AclBinding]]:
        """Remove the stored ACLs each filter matches; returns the matches per filter."""
        matched: list[list[AclBinding]] = [[] for _ in filters]

        def remove(current: Any) -> Any:
            acls = [AclBinding.from_json(doc) for doc in current or []]
            matched[:] = [[acl for acl in acls if f.matches(acl)] for f in filters]
            gone = {acl for group in matched for acl in group}
            return [acl.to_json() for acl in acls if acl not in gone]

        if filters:  # matched against the stored ACLs, not this broker's copy: the store is the truth
            await self._store.update_security(SECTION, remove)
        return matched


def _result(acl: AclBinding, principal: str, host: str, operation: AclOperation) -> AclPermissionType | None:
    """Kafka's StandardAuthorizerData.findResult: ALLOW, DENY, or None when the ACL does not apply."""
    if acl.principal != principal and acl.principal != WILDCARD_PRINCIPAL:
        return None
    if acl.host != host and acl.host != WILDCARD_HOST:
        return None
    if acl.operation != AclOperation.ALL:
        if acl.permission_type == AclPermissionType.ALLOW:
            if operation == AclOperation.DESCRIBE:
                if acl.operation not in IMPLIES_DESCRIBE:
                    return None
            elif operation == AclOperation.DESCRIBE_CONFIGS:
                if acl.operation not in IMPLIES_DESCRIBE_CONFIGS:
                    return None
            elif operation != acl.operation:
                return None
        elif operation != acl.operation:
            return None
    return acl.permission_type
