"""StandardAuthorizer semantics without a broker: patterns, implied operations, hosts, wildcards, defaults."""

from __future__ import annotations

import asyncio

import pytest

from moldau.cluster.config_store import MemoryConfigStore
from moldau.security.acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from moldau.security.authorizer import StandardAuthorizer, parse_super_users
from moldau.security.principal import KafkaPrincipal

Op, Res, Perm, Pat = AclOperation, ResourceType, AclPermissionType, PatternType
ALICE = KafkaPrincipal("User", "alice")


def binding(name: str, op: AclOperation, perm: AclPermissionType = Perm.ALLOW, pattern: PatternType = Pat.LITERAL,
            principal: str = "User:alice", host: str = "*", rtype: ResourceType = Res.TOPIC) -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, host, op, perm)


def authorizer(*acls: AclBinding, allow_if_no_acl: bool = False, supers: str = "") -> StandardAuthorizer:
    result = StandardAuthorizer(MemoryConfigStore(), parse_super_users(supers), allow_if_no_acl)
    asyncio.run(result.create(list(acls)))
    return result


def allowed(a: StandardAuthorizer, op: AclOperation, name: str = "orders", host: str = "10.0.0.1",
            principal: KafkaPrincipal = ALICE) -> bool:
    return a.authorize(principal, host, op, Res.TOPIC, name)


@pytest.mark.parametrize("granted, asked, expected", [
    (Op.READ, Op.DESCRIBE, True), (Op.WRITE, Op.DESCRIBE, True), (Op.DELETE, Op.DESCRIBE, True),
    (Op.ALTER, Op.DESCRIBE, True), (Op.ALTER_CONFIGS, Op.DESCRIBE_CONFIGS, True), (Op.ALL, Op.WRITE, True),
    (Op.READ, Op.WRITE, False), (Op.DESCRIBE, Op.READ, False), (Op.CREATE, Op.DESCRIBE, False),
])
def test_implied_operations(granted, asked, expected):
    assert allowed(authorizer(binding("orders", granted)), asked) is expected


def test_deny_wins_and_only_the_denied_operation():
    a = authorizer(binding("orders", Op.ALL), binding("ord", Op.WRITE, Perm.DENY, Pat.PREFIXED))
    assert not allowed(a, Op.WRITE)
    assert allowed(a, Op.READ)
    # A DENY of READ does not deny DESCRIBE (implication only widens ALLOW).
    b = authorizer(binding("orders", Op.READ), binding("orders", Op.READ, Perm.DENY))
    assert not allowed(b, Op.READ) and allowed(b, Op.DESCRIBE)


def test_literal_wildcard_and_prefix_matching():
    a = authorizer(binding("pay", Op.READ, pattern=Pat.PREFIXED), binding("*", Op.DESCRIBE))
    assert allowed(a, Op.READ, "payments") and not allowed(a, Op.READ, "pa")
    assert allowed(a, Op.DESCRIBE, "anything") and not allowed(a, Op.READ, "anything")


def test_hosts_and_wildcard_principal():
    a = authorizer(binding("orders", Op.READ, host="10.0.0.1"), binding("orders", Op.WRITE, principal="User:*"))
    assert allowed(a, Op.READ, host="10.0.0.1") and not allowed(a, Op.READ, host="10.0.0.2")
    assert allowed(a, Op.WRITE, principal=KafkaPrincipal("User", "bob"))


def test_no_acl_found_and_super_users():
    assert not allowed(authorizer(), Op.READ)
    assert allowed(authorizer(allow_if_no_acl=True), Op.READ)
    # Any ACL on the resource, even for someone else, turns the no-ACL default off.
    assert not allowed(authorizer(binding("orders", Op.READ, principal="User:bob"), allow_if_no_acl=True), Op.READ)
    assert allowed(authorizer(binding("orders", Op.ALL, Perm.DENY), supers="User:admin;User:alice"), Op.READ)


def test_filters_for_describe_and_delete():
    a = authorizer(binding("pay", Op.READ, pattern=Pat.PREFIXED), binding("payments", Op.WRITE),
                   binding("*", Op.DESCRIBE), binding("other", Op.READ))
    match = AclBindingFilter(Res.TOPIC, "payments", Pat.MATCH, None, None, Op.ANY, Perm.ANY)
    assert {b.resource_name for b in a.acls(match)} == {"pay", "payments", "*"}
    literal = AclBindingFilter(Res.ANY, "pay", Pat.ANY, None, None, Op.ANY, Perm.ANY)
    assert [b.resource_name for b in a.acls(literal)] == ["pay"]
    removed = asyncio.run(a.delete([AclBindingFilter(Res.TOPIC, None, Pat.LITERAL, "User:alice", None, Op.READ,
                                                     Perm.ALLOW)]))
    assert [b.resource_name for b in removed[0]] == ["other"]
    assert len(a.acls()) == 3


def test_validation_of_new_bindings():
    assert binding("x", Op.ANY).validation_error() is not None
    assert binding("other", Op.ALTER, rtype=Res.CLUSTER).validation_error() is not None
    assert binding("x", Op.READ, principal="alice").validation_error() is not None
    assert binding("x", Op.READ, pattern=Pat.MATCH).validation_error() is not None
    assert binding("x", Op.READ).validation_error() is None


def test_idempotent_write_from_write_on_any_topic():
    a = authorizer(binding("orders", Op.WRITE))
    assert a.authorize_any(ALICE, "h", Op.WRITE, Res.TOPIC)
    assert not authorizer().authorize_any(ALICE, "h", Op.WRITE, Res.TOPIC)


def test_concurrent_creations_on_one_broker_all_persist(tmp_path):
    """The local store writes in a worker thread; writers of one section take turns, so none is lost."""
    from moldau.cluster.config_store import LocalConfigStore
    from moldau.cluster.metadata_store import LocalMetadataStore

    async def create_all() -> StandardAuthorizer:
        a = StandardAuthorizer(LocalConfigStore(LocalMetadataStore(tmp_path)), frozenset(), False)
        await asyncio.gather(*(a.create([binding(f"t{i}", Op.READ)]) for i in range(20)))
        return a

    assert len(asyncio.run(create_all()).acls()) == 20
    reopened = StandardAuthorizer(LocalConfigStore(LocalMetadataStore(tmp_path)), frozenset(), False)
    assert sorted(acl.resource_name for acl in reopened.acls()) == sorted(f"t{i}" for i in range(20))
