"""The root of Moldau's exception hierarchy."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moldau.protocol.errors import ErrorCode


class MoldauError(Exception):
    """Base class of every error Moldau raises on purpose."""


class ApiError(MoldauError):
    """A request failed with a Kafka error code; `message` goes into the response where the API has room.

    Defined here, below every layer, so that coordinator/ can raise errors the broker's handlers answer
    without importing moldau.broker (``moldau.broker.errors`` re-exports it)."""

    def __init__(self, error_code: ErrorCode, message: str | None = None,
                 record_errors: list[tuple[int, str]] | None = None) -> None:
        super().__init__(message or error_code.name)
        self.error_code = error_code
        self.message = message
        self.record_errors = record_errors or []  # KIP-467 (Produce v8+): (batch index, message)
