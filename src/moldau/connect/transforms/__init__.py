"""Single Message Transforms and predicates (org.apache.kafka.connect.transforms)."""

from moldau.connect.transforms.base import Predicate, Transformation

__all__ = ["Predicate", "Transformation"]
