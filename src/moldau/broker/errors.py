"""Errors a request handler answers with a Kafka error code instead of closing the connection."""

from __future__ import annotations

from moldau.errors import ApiError, MoldauError
from moldau.protocol.errors import ErrorCode

__all__ = ["ApiError", "as_api_error"]


def as_api_error(exc: MoldauError) -> ApiError:
    """The one mapping from an error raised below the handlers (storage's ``StorageError``s, a refused
    record batch's ``InvalidRecordError``) to what a request answers: each carries its Kafka error code,
    e.g. ``KafkaStorageError`` -> KAFKA_STORAGE_ERROR; anything without one is UNKNOWN_SERVER_ERROR."""
    if isinstance(exc, ApiError):
        return exc
    code = getattr(exc, "error_code", ErrorCode.UNKNOWN_SERVER_ERROR)
    return ApiError(ErrorCode(int(code)), str(exc), getattr(exc, "record_errors", None))
