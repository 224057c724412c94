"""Issue 10 item 4, one error path: every storage error carries the Kafka error code a request answers
with, and one function turns it (or a refused record batch) into the broker's ApiError."""

from __future__ import annotations

import importlib
import pkgutil

import moldau.storage
from moldau.broker.errors import ApiError, as_api_error
from moldau.coordinator.append_errors import coordinator_append_error
from moldau.protocol.errors import ErrorCode
from moldau.protocol.records import InvalidRecordError
from moldau.storage.errors import KafkaStorageError, OffsetOutOfRangeError, StorageError


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_storage_error_names_its_kafka_error_code():
    for module in pkgutil.iter_modules(moldau.storage.__path__):
        importlib.import_module(f"moldau.storage.{module.name}")
    errors = _subclasses(StorageError)
    assert len(errors) >= 10
    missing = sorted(cls.__name__ for cls in errors if "error_code" not in cls.__dict__)
    assert not missing, f"storage errors without their own Kafka error code: {missing}"


def test_one_mapping_to_api_errors():
    assert as_api_error(KafkaStorageError("disk full")).error_code == ErrorCode.KAFKA_STORAGE_ERROR
    assert as_api_error(OffsetOutOfRangeError("past the end")).error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    refused = InvalidRecordError(ErrorCode.CORRUPT_MESSAGE, "bad crc")
    assert as_api_error(refused).error_code == ErrorCode.CORRUPT_MESSAGE
    original = ApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert as_api_error(original) is original


def test_a_coordinator_answers_a_failed_disk_with_not_coordinator():
    assert coordinator_append_error(as_api_error(KafkaStorageError("full"))) == ErrorCode.NOT_COORDINATOR
    assert coordinator_append_error(ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)) == \
        ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert coordinator_append_error(OSError("no code")) == ErrorCode.COORDINATOR_NOT_AVAILABLE
