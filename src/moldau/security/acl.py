"""ACL bindings and filters with Kafka's codes (org.apache.kafka.common.acl / resource).

A binding is (resource pattern, principal, host, operation, permission). Filters select bindings for
DescribeAcls and DeleteAcls: ANY fields match everything, and the MATCH pattern type selects every
binding that applies to one named resource (literal name, the `*` wildcard, prefixes of it).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

WILDCARD_RESOURCE = "*"
WILDCARD_PRINCIPAL = "User:*"
WILDCARD_HOST = "*"
CLUSTER_NAME = "kafka-cluster"


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14
    TWO_PHASE_COMMIT = 15


class AclPermissionType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


# Operations each resource type supports (Kafka's "Operations and Resources on Protocols"); used for
# authorized-operations bitfields (KIP-430).
RESOURCE_OPERATIONS: dict[ResourceType, tuple[AclOperation, ...]] = {
    ResourceType.TOPIC: (AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE,
                         AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
                         AclOperation.ALTER_CONFIGS),
    ResourceType.GROUP: (AclOperation.READ, AclOperation.DELETE, AclOperation.DESCRIBE,
                         AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS),
    ResourceType.CLUSTER: (AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE,
                           AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
                           AclOperation.IDEMPOTENT_WRITE, AclOperation.CREATE_TOKENS, AclOperation.DESCRIBE_TOKENS),
    ResourceType.TRANSACTIONAL_ID: (AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.TWO_PHASE_COMMIT),
}


@dataclass(slots=True, frozen=True)
class AclBinding:
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission_type: AclPermissionType

    def to_json(self) -> dict[str, object]:
        return {key: int(value) if isinstance(value, enum.IntEnum) else value for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AclBinding:
        return cls(ResourceType(doc["resource_type"]), str(doc["resource_name"]), PatternType(doc["pattern_type"]),
                   str(doc["principal"]), str(doc["host"]), AclOperation(doc["operation"]),
                   AclPermissionType(doc["permission_type"]))

    def validation_error(self) -> str | None:
        """Why CreateAcls must refuse this binding (Kafka's AclControlManager.validateNewAcl), or None."""
        if self.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
            return f"Invalid resourceType {self.resource_type.name}"
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            return f"Invalid patternType {self.pattern_type.name}"
        if self.operation in (AclOperation.UNKNOWN, AclOperation.ANY):
            return f"Invalid operation {self.operation.name}"
        if self.permission_type not in (AclPermissionType.ALLOW, AclPermissionType.DENY):
            return f"Invalid permissionType {self.permission_type.name}"
        if not self.resource_name:
            return "Resource name should not be empty"
        if self.resource_type == ResourceType.CLUSTER and (self.resource_name != CLUSTER_NAME
                                                           or self.pattern_type != PatternType.LITERAL):
            return f"The only valid name for the CLUSTER resource is {CLUSTER_NAME} (a LITERAL pattern)"
        kind, sep, _ = self.principal.partition(":")
        if not sep or not kind:
            return f"Could not parse principal from `{self.principal}` (no colon is present separating the " \
                   "principal type from the principal name)"
        if not self.host:
            return "Invalid host: the host must not be empty (use * for every host)"
        return None


@dataclass(slots=True, frozen=True)
class AclBindingFilter:
    resource_type: ResourceType
    resource_name: str | None
    pattern_type: PatternType
    principal: str | None
    host: str | None
    operation: AclOperation
    permission_type: AclPermissionType

    def validation_error(self) -> str | None:
        for value, name in ((self.resource_type, "resourceType"), (self.pattern_type, "patternType"),
                            (self.operation, "operation"), (self.permission_type, "permissionType")):
            if value == 0:
                return f"Invalid {name} UNKNOWN in the ACL filter"
        return None

    def matches(self, acl: AclBinding) -> bool:
        if self.resource_type not in (ResourceType.ANY, acl.resource_type):
            return False
        if not self._matches_pattern(acl):
            return False
        if self.principal is not None and self.principal != acl.principal:
            return False
        if self.host is not None and self.host != acl.host:
            return False
        if self.operation not in (AclOperation.ANY, acl.operation):
            return False
        return self.permission_type in (AclPermissionType.ANY, acl.permission_type)

    def _matches_pattern(self, acl: AclBinding) -> bool:
        name = self.resource_name
        if self.pattern_type == PatternType.MATCH:
            if name is None:
                return True
            if acl.pattern_type == PatternType.LITERAL:
                return acl.resource_name in (name, WILDCARD_RESOURCE)
            return acl.pattern_type == PatternType.PREFIXED and name.startswith(acl.resource_name)
        if self.pattern_type not in (PatternType.ANY, acl.pattern_type):
            return False
        return name is None or name == acl.resource_name
