"""Errors a request handler answers with a Kafka error code instead of closing the connection."""

from __future__ import annotations

from moldau.errors import MoldauError
from moldau.protocol.errors import ErrorCode


class ApiError(MoldauError):
    """A request failed with a Kafka error code; `message` goes into the response where the API has room."""

    def __init__(self, error_code: ErrorCode, message: str | None = None,
                 record_errors: list[tuple[int, str]] | None = None) -> None:
        super().__init__(message or error_code.name)
        self.error_code = error_code
        self.message = message
        self.record_errors = record_errors or []  # KIP-467 (Produce v8+): (batch index, message)


def as_api_error(exc: MoldauError) -> ApiError:
    """The one mapping from an error raised below the handlers (storage's ``StorageError``s, a refused
    record batch's ``InvalidRecordError``) to what a request answers: each carries its Kafka error code,
    e.g. ``KafkaStorageError`` -> KAFKA_STORAGE_ERROR; anything without one is UNKNOWN_SERVER_ERROR."""
    if isinstance(exc, ApiError):
        return exc
    code = getattr(exc, "error_code", ErrorCode.UNKNOWN_SERVER_ERROR)
    return ApiError(ErrorCode(int(code)), str(exc), getattr(exc, "record_errors", None))
