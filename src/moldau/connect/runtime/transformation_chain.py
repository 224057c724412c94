"""Build and apply a connector's `transforms` chain, with `predicates` and `negate` (KIP-66, KIP-585)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moldau.connect.api.errors import ConnectException
from moldau.connect.api.records import ConnectRecord
from moldau.connect.plugins import Plugins
from moldau.connect.transforms.base import Predicate, Transformation


@dataclass(slots=True)
class TransformationStage:
    alias: str
    transformation: Transformation
    predicate: Predicate | None = None
    negate: bool = False

    def apply(self, record: ConnectRecord) -> ConnectRecord | None:
        if self.predicate is not None and self.predicate.test(record) == self.negate:
            return record  # KIP-585: the transform applies only where the predicate (or its negation) holds
        return self.transformation.apply(record)


class TransformationChain:
    def __init__(self, stages: list[TransformationStage]) -> None:
        self.stages = stages

    def apply(self, record: ConnectRecord) -> ConnectRecord | None:
        for stage in self.stages:
            result = stage.apply(record)
            if result is None:
                return None
            record = result
        return record

    def close(self) -> None:
        for stage in self.stages:
            stage.transformation.close()
            if stage.predicate is not None:
                stage.predicate.close()


def _with_prefix(config: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}


def _aliases(config: dict[str, Any], key: str) -> list[str]:
    return [a.strip() for a in str(config.get(key, "") or "").split(",") if a.strip()]


def build_chain(plugins: Plugins, config: dict[str, Any]) -> TransformationChain:
    predicates: dict[str, Predicate] = {}
    for alias in _aliases(config, "predicates"):
        own = _with_prefix(config, f"predicates.{alias}.")
        if "type" not in own:
            raise ConnectException(f"Missing required configuration \"predicates.{alias}.type\"")
        instance: Predicate = plugins.new("predicate", own.pop("type"))
        instance.configure(own)
        predicates[alias] = instance
    stages = []
    for alias in _aliases(config, "transforms"):
        own = _with_prefix(config, f"transforms.{alias}.")
        if "type" not in own:
            raise ConnectException(f"Missing required configuration \"transforms.{alias}.type\"")
        transformation: Transformation = plugins.new("transformation", own.pop("type"))
        predicate_alias = own.pop("predicate", None)
        negate = str(own.pop("negate", "false")).lower() == "true"
        transformation.configure(own)
        predicate: Predicate | None = None
        if predicate_alias:
            if predicate_alias not in predicates:
                raise ConnectException(f"Transform {alias} refers to predicate {predicate_alias}, which is not "
                                       f"among predicates={config.get('predicates', '')}")
            predicate = predicates[predicate_alias]
        stages.append(TransformationStage(alias, transformation, predicate, negate))
    return TransformationChain(stages)
