"""Moldau's schema registry: Confluent Schema Registry's REST API v1, state in the `_schemas` topic.

Embedded in a broker with `schema.registry.listeners=http://host:8081`, standalone as
`moldau registry --bootstrap-server host:9092`, or in tests as
`moldau.testing.running_broker(schema_registry=True).schema_registry_url`. See docs/schema-registry.md.
"""

from moldau.registry.server import RegistryConfig, RegistryServer

__all__ = ["RegistryConfig", "RegistryServer"]
