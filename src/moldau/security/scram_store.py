"""SCRAM credentials in the cluster metadata (KIP-554): `{user: {mechanism: credential}}`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from moldau.security.sasl.scram import ScramCredential

SECTION = "scram"


class SecurityMetadata(Protocol):
    """The part of `cluster.config_store.ConfigStore` security state lives in (local file or etcd)."""

    def security(self, section: str) -> Any: ...

    async def update_security(self, section: str, change: Callable[[Any], Any]) -> Any: ...

    def subscribe(self, listener: Callable[[str, str], None]) -> None: ...


class ScramCredentialStore:
    def __init__(self, store: SecurityMetadata) -> None:
        self._store = store
        self._cache: dict[str, dict[str, ScramCredential]] = {}
        self.reload()
        store.subscribe(self._changed)

    def _changed(self, kind: str, name: str) -> None:
        if kind == "security" and name == SECTION:  # written here or, in a cluster, through another broker
            self.reload()

    def reload(self) -> None:
        document = self._store.security(SECTION) or {}
        self._cache = {user: {mechanism: ScramCredential.from_json(cred) for mechanism, cred in mechs.items()}
                       for user, mechs in document.items()}

    def lookup(self, user: str, mechanism: str) -> ScramCredential | None:
        return self._cache.get(user, {}).get(mechanism)

    def users(self) -> dict[str, dict[str, ScramCredential]]:
        return self._cache

    async def apply(self, upserts: list[tuple[str, str, ScramCredential]],
                    deletions: list[tuple[str, str]]) -> None:
        """Apply one AlterUserScramCredentials request's changes together; the cache reloads on the change."""
        def change(current: Any) -> Any:
            document = dict(current or {})
            for user, mechanism in deletions:
                mechanisms = dict(document.get(user, {}))
                mechanisms.pop(mechanism, None)
                if mechanisms:
                    document[user] = mechanisms
                else:
                    document.pop(user, None)
            for user, mechanism, credential in upserts:
                document[user] = {**document.get(user, {}), mechanism: credential.to_json()}
            return document

        await self._store.update_security(SECTION, change)
