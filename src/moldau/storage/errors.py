"""Errors raised by the storage layer, each carrying the Kafka error code a request answers with."""

from __future__ import annotations

from moldau.errors import MoldauError
from moldau.protocol.errors import ErrorCode


class StorageError(MoldauError):
    """Base class of storage errors; ``error_code`` is the Kafka code to answer with."""

    error_code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR


class OffsetOutOfRangeError(StorageError):
    """The requested offset is below the log start offset or above the log end offset (Kafka's
    OffsetOutOfRangeException); a consumer resets its position by its ``auto.offset.reset``."""

    error_code = ErrorCode.OFFSET_OUT_OF_RANGE


class KafkaStorageError(StorageError):
    """An I/O error on the log directory (Kafka's KafkaStorageException); the replica is offline."""

    error_code = ErrorCode.KAFKA_STORAGE_ERROR


class CorruptIndexError(StorageError):
    """An index file fails its sanity check; the segment's indexes are rebuilt from the log."""

    error_code = ErrorCode.UNKNOWN_SERVER_ERROR  # internal: the index is rebuilt


class UnexpectedAppendOffsetError(StorageError):
    """A follower append whose first offset is below the log end offset (Kafka's
    UnexpectedAppendOffsetException)."""

    error_code = ErrorCode.UNKNOWN_SERVER_ERROR  # Kafka's Errors.forException default


class OutOfOrderSequenceError(StorageError):
    """An idempotent batch does not continue its producer's sequence (Kafka's
    OutOfOrderSequenceException)."""

    error_code = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


class InvalidProducerEpochError(StorageError):
    """A batch carries an epoch older than its producer's latest (Kafka's InvalidProducerEpochException,
    which replaced ProducerFencedException on the produce path in 2.7)."""

    error_code = ErrorCode.INVALID_PRODUCER_EPOCH
