"""DescribeAcls (29): the ACL bindings a filter matches, grouped by resource pattern."""

from __future__ import annotations

from typing import Any

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl_codes import filter_from

API_KEY = 29

Response = messages.DescribeAclsResponse


async def handle(conn, header, request: messages.DescribeAclsRequest) -> messages.DescribeAclsResponse:
    authorizer = conn.broker.authorizer
    if authorizer is None:
        return Response(error_code=ErrorCode.SECURITY_DISABLED, error_message="No Authorizer is configured.")
    acl_filter = filter_from(request, "resource_type_filter", "resource_name_filter", "pattern_type_filter",
                             "principal_filter", "host_filter")
    problem = acl_filter.validation_error()
    if problem is not None:
        return Response(error_code=ErrorCode.INVALID_REQUEST, error_message=problem)
    resources: dict[tuple[int, str, int], list[Any]] = {}
    for acl in authorizer.acls(acl_filter):
        key = (int(acl.resource_type), acl.resource_name, int(acl.pattern_type))
        resources.setdefault(key, []).append(Response.AclDescription(
            principal=acl.principal, host=acl.host, operation=acl.operation, permission_type=acl.permission_type))
    return Response(error_code=ErrorCode.NONE, resources=[
        Response.DescribeAclsResource(resource_type=rt, resource_name=name, pattern_type=pt, acls=acls)
        for (rt, name, pt), acls in resources.items()])
