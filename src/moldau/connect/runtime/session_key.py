"""KIP-507: the session key that signs worker-to-worker REST requests under `connect.protocol=sessioned`.

The group's leader generates a key (`inter.worker.key.generation.algorithm`, HmacSHA256), writes it to the
config topic as Kafka's `session-key` record ({"key": base64, "algorithm", "creation-timestamp"}) and writes
a new one every `inter.worker.key.ttl.ms`. A worker that sends an internal request (a follower forwarding its
connector's task configs to the leader: `POST /connectors/{c}/tasks`) signs the body with it: header
`X-Connect-Authorization` = base64(HMAC(key, body)), `X-Connect-Request-Signature-Algorithm` = the MAC's Java
name. The receiver checks it as Kafka's DistributedHerder.requestNotSignedProperly does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from moldau.connect.api.errors import BadRequestException, ConnectRestException

SIGNATURE_HEADER = "X-Connect-Authorization"
SIGNATURE_ALGORITHM_HEADER = "X-Connect-Request-Signature-Algorithm"
SESSION_KEY_RECORD = "session-key"
# Java Mac / KeyGenerator names -> hashlib; Kafka's defaults are HmacSHA256 (its verification list also
# accepts what the JVM offers; these are the HMACs every JVM has).
MAC_ALGORITHMS = {"HmacSHA256": hashlib.sha256, "HmacSHA384": hashlib.sha384, "HmacSHA512": hashlib.sha512,
                  "HmacSHA1": hashlib.sha1}
KEY_BYTES = {"HmacSHA256": 32, "HmacSHA384": 48, "HmacSHA512": 64, "HmacSHA1": 20}  # the JVM's default sizes


@dataclass(slots=True, frozen=True)
class SessionKey:
    key: bytes
    algorithm: str
    creation_timestamp: int  # ms since the epoch

    def to_record(self) -> dict[str, Any]:
        return {"key": base64.b64encode(self.key).decode(), "algorithm": self.algorithm,
                "creation-timestamp": self.creation_timestamp}

    @staticmethod
    def from_record(body: Any) -> SessionKey | None:
        try:
            return SessionKey(base64.b64decode(body["key"]), str(body["algorithm"]), int(body["creation-timestamp"]))
        except (KeyError, TypeError, ValueError, binascii.Error):
            return None  # Kafka logs and ignores a malformed session key record

    @staticmethod
    def generate(algorithm: str, size_bits: int | None = None) -> SessionKey:
        if algorithm not in MAC_ALGORITHMS:
            raise ValueError(f"Unsupported inter.worker.key.generation.algorithm {algorithm}")
        size = size_bits // 8 if size_bits else KEY_BYTES[algorithm]
        return SessionKey(secrets.token_bytes(size), algorithm, int(time.time() * 1000))


def sign(key: SessionKey, body: bytes, algorithm: str) -> dict[str, str]:
    """The two headers that sign `body` (InternalRequestSignature.addToRequest)."""
    mac = hmac.new(key.key, body, MAC_ALGORITHMS[algorithm]).digest()
    return {SIGNATURE_HEADER: base64.b64encode(mac).decode(), SIGNATURE_ALGORITHM_HEADER: algorithm}


def check(headers: Any, body: bytes, key: SessionKey | None, verification_algorithms: list[str]) -> None:
    """Raise the REST error Kafka answers for a missing, unverifiable or wrong signature."""
    algorithm, encoded = headers.get(SIGNATURE_ALGORITHM_HEADER), headers.get(SIGNATURE_HEADER)
    if algorithm is None or encoded is None:
        raise BadRequestException("Internal request missing required signature")
    if algorithm not in MAC_ALGORITHMS:
        raise BadRequestException(f"{algorithm} MessageDigest not available")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestException(str(exc)) from None
    if algorithm not in verification_algorithms:
        raise BadRequestException(
            f"This worker does not support the '{algorithm}' key signing algorithm used by other workers. This "
            f"worker is currently configured to use: {verification_algorithms}. Check that all workers' "
            "configuration files permit the same set of signature algorithms, and correct any misconfigured "
            "worker and restart it.")
    if key is None:
        raise ConnectRestException(503, "This worker is still starting up and has not been able to read a session "
                                        "key from the config topic yet")
    if not hmac.compare_digest(hmac.new(key.key, body, MAC_ALGORITHMS[algorithm]).digest(), signature):
        raise ConnectRestException(403, "Internal request contained invalid signature.")
