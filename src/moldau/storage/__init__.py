"""Kafka's on-disk log: segments, offset and time indexes, partition logs, recovery and retention.

Sans-I/O with respect to the network: plain synchronous code the broker's event loop calls directly
(appends and reads never fsync) and a worker thread calls for flushes and retention.
"""

from moldau.storage.append_info import AppendInfo
from moldau.storage.config import LogConfig
from moldau.storage.errors import KafkaStorageError, OffsetOutOfRangeError, StorageError
from moldau.storage.fetch_data_info import FetchDataInfo
from moldau.storage.file_region import FileRegion
from moldau.storage.log import Log
from moldau.storage.log_manager import LogManager

__all__ = [
    "AppendInfo",
    "FetchDataInfo",
    "FileRegion",
    "KafkaStorageError",
    "Log",
    "LogConfig",
    "LogManager",
    "OffsetOutOfRangeError",
    "StorageError",
]
