"""The registry's state: a fold over the records of the `_schemas` topic, in Confluent's layout.

Keys and values are JSON, as Confluent's `SchemaRegistryKey`/`SchemaRegistryValue` serdes write them:

    {"keytype":"SCHEMA","subject":"s","version":1,"magic":1} -> {"subject":"s","version":1,"id":1,
                                 "schema":"...","schemaType":"JSON","references":[...],"deleted":false}
    {"keytype":"CONFIG","subject":null|"s","magic":0}        -> {"compatibilityLevel":"BACKWARD"}
    {"keytype":"MODE","subject":null|"s","magic":0}          -> {"mode":"READONLY"}
    {"keytype":"DELETE_SUBJECT","subject":"s","magic":0}     -> {"subject":"s","version":3}
    {"keytype":"NOOP","magic":0}                             -> ignored

A null value (tombstone) on a SCHEMA key is a permanent delete; on CONFIG/MODE it removes the subject's setting.
Several registry instances may append concurrently, so the fold is deterministic in offset order: the first
record to bind an id, or a (subject, version), wins and a later conflicting record is ignored by every instance.
This module does no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

DEFAULT_COMPATIBILITY = "BACKWARD"
DEFAULT_MODE = "READWRITE"


@dataclass(slots=True, frozen=True)
class Reference:
    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


@lru_cache(maxsize=4096)
def match_form(schema_type: str, schema: str) -> str:
    """The form two schemas are compared in: JSON-based schemas (Avro, JSON Schema) without whitespace and with
    sorted keys, so that formatting and key order do not make a new schema (Confluent compares Avro's and
    JSON Schema's canonical strings); Protobuf text as written."""
    if schema_type in ("AVRO", "JSON"):
        try:
            return json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
        except ValueError:
            return schema
    return schema.strip()


@dataclass(slots=True, frozen=True, eq=False)
class SchemaKey:
    """What makes two registered schemas the same schema, and so the same global id."""

    schema_type: str
    schema: str  # as stored and answered
    references: tuple[Reference, ...] = ()

    def identity(self) -> tuple[str, str, tuple[Reference, ...]]:
        return self.schema_type, match_form(self.schema_type, self.schema), self.references

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SchemaKey) and self.identity() == other.identity()

    def __hash__(self) -> int:
        return hash(self.identity())


@dataclass(slots=True)
class SchemaVersion:
    subject: str
    version: int
    id: int
    key: SchemaKey
    deleted: bool = False
    offset: int = -1  # of the record that registered it

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"subject": self.subject, "version": self.version, "id": self.id,
                                "schema": self.key.schema}
        if self.key.schema_type != "AVRO":
            body["schemaType"] = self.key.schema_type
        if self.key.references:
            body["references"] = [r.to_json() for r in self.key.references]
        return body


@dataclass(slots=True)
class SchemaStore:
    versions: dict[str, dict[int, SchemaVersion]] = field(default_factory=dict)  # subject -> version -> entry
    by_id: dict[int, SchemaKey] = field(default_factory=dict)
    id_of: dict[SchemaKey, int] = field(default_factory=dict)
    compatibility: dict[str | None, str] = field(default_factory=dict)  # None = global
    modes: dict[str | None, str] = field(default_factory=dict)
    max_id: int = 0
    applied_offset: int = -1
    # (subject, version) keys whose last record in the log lost the fold to an earlier one. Compaction keeps
    # the last record of a key, so the winner's record must be appended again (service.repair_overridden).
    overridden: set[tuple[str, int]] = field(default_factory=set)
    # Records ignored because their id was bound to another schema, by their (subject, version) while no later
    # record supersedes that key: (offset, key, value). If the id is freed (hard delete), they apply then, as
    # they would for an instance replaying a compacted log without the id holder's record.
    ignored: dict[tuple[str, int], tuple[int, dict[str, Any], dict[str, Any]]] = field(default_factory=dict)

    # -- the fold ---------------------------------------------------------------------------------

    def apply(self, key_bytes: bytes | None, value_bytes: bytes | None, offset: int) -> None:
        """Apply one `_schemas` record. Malformed records are skipped (they may come from other tools)."""
        self.applied_offset = max(self.applied_offset, offset)
        try:
            key = json.loads(key_bytes) if key_bytes else None
            value = json.loads(value_bytes) if value_bytes else None
        except ValueError:
            return
        if not isinstance(key, dict):
            return
        keytype = key.get("keytype")
        if keytype == "SCHEMA":
            self._apply_schema(key, value, offset)
        elif keytype == "CONFIG":
            self._apply_setting(self.compatibility, key.get("subject"), value, "compatibilityLevel")
        elif keytype == "MODE":
            self._apply_setting(self.modes, key.get("subject"), value, "mode")
        elif keytype == "DELETE_SUBJECT" and isinstance(value, dict):
            for entry in self.versions.get(str(key.get("subject")), {}).values():
                if entry.version <= int(value.get("version", 0)):
                    entry.deleted = True

    def _apply_schema(self, key: dict[str, Any], value: dict[str, Any] | None, offset: int) -> None:
        subject, version = str(key.get("subject")), int(key.get("version", 0))
        existing = self.versions.get(subject, {}).get(version)
        self.ignored.pop((subject, version), None)  # superseded by this record, as compaction would
        if value is None:  # tombstone: permanent delete
            self.overridden.discard((subject, version))
            if existing is not None:
                del self.versions[subject][version]
                if not self.versions[subject]:
                    del self.versions[subject]
                self._forget_if_unused(existing.id)
            return
        schema_key = SchemaKey(
            schema_type=str(value.get("schemaType") or "AVRO"),
            schema=str(value.get("schema")),
            references=tuple(Reference(str(r["name"]), str(r["subject"]), int(r["version"]))
                             for r in value.get("references") or []),
        )
        schema_id = int(value["id"])
        bound = self.by_id.get(schema_id)
        if bound is not None and bound != schema_key:
            if existing is None:  # a concurrent writer bound this id first
                self.ignored[(subject, version)] = (offset, key, value)
            return
        if existing is not None and (existing.id != schema_id or existing.key != schema_key):
            self.overridden.add((subject, version))  # a concurrent writer took this version first
            return
        self.by_id[schema_id] = schema_key
        self.id_of.setdefault(schema_key, schema_id)
        self.max_id = max(self.max_id, schema_id)
        if existing is not None:
            existing.deleted = bool(value.get("deleted", False))
            self.overridden.discard((subject, version))
            return
        self.versions.setdefault(subject, {})[version] = SchemaVersion(
            subject, version, schema_id, schema_key, bool(value.get("deleted", False)), offset)

    def _forget_if_unused(self, schema_id: int) -> None:
        if any(v.id == schema_id for entries in self.versions.values() for v in entries.values()):
            return
        schema_key = self.by_id.pop(schema_id, None)
        if schema_key is not None and self.id_of.get(schema_key) == schema_id:
            del self.id_of[schema_key]
        waiting = sorted((o, k, v) for (o, k, v) in self.ignored.values() if int(v["id"]) == schema_id)
        for offset, key, value in waiting:
            self._apply_schema(key, value, offset)

    @staticmethod
    def _apply_setting(table: dict[str | None, str], subject: str | None, value: Any, name: str) -> None:
        if value is None:
            table.pop(subject, None)
        elif isinstance(value, dict) and value.get(name):
            table[subject] = str(value[name]).upper()

    # -- queries ----------------------------------------------------------------------------------

    def subject_versions(self, subject: str, deleted: bool = False) -> list[SchemaVersion]:
        entries = self.versions.get(subject, {})
        return [entries[v] for v in sorted(entries) if deleted or not entries[v].deleted]

    def subjects(self, deleted: bool = False) -> list[str]:
        return sorted(s for s in self.versions if self.subject_versions(s, deleted))

    def get_version(self, subject: str, version: int) -> SchemaVersion | None:
        return self.versions.get(subject, {}).get(version)

    def compatibility_of(self, subject: str | None) -> str:
        if subject is not None and subject in self.compatibility:
            return self.compatibility[subject]
        return self.compatibility.get(None, DEFAULT_COMPATIBILITY)

    def mode_of(self, subject: str | None) -> str:
        if subject is not None and subject in self.modes:
            return self.modes[subject]
        return self.modes.get(None, DEFAULT_MODE)

    def referenced_by(self, subject: str, version: int) -> list[int]:
        """Ids of live schemas whose references name (subject, version)."""
        ids = {entry.id for entries in self.versions.values() for entry in entries.values()
               if not entry.deleted and any(r.subject == subject and r.version == version
                                            for r in entry.key.references)}
        return sorted(ids)

    def subjects_of_id(self, schema_id: int, deleted: bool = False) -> list[tuple[str, int]]:
        return sorted((e.subject, e.version) for entries in self.versions.values() for e in entries.values()
                      if e.id == schema_id and (deleted or not e.deleted))


# -- record encoding (Confluent's JSON key/value layout) ------------------------------------------

def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def schema_key(subject: str, version: int) -> bytes:
    return _dumps({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1})


def schema_value(entry: SchemaVersion) -> bytes:
    body = entry.to_json()
    body["deleted"] = entry.deleted
    if entry.key.schema_type == "AVRO":
        body.pop("schemaType", None)
    return _dumps(body)


def config_key(subject: str | None) -> bytes:
    return _dumps({"keytype": "CONFIG", "subject": subject, "magic": 0})


def config_value(level: str) -> bytes:
    return _dumps({"compatibilityLevel": level})


def mode_key(subject: str | None) -> bytes:
    return _dumps({"keytype": "MODE", "subject": subject, "magic": 0})


def mode_value(mode: str) -> bytes:
    return _dumps({"mode": mode})


def noop_key() -> bytes:
    return _dumps({"keytype": "NOOP", "magic": 0})
