"""Client quota configs (KIP-55, KIP-257, KIP-546, KIP-612) in the cluster metadata.

An entity is a set of components: `user` and/or `client-id` (a name, or None for the default entity),
or `ip`. Values are Kafka's keys: producer_byte_rate, consumer_byte_rate, request_percentage,
controller_mutation_rate for users and clients; connection_creation_rate for IPs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from moldau.protocol.errors import ErrorCode
from moldau.security.scram_store import SecurityMetadata

SECTION = "client_quotas"
USER, CLIENT_ID, IP = "user", "client-id", "ip"
CLIENT_KEYS = ("producer_byte_rate", "consumer_byte_rate", "request_percentage", "controller_mutation_rate")
IP_KEYS = ("connection_creation_rate",)
MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2

Entity = tuple[tuple[str, str | None], ...]  # sorted ((type, name or None for default), ...)


def entity_of(components: Iterable[tuple[str, str | None]]) -> Entity:
    return tuple(sorted(components))


# KIP-55's precedence for a (user, client-id) pair: most specific first.
def precedence(user: str, client_id: str) -> list[Entity]:
    return [
        ((CLIENT_ID, client_id), (USER, user)), ((CLIENT_ID, None), (USER, user)), ((USER, user),),
        ((CLIENT_ID, client_id), (USER, None)), ((CLIENT_ID, None), (USER, None)), ((USER, None),),
        ((CLIENT_ID, client_id),), ((CLIENT_ID, None),),
    ]


class QuotaError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class Alteration:
    entity: Entity
    ops: list[tuple[str, float, bool]]  # (key, value, remove)


class QuotaConfigs:
    def __init__(self, store: SecurityMetadata) -> None:
        self._store = store
        self.entries: dict[Entity, dict[str, float]] = {}
        self.version = 0  # bumped on every change, so managers can drop cached lookups
        self.reload()
        store.subscribe(self._changed)

    def _changed(self, kind: str, name: str) -> None:
        if kind == "security" and name == SECTION:  # altered here or, in a cluster, through another broker
            self.reload()

    def reload(self) -> None:
        self.entries = _entries(self._store.security(SECTION))
        self.version += 1

    def value(self, entity: Entity, key: str) -> float | None:
        values = self.entries.get(entity)
        return None if values is None else values.get(key)

    def validate(self, alteration: Alteration) -> None:
        types = [t for t, _ in alteration.entity]
        if not types or len(set(types)) != len(types):
            raise QuotaError(ErrorCode.INVALID_REQUEST, "Invalid quota entity: duplicate or missing entity types")
        unknown = set(types) - {USER, CLIENT_ID, IP}
        if unknown:
            raise QuotaError(ErrorCode.INVALID_REQUEST, f"Unhandled client quota entity type: {min(unknown)}")
        if IP in types and len(types) > 1:
            raise QuotaError(ErrorCode.INVALID_REQUEST, "Invalid quota entity combination: ip with user/client-id")
        allowed = IP_KEYS if IP in types else CLIENT_KEYS
        for key, value, remove in alteration.ops:
            if key not in allowed:
                raise QuotaError(ErrorCode.INVALID_REQUEST, f"Invalid configuration key {key}")
            if not remove and value <= 0:
                raise QuotaError(ErrorCode.INVALID_REQUEST, f"Illegal value {value} for quota {key}: must be > 0")

    async def alter(self, alterations: list[Alteration]) -> None:
        """Applies the alterations to the stored quotas (read-modify-write); every broker reloads them."""
        def change(current: Any) -> Any:
            entries = _entries(current)
            for alteration in alterations:
                values = entries.setdefault(alteration.entity, {})
                for key, value, remove in alteration.ops:
                    if remove:
                        values.pop(key, None)
                    else:
                        values[key] = float(value)
                if not values:
                    del entries[alteration.entity]
            return [{"entity": [list(c) for c in entity], "values": values} for entity, values in entries.items()]

        await self._store.update_security(SECTION, change)

    def describe(self, components: list[tuple[str, int, str | None]], strict: bool) -> dict[Entity, dict[str, float]]:
        """Kafka's ClientQuotaFilter: each component matches a name, the default, or any specified name."""
        wanted_types = {t for t, _, _ in components}
        result = {}
        for entity, values in self.entries.items():
            by_type = dict(entity)
            if strict and set(by_type) != wanted_types:
                continue
            if all(t in by_type and _component_matches(by_type[t], match_type, match)
                   for t, match_type, match in components):
                result[entity] = dict(values)
        return result


def _entries(document: Any) -> dict[Entity, dict[str, float]]:
    return {entity_of((c[0], c[1]) for c in doc["entity"]): dict(doc["values"]) for doc in document or []}


def _component_matches(name: str | None, match_type: int, match: str | None) -> bool:
    if match_type == MATCH_EXACT:
        return name == match and name is not None
    if match_type == MATCH_DEFAULT:
        return name is None
    return name is not None  # MATCH_SPECIFIED
