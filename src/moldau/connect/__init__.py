"""Moldau Connect: Kafka Connect workers, REST API and connectors in Python.

A Connect worker is a separate server: it talks to any Kafka-compatible cluster through confluent-kafka
and never imports the broker. Layout, after Kafka's `connect-api` / `connect-runtime` split:

    api/         the connector API (Connector, SourceTask, SinkTask, records, Schema/Struct, ConfigDef)
    converters/  String, ByteArray, JSON, Schema Registry (Avro / JSON Schema / Protobuf)
    transforms/  Single Message Transforms and predicates
    runtime/     worker, task runners, herders (standalone, distributed), error handling
    storage/     offset / config / status backing stores (file, memory, compacted topics)
    rest/        Kafka Connect's REST API on starlette
    connectors/  built-in connectors: FileStream, Postgres, Mirror
"""
