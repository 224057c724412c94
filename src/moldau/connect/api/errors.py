"""Connect's exception hierarchy (org.apache.kafka.connect.errors)."""

from __future__ import annotations

from moldau.errors import MoldauError


class ConnectException(MoldauError):
    """Any failure in a connector, task, converter or transform."""


class DataException(ConnectException):
    """A record's data does not fit its schema, or cannot be converted."""


class RetriableException(ConnectException):
    """A transient failure: the framework retries the operation (SourceTask.poll, SinkTask.put)."""


class NotFoundException(ConnectException):
    """A connector, task or plugin that does not exist (REST 404)."""


class AlreadyExistsException(ConnectException):
    """A connector created twice (REST 409)."""


class BadRequestException(ConnectException):
    """A request the worker refuses as invalid (REST 400)."""


class ConnectRestException(ConnectException):
    """A REST error with its own HTTP status (Kafka's ConnectRestException)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
