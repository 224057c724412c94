"""DescribeCluster (60): the cluster id, controller and brokers (KIP-700).

It names the elected controller (while it is alive), which Metadata does not: clients route controller
requests by Metadata's controller_id, tools display this one."""

from __future__ import annotations

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import CLUSTER_NAME, ResourceType

API_KEY = 60
ENDPOINT_TYPE_BROKERS = 1


async def handle(conn, header, request) -> messages.DescribeClusterResponse:
    response_type = messages.DescribeClusterResponse
    broker = conn.broker
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS:
        return response_type(
            error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            error_message=f"Unsupported endpoint type {request.endpoint_type}",
            endpoint_type=request.endpoint_type,
            cluster_id=broker.cluster_id,
        )
    return response_type(
        error_code=ErrorCode.NONE,
        endpoint_type=ENDPOINT_TYPE_BROKERS,
        cluster_id=broker.cluster_id,
        controller_id=broker.elected_controller_id,
        brokers=[
            response_type.DescribeClusterBroker(broker_id=e.node_id, host=e.host, port=e.port, rack=e.rack)
            for e in broker.endpoints(conn.listener_name)
        ],
        cluster_authorized_operations=conn.session.operations_bitfield(ResourceType.CLUSTER, CLUSTER_NAME)
        if request.include_cluster_authorized_operations else -(2**31),
    )
