"""DeleteAcls (31): remove the ACL bindings each filter matches and report them."""

from __future__ import annotations

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl_codes import filter_from

API_KEY = 31

Response = messages.DeleteAclsResponse


async def handle(conn, header, request: messages.DeleteAclsRequest) -> messages.DeleteAclsResponse:
    authorizer = conn.broker.authorizer
    if authorizer is None:
        return Response(filter_results=[
            Response.DeleteAclsFilterResult(error_code=ErrorCode.SECURITY_DISABLED,
                                            error_message="No Authorizer is configured.") for _ in request.filters])
    filters = [filter_from(f, "resource_type_filter", "resource_name_filter", "pattern_type_filter",
                           "principal_filter", "host_filter") for f in request.filters]
    problems = [f.validation_error() for f in filters]
    matched = await authorizer.delete([f for f, p in zip(filters, problems, strict=True) if p is None])
    results = []
    for problem in problems:
        if problem is not None:
            results.append(Response.DeleteAclsFilterResult(error_code=ErrorCode.INVALID_REQUEST,
                                                            error_message=problem))
            continue
        results.append(Response.DeleteAclsFilterResult(error_code=ErrorCode.NONE, matching_acls=[
            Response.DeleteAclsMatchingAcl(error_code=ErrorCode.NONE, resource_type=acl.resource_type,
                                           resource_name=acl.resource_name, pattern_type=acl.pattern_type,
                                           principal=acl.principal, host=acl.host, operation=acl.operation,
                                           permission_type=acl.permission_type)
            for acl in matched.pop(0)]))
    return Response(throttle_time_ms=0, filter_results=results)
