"""SCRAM credentials in the cluster metadata (KIP-554): `{user: {mechanism: credential}}`."""

from __future__ import annotations

from typing import Any, Protocol

from moldau.security.sasl.scram import ScramCredential

SECTION = "scram"


class SecurityMetadata(Protocol):
    """The part of `cluster.metadata_store.MetadataStore` security state lives in."""

    def security(self, section: str) -> Any: ...

    def set_security(self, section: str, value: Any) -> None: ...


class ScramCredentialStore:
    def __init__(self, store: SecurityMetadata) -> None:
        self._store = store
        self._cache: dict[str, dict[str, ScramCredential]] = {}
        self.reload()

    def reload(self) -> None:
        document = self._store.security(SECTION) or {}
        self._cache = {user: {mechanism: ScramCredential.from_json(cred) for mechanism, cred in mechs.items()}
                       for user, mechs in document.items()}

    def lookup(self, user: str, mechanism: str) -> ScramCredential | None:
        return self._cache.get(user, {}).get(mechanism)

    def users(self) -> dict[str, dict[str, ScramCredential]]:
        return self._cache

    def apply(self, upserts: list[tuple[str, str, ScramCredential]], deletions: list[tuple[str, str]]) -> None:
        """Apply one AlterUserScramCredentials request's changes and persist them together."""
        for user, mechanism in deletions:
            self._cache.get(user, {}).pop(mechanism, None)
            if user in self._cache and not self._cache[user]:
                del self._cache[user]
        for user, mechanism, credential in upserts:
            self._cache.setdefault(user, {})[mechanism] = credential
        self._store.set_security(SECTION, {user: {m: c.to_json() for m, c in mechs.items()}
                                           for user, mechs in self._cache.items()})
