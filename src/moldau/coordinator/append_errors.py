"""The error a coordinator answers when writing its records to its internal topic fails.

Kafka's ``GroupMetadataManager``/``TransactionStateManager`` (and the new ``GroupCoordinatorService``)
translate the append's error, so that a client retries the way the failure calls for: a failed disk
(KAFKA_STORAGE_ERROR) means "this coordinator is gone, find it again" (NOT_COORDINATOR); a partition
that cannot take the write yet means COORDINATOR_NOT_AVAILABLE; a record too big is a server bug.
"""

from __future__ import annotations

from moldau.protocol.errors import ErrorCode

_APPEND_TO_COORDINATOR_ERROR = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.REQUEST_TIMED_OUT: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
    ErrorCode.MESSAGE_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
}


def coordinator_append_error(exc: BaseException) -> ErrorCode:
    """The code a coordinator request answers after its append failed with ``exc`` (any error carrying
    an ``error_code``, e.g. the broker's ApiError or a storage error; others are not retriable here).

    >>> class Failed(Exception):
    ...     error_code = ErrorCode.KAFKA_STORAGE_ERROR
    >>> coordinator_append_error(Failed()).name
    'NOT_COORDINATOR'
    """
    code = getattr(exc, "error_code", None)
    if code is None:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    code = ErrorCode(int(code))
    return _APPEND_TO_COORDINATOR_ERROR.get(code, code)
