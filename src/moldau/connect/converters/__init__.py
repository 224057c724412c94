"""Converters between Connect data and the bytes in Kafka records (org.apache.kafka.connect.storage.Converter)."""

from moldau.connect.converters.base import Converter, HeaderConverter

__all__ = ["Converter", "HeaderConverter"]
