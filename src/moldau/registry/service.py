"""The registry's operations (Confluent's `KafkaSchemaRegistry`), independent of HTTP.

Reads answer from the local fold of `_schemas`. Writes are serialized through the topic itself: read to the
end, decide the id and version, append, read back, and check that our record won the fold (see store.py); a
writer that lost a race to another instance retries from the new end. So two instances sharing one `_schemas`
always agree on ids and versions without electing a primary (docs/schema-registry.md, "Several instances").
Methods are blocking and thread-safe; the HTTP layer runs writes in a worker thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from moldau.registry import compatibility, errors, formats
from moldau.registry.formats import ParsedSchema
from moldau.registry.kafka_store import KafkaStore
from moldau.registry.store import (
    Reference,
    SchemaKey,
    SchemaVersion,
    config_key,
    config_value,
    mode_key,
    mode_value,
    schema_key,
    schema_value,
)

log = logging.getLogger(__name__)

MODES = ("READWRITE", "READONLY", "IMPORT")
MAX_VERSION = 2**31 - 1
MAX_SCHEMA_BYTES = 1_000_000  # a `_schemas` record must fit Kafka's default message.max.bytes (1048588)
WRITE_ATTEMPTS = 10


def parse_version(raw: str | int) -> int | None:
    """A version path segment: an int in [1, 2^31-1], or "latest"/-1 (returned as None)."""
    if str(raw) in ("latest", "-1"):
        return None
    try:
        version = int(raw)
    except ValueError:
        raise errors.InvalidVersion(f"The specified version '{raw}' is not a valid version id. Allowed values are "
                                    "between [1, 2^31-1] and the string \"latest\"") from None
    if not 1 <= version <= MAX_VERSION:
        raise errors.InvalidVersion(f"The specified version '{raw}' is not a valid version id. Allowed values are "
                                    "between [1, 2^31-1] and the string \"latest\"")
    return version


class SchemaRegistry:
    def __init__(self, kafka: KafkaStore) -> None:
        self.kafka = kafka
        self.store = kafka.store
        self.lock = kafka.lock
        self._write_lock = threading.Lock()
        self._parsed: dict[SchemaKey, ParsedSchema] = {}

    # -- schemas by id ------------------------------------------------------------------------------

    def schema_by_id(self, schema_id: int, fmt: str | None = None) -> dict[str, Any]:
        with self.lock:
            key = self.store.by_id.get(schema_id)
        if key is None:
            raise errors.SchemaNotFound(f"Schema {schema_id} not found")
        body: dict[str, Any] = {"schema": key.schema}
        if key.schema_type != formats.AVRO:
            body["schemaType"] = key.schema_type
        if key.references:
            body["references"] = [r.to_json() for r in key.references]
        if fmt and key.schema_type == formats.PROTOBUF:
            from moldau.registry.formats import protobuf

            body["schema"] = protobuf.formatted(self.parsed(key), fmt)
        return body

    def subjects_of_id(self, schema_id: int, deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            if schema_id not in self.store.by_id:
                raise errors.SchemaNotFound(f"Schema {schema_id} not found")
            pairs = self.store.subjects_of_id(schema_id, deleted)
        return [{"subject": s, "version": v} for s, v in pairs]

    # -- subjects and versions ----------------------------------------------------------------------

    def subjects(self, deleted: bool = False, prefix: str = "") -> list[str]:
        with self.lock:
            return [s for s in self.store.subjects(deleted) if s.startswith(prefix)]

    def all_versions(self, deleted: bool = False, prefix: str = "", latest_only: bool = False) -> list[SchemaVersion]:
        """`GET /schemas`: every version of every subject under `prefix`, or only each subject's latest."""
        with self.lock:
            subjects = [s for s in self.store.subjects(deleted) if s.startswith(prefix)]
            per_subject = [self.store.subject_versions(s, deleted) for s in subjects]
        return [e for entries in per_subject for e in (entries[-1:] if latest_only else entries)]

    def versions(self, subject: str, deleted: bool = False) -> list[int]:
        with self.lock:
            entries = self.store.subject_versions(subject, deleted)
        if not entries:
            raise errors.SubjectNotFound(f"Subject '{subject}' not found.")
        return [e.version for e in entries]

    def version(self, subject: str, raw_version: str | int, deleted: bool = False) -> SchemaVersion:
        version = parse_version(raw_version)
        with self.lock:
            all_versions = self.store.subject_versions(subject, deleted=True)
            live = [e for e in all_versions if deleted or not e.deleted]
        if not all_versions or (not live and not deleted):
            raise errors.SubjectNotFound(f"Subject '{subject}' not found.")
        if version is None:
            if not live:
                raise errors.VersionNotFound(f"Version latest not found for subject '{subject}'.")
            return live[-1]
        found = next((e for e in live if e.version == version), None)
        if found is None:
            raise errors.VersionNotFound(f"Version {version} not found.")
        return found

    def referenced_by(self, subject: str, raw_version: str | int) -> list[int]:
        entry = self.version(subject, raw_version)
        with self.lock:
            return self.store.referenced_by(entry.subject, entry.version)

    # -- parsing ------------------------------------------------------------------------------------

    def parsed(self, key: SchemaKey) -> ParsedSchema:
        cached = self._parsed.get(key)
        if cached is None:
            cached = formats.parse(key.schema_type, key.schema, self._dependencies(key.references))
            self._parsed[key] = cached
        return cached

    def _dependencies(self, references: tuple[Reference, ...], depth: int = 0) -> dict[str, ParsedSchema]:
        if depth > 32:
            raise errors.InvalidSchema("Invalid schema: references nest deeper than 32 levels")
        result: dict[str, ParsedSchema] = {}
        for reference in references:
            with self.lock:
                entry = self.store.get_version(reference.subject, reference.version)
            if entry is None:
                raise errors.InvalidSchema(f"Invalid schema: reference {reference.name!r} names subject "
                                           f"'{reference.subject}' version {reference.version}, which does not exist")
            result[reference.name] = self.parsed(entry.key)
        return result

    def parse_request(self, body: dict[str, Any], normalize: bool = False) -> ParsedSchema:
        """The schema of a request body (`schema`, `schemaType`, `references`), parsed; 42201 when invalid."""
        text = body.get("schema")
        if not isinstance(text, str):
            raise errors.InvalidSchema("Invalid schema: the request has no 'schema' string")
        if len(text.encode()) > MAX_SCHEMA_BYTES:
            raise errors.InvalidSchema(f"Invalid schema: {len(text.encode())} bytes exceeds the limit of "
                                       f"{MAX_SCHEMA_BYTES} bytes of one {self.kafka.topic} record")
        schema_type = str(body.get("schemaType") or formats.AVRO).upper()
        try:
            references = tuple(Reference(str(r["name"]), str(r["subject"]), int(r["version"]))
                               for r in body.get("references") or [])
        except (KeyError, TypeError, ValueError):
            raise errors.InvalidSchema("Invalid schema: each reference needs a name, a subject and an integer "
                                       "version") from None
        parsed = formats.parse(schema_type, text, self._dependencies(references), normalize)
        parsed.references = references
        return parsed

    @staticmethod
    def key_of(parsed: ParsedSchema) -> SchemaKey:
        return SchemaKey(parsed.schema_type, parsed.text, parsed.references)

    # -- lookup and register ------------------------------------------------------------------------

    def lookup(self, subject: str, body: dict[str, Any], normalize: bool = False,
               deleted: bool = False) -> SchemaVersion:
        parsed = self.parse_request(body, normalize)
        key = self.key_of(parsed)
        with self.lock:
            entries = self.store.subject_versions(subject, deleted)
        if not entries:
            raise errors.SubjectNotFound(f"Subject '{subject}' not found.")
        for entry in reversed(entries):
            if entry.key == key:
                return entry
        raise errors.SchemaNotFound("Schema not found")

    def register(self, subject: str, body: dict[str, Any], normalize: bool = False) -> int:
        """Register a schema under `subject` and return its global id (an existing one if already known)."""
        mode = self.mode(subject)
        if mode == "READONLY":
            raise errors.OperationNotPermitted(f"Subject {subject} is in read-only mode")
        wanted_id, wanted_version = body.get("id"), body.get("version")
        for name, value in (("id", wanted_id), ("version", wanted_version)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise errors.UnprocessableEntity(f"The '{name}' of a schema must be an integer, not {value!r}")
        if mode != "IMPORT" and wanted_id is not None and int(wanted_id) >= 0:
            raise errors.OperationNotPermitted(f"Subject {subject} is not in import mode")
        parsed = self.parse_request(body, normalize)
        key = self.key_of(parsed)
        self._parsed.setdefault(key, parsed)
        with self._write_lock:
            for _ in range(WRITE_ATTEMPTS):
                self.kafka.catch_up()
                self.repair_overridden()
                decided = self._decide(subject, key, parsed, mode, wanted_id, wanted_version)
                if isinstance(decided, int):
                    return decided
                self.kafka.append([(schema_key(subject, decided.version), schema_value(decided))])
                with self.lock:
                    winner = self.store.get_version(subject, decided.version)
                    id_holder = self.store.by_id.get(decided.id)
                if winner is not None and winner.id == decided.id and winner.key == key:
                    log.info("registered schema id %d as version %d of subject %s", decided.id, decided.version,
                             subject)
                    return decided.id
                self.repair_overridden()  # another instance took this version first
                log.info("lost a race for subject %s version %d (id %d held by %s); retrying", subject,
                         decided.version, decided.id, id_holder)
        raise errors.StoreError(f"Could not register a schema under {subject} after {WRITE_ATTEMPTS} attempts")

    def repair_overridden(self) -> None:
        """Append again the winning record of every key whose last record lost the fold, so that compaction
        (which keeps a key's last record) cannot resurrect the loser. Any instance may do it; it is idempotent."""
        with self.lock:
            winners = [self.store.get_version(s, v) for s, v in sorted(self.store.overridden)]
        records = [(schema_key(w.subject, w.version), schema_value(w)) for w in winners if w is not None]
        if records:
            self.kafka.append(records)

    def _decide(self, subject: str, key: SchemaKey, parsed: ParsedSchema, mode: str, wanted_id: Any,
                wanted_version: Any) -> int | SchemaVersion:
        """Either the id of an identical live version, or the new version to append."""
        with self.lock:
            all_versions = self.store.subject_versions(subject, deleted=True)
            live = [e for e in all_versions if not e.deleted]
            for entry in live:
                if entry.key == key and (wanted_id is None or int(wanted_id) in (-1, entry.id)):
                    return entry.id
            existing_id = self.store.id_of.get(key)
            next_version = (all_versions[-1].version if all_versions else 0) + 1
            max_id = self.store.max_id
            level = self.store.compatibility_of(subject)
        if mode == "IMPORT" and wanted_id is not None and int(wanted_id) >= 0:
            with self.lock:
                holder = self.store.by_id.get(int(wanted_id))
            if holder is not None and holder != key:
                raise errors.IdDoesNotMatch(f"Error while registering schema: id {wanted_id} is already used by "
                                            "another schema")
            schema_id = int(wanted_id)
            version = int(wanted_version) if wanted_version is not None else next_version
        else:
            problems = compatibility.check(level, parsed, [self.parsed(e.key) for e in live])
            if problems:
                raise errors.IncompatibleSchema("Schema being registered is incompatible with an earlier schema "
                                                f"for subject \"{subject}\", details: {problems}")
            schema_id = existing_id if existing_id is not None else max_id + 1
            version = next_version
        return SchemaVersion(subject, version, schema_id, key)

    # -- compatibility checks -----------------------------------------------------------------------

    def check_compatibility(self, subject: str, raw_version: str | int | None,
                            body: dict[str, Any], normalize: bool = False) -> list[str]:
        parsed = self.parse_request(body, normalize)
        with self.lock:
            live = self.store.subject_versions(subject)
            level = self.store.compatibility_of(subject)
        if raw_version is None:  # against every version the level asks for; none yet: compatible
            return compatibility.check(level, parsed, [self.parsed(e.key) for e in live])
        version = parse_version(raw_version)
        # Confluent answers 40402 (not 40401) when the subject or the version does not exist here.
        if version is None:
            if not live:
                raise errors.VersionNotFound(f"Version latest not found for subject '{subject}'.")
            return compatibility.check(level, parsed, [self.parsed(e.key) for e in live])
        entry = next((e for e in live if e.version == version), None)
        if entry is None:
            raise errors.VersionNotFound(f"Version {version} not found.")
        return compatibility.check(level.removesuffix("_TRANSITIVE"), parsed, [self.parsed(entry.key)])

    # -- deletes ------------------------------------------------------------------------------------

    def delete_version(self, subject: str, raw_version: str | int, permanent: bool = False) -> int:
        self._require_writable(subject)
        with self._write_lock:
            self.kafka.catch_up()
            entry = self.version(subject, raw_version, deleted=True)
            if parse_version(raw_version) is None and not permanent:
                entry = self.version(subject, raw_version)  # "latest" soft-deletes the latest live version
            with self.lock:
                referenced = self.store.referenced_by(entry.subject, entry.version)
            if referenced:
                raise errors.ReferenceExists(f"One or more references exist to the schema {{subject={subject}, "
                                             f"version={entry.version}}} from ids {referenced}")
            if permanent:
                if not entry.deleted:
                    raise errors.SchemaVersionNotSoftDeleted(
                        f"Subject '{subject}' Version {entry.version} was not deleted first before being "
                        "permanently deleted")
                self.kafka.append([(schema_key(subject, entry.version), None)])
            else:
                if entry.deleted:
                    raise errors.SchemaVersionSoftDeleted(f"Subject '{subject}' Version {entry.version} was soft "
                                                          "deleted. Set permanent=true to delete permanently")
                self._soft_delete([entry])
            return entry.version

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        self._require_writable(subject)
        with self._write_lock:
            self.kafka.catch_up()
            with self.lock:
                entries = self.store.subject_versions(subject, deleted=True)
                referenced = [i for e in entries for i in self.store.referenced_by(subject, e.version)]
            if not entries:
                raise errors.SubjectNotFound(f"Subject '{subject}' not found.")
            if referenced:
                raise errors.ReferenceExists(f"One or more references exist to subject {subject} from ids "
                                             f"{sorted(set(referenced))}")
            live = [e for e in entries if not e.deleted]
            if permanent:
                if live:
                    raise errors.SubjectNotSoftDeleted(f"Subject '{subject}' was not deleted first before being "
                                                       "permanently deleted")
                self.kafka.append([(schema_key(subject, e.version), None) for e in entries])
                return [e.version for e in entries]
            if not live:
                raise errors.SubjectSoftDeleted(f"Subject '{subject}' was soft deleted. Set permanent=true to "
                                                "delete permanently")
            self._soft_delete(live)
            return [e.version for e in live]

    def _soft_delete(self, entries: list[SchemaVersion]) -> None:
        records = []
        for entry in entries:
            deleted = SchemaVersion(entry.subject, entry.version, entry.id, entry.key, deleted=True)
            records.append((schema_key(entry.subject, entry.version), schema_value(deleted)))
        self.kafka.append(records)

    def _require_writable(self, subject: str | None) -> None:
        if self.mode(subject) == "READONLY":
            raise errors.OperationNotPermitted(f"Subject {subject} is in read-only mode")

    # -- config and mode ----------------------------------------------------------------------------

    def compatibility(self, subject: str | None, default_to_global: bool = False) -> str:
        with self.lock:
            if subject is None or subject in self.store.compatibility:
                return self.store.compatibility_of(subject)
        if default_to_global:
            return self.compatibility(None)
        raise errors.SubjectCompatibilityNotConfigured(f"Subject '{subject}' does not have subject-level "
                                                       "compatibility configured")

    def set_compatibility(self, subject: str | None, level: Any) -> str:
        if not isinstance(level, str) or level.upper() not in compatibility.LEVELS:
            raise errors.InvalidCompatibilityLevel()
        self._append_setting(config_key(subject), config_value(level.upper()))
        return level.upper()

    def delete_compatibility(self, subject: str | None) -> str:
        previous = self.compatibility(subject, default_to_global=subject is None)
        self._append_setting(config_key(subject), None)
        return previous

    def mode(self, subject: str | None, default_to_global: bool = True) -> str:
        with self.lock:
            if subject is None or subject in self.store.modes or default_to_global:
                return self.store.mode_of(subject)
        raise errors.SubjectModeNotConfigured(f"Subject '{subject}' does not have subject-level mode configured")

    def set_mode(self, subject: str | None, mode: Any, force: bool = False) -> str:
        if not isinstance(mode, str) or mode.upper() not in MODES:
            raise errors.InvalidMode()
        if mode.upper() == "IMPORT" and not force:
            with self.lock:
                non_empty = self.store.subjects() if subject is None else self.store.subject_versions(subject)
            if non_empty:
                raise errors.OperationNotPermitted("Cannot import since found existing subjects")
        self._append_setting(mode_key(subject), mode_value(mode.upper()))
        return mode.upper()

    def delete_mode(self, subject: str) -> str:
        previous = self.mode(subject, default_to_global=False)
        self._append_setting(mode_key(subject), None)
        return previous

    def _append_setting(self, key: bytes, value: bytes | None) -> None:
        with self._write_lock:
            self.kafka.append([(key, value)])
