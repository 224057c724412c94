"""Kafka's int8 ACL codes from requests as enums (unknown codes become UNKNOWN, which validation refuses)."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

from moldau.security.acl import AclBindingFilter, AclOperation, AclPermissionType, PatternType, ResourceType

E = TypeVar("E", bound=enum.IntEnum)


def enum_or_unknown(kind: type[E], code: int) -> E:
    try:
        return kind(code)
    except ValueError:
        return kind(0)


def filter_from(message: Any, resource_type: str, name: str, pattern_type: str, principal: str,
                host: str) -> AclBindingFilter:
    """An AclBindingFilter from a DescribeAcls request or a DeleteAcls filter (their field names)."""
    return AclBindingFilter(enum_or_unknown(ResourceType, getattr(message, resource_type)), getattr(message, name),
                            enum_or_unknown(PatternType, getattr(message, pattern_type)),
                            getattr(message, principal), getattr(message, host),
                            enum_or_unknown(AclOperation, message.operation),
                            enum_or_unknown(AclPermissionType, message.permission_type))
