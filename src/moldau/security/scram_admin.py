"""KIP-554's rules for AlterUserScramCredentials and DescribeUserScramCredentials (Kafka's ScramControlManager)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from moldau.protocol.errors import ErrorCode
from moldau.security.sasl.scram import (
    MAX_ITERATIONS,
    MECHANISM_BY_CODE,
    MECHANISMS,
    MIN_ITERATIONS,
    ScramCredential,
    credential_from_salted_password,
)
from moldau.security.scram_store import ScramCredentialStore


@dataclass(slots=True)
class Upsertion:
    user: str
    mechanism: int
    iterations: int
    salt: bytes
    salted_password: bytes


@dataclass(slots=True)
class UserResult:
    user: str
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


async def alter(store: ScramCredentialStore, deletions: list[tuple[str, int]],
          upsertions: list[Upsertion]) -> list[UserResult]:
    """Validate every change; a user with any invalid change keeps all of its credentials as they were."""
    counts = Counter([(u, m) for u, m in deletions] + [(u.user, u.mechanism) for u in upsertions])
    results: dict[str, UserResult] = {}

    def fail(user: str, code: ErrorCode, message: str) -> None:
        if user not in results or results[user].error_code == ErrorCode.NONE:
            results[user] = UserResult(user, code, message)

    upserts: list[tuple[str, str, ScramCredential]] = []
    removals: list[tuple[str, str]] = []
    for user, code in deletions:
        results.setdefault(user, UserResult(user))
        mechanism = MECHANISM_BY_CODE.get(code)
        if not user:
            fail(user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty")
        elif mechanism is None:
            fail(user, ErrorCode.UNSUPPORTED_SASL_MECHANISM, f"Unknown SCRAM mechanism {code}")
        elif counts[(user, code)] > 1:
            fail(user, ErrorCode.DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request")
        elif store.lookup(user, mechanism) is None:
            fail(user, ErrorCode.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist")
        else:
            removals.append((user, mechanism))
    for up in upsertions:
        results.setdefault(up.user, UserResult(up.user))
        mechanism = MECHANISM_BY_CODE.get(up.mechanism)
        if not up.user:
            fail(up.user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty")
        elif mechanism is None:
            fail(up.user, ErrorCode.UNSUPPORTED_SASL_MECHANISM, f"Unknown SCRAM mechanism {up.mechanism}")
        elif counts[(up.user, up.mechanism)] > 1:
            fail(up.user, ErrorCode.DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request")
        elif up.iterations < MIN_ITERATIONS:
            fail(up.user, ErrorCode.UNACCEPTABLE_CREDENTIAL, f"Too few iterations (minimum {MIN_ITERATIONS})")
        elif up.iterations > MAX_ITERATIONS:
            fail(up.user, ErrorCode.UNACCEPTABLE_CREDENTIAL, f"Too many iterations (maximum {MAX_ITERATIONS})")
        elif not up.salt or not up.salted_password:
            fail(up.user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "Salt and salted password must not be empty")
        else:
            upserts.append((up.user, mechanism, credential_from_salted_password(
                mechanism, up.salted_password, up.salt, up.iterations)))
    failed = {user for user, result in results.items() if result.error_code != ErrorCode.NONE}
    accepted = [u for u in upserts if u[0] not in failed], [d for d in removals if d[0] not in failed]
    if accepted[0] or accepted[1]:
        await store.apply(*accepted)
    return list(results.values())


@dataclass(slots=True)
class UserDescription:
    user: str
    error_code: ErrorCode
    error_message: str | None
    credentials: list[tuple[int, int]]  # (mechanism code, iterations)


def describe(store: ScramCredentialStore, users: list[str] | None) -> list[UserDescription]:
    wanted = sorted(store.users()) if not users else users
    counts = Counter(wanted)
    result = []
    for user in dict.fromkeys(wanted):
        if counts[user] > 1:
            result.append(UserDescription(user, ErrorCode.DUPLICATE_RESOURCE, "Cannot describe SCRAM credentials "
                                          "for the same user twice in a single request", []))
            continue
        credentials = store.users().get(user)
        if not credentials:
            result.append(UserDescription(user, ErrorCode.RESOURCE_NOT_FOUND, "Attempt to describe a user "
                                          "credential that does not exist", []))
            continue
        result.append(UserDescription(user, ErrorCode.NONE, None, [
            (MECHANISMS[mechanism][0], credential.iterations) for mechanism, credential in sorted(credentials.items())]))
    return result
