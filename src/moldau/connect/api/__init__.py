"""The connector API, shaped like Kafka's `org.apache.kafka.connect.*` packages."""

from moldau.connect.api.config import ConfigDef, ConfigException, ConfigValue, Importance, Type
from moldau.connect.api.connector import (
    Connector,
    ConnectorContext,
    ExactlyOnceSupport,
    SinkConnector,
    SinkTask,
    SinkTaskContext,
    SourceConnector,
    SourceTask,
    SourceTaskContext,
    Task,
)
from moldau.connect.api.data import Field, Schema, SchemaAndValue, Struct
from moldau.connect.api.errors import ConnectException, DataException, RetriableException
from moldau.connect.api.records import ConnectRecord, Header, SinkRecord, SourceRecord, TopicPartition

__all__ = [
    "ConfigDef",
    "ConfigException",
    "ConfigValue",
    "ConnectException",
    "ConnectRecord",
    "Connector",
    "ConnectorContext",
    "DataException",
    "ExactlyOnceSupport",
    "Field",
    "Header",
    "Importance",
    "RetriableException",
    "Schema",
    "SchemaAndValue",
    "SinkConnector",
    "SinkRecord",
    "SinkTask",
    "SinkTaskContext",
    "SourceConnector",
    "SourceRecord",
    "SourceTask",
    "SourceTaskContext",
    "Struct",
    "Task",
    "TopicPartition",
    "Type",
]
