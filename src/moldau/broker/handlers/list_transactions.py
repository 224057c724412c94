"""ListTransactions (66): the transactional ids this coordinator knows, by state and producer id (KIP-664).

v1 adds ``duration_filter`` (KIP-994), v2 ``transactional_id_pattern`` (KIP-1152, a Java regex; Python's
``re.fullmatch`` is used, which agrees for ordinary patterns).
"""

from __future__ import annotations

import re

from moldau.coordinator.transaction_metadata import TransactionState
from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation, ResourceType

API_KEY = 66
Response = messages.ListTransactionsResponse


async def handle(conn, header, request: messages.ListTransactionsRequest) -> Response:
    states = list(request.state_filters or ())
    unknown = [s for s in states if TransactionState.from_name(s) is None]
    duration = request.duration_filter if header.api_version >= 1 else -1
    found = conn.broker.transaction_coordinator.list_transactions(states, list(request.producer_id_filters or ()),
                                                                 duration)
    found = [m for m in found
             if conn.session.allowed(AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, m.transactional_id)]
    pattern = request.transactional_id_pattern if header.api_version >= 2 else None
    if pattern:
        try:
            regex = re.compile(pattern)
        except re.error:
            return Response(throttle_time_ms=0, error_code=ErrorCode.INVALID_REGULAR_EXPRESSION,
                            unknown_state_filters=[], transaction_states=[])
        found = [m for m in found if regex.fullmatch(m.transactional_id)]
    return Response(throttle_time_ms=0, error_code=ErrorCode.NONE, unknown_state_filters=unknown,
                    transaction_states=[Response.TransactionState(
                        transactional_id=m.transactional_id, producer_id=m.producer_id,
                        transaction_state=m.state.display_name) for m in found])

