"""CreateAcls (30): add ACL bindings (CLUSTER ALTER is checked by the dispatch table)."""

from __future__ import annotations

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclBinding, AclOperation, AclPermissionType, PatternType, ResourceType
from moldau.security.acl_codes import enum_or_unknown

API_KEY = 30

Response = messages.CreateAclsResponse


async def handle(conn, header, request: messages.CreateAclsRequest) -> messages.CreateAclsResponse:
    authorizer = conn.broker.authorizer
    results = []
    valid = []
    for creation in request.creations:
        if authorizer is None:
            results.append(Response.AclCreationResult(error_code=ErrorCode.SECURITY_DISABLED,
                                                      error_message="No Authorizer is configured."))
            continue
        binding = AclBinding(enum_or_unknown(ResourceType, creation.resource_type), creation.resource_name or "",
                             enum_or_unknown(PatternType, creation.resource_pattern_type), creation.principal or "",
                             creation.host or "", enum_or_unknown(AclOperation, creation.operation),
                             enum_or_unknown(AclPermissionType, creation.permission_type))
        problem = binding.validation_error()
        if problem is not None:
            results.append(Response.AclCreationResult(error_code=ErrorCode.INVALID_REQUEST, error_message=problem))
            continue
        valid.append(binding)
        results.append(Response.AclCreationResult(error_code=ErrorCode.NONE))
    if valid:
        await authorizer.create(valid)
    return Response(throttle_time_ms=0, results=results)
