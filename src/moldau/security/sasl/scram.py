"""SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677; Kafka's ScramSaslServer).

Credentials are Kafka's ScramCredential: salt, StoredKey, ServerKey and iterations, kept in the
cluster metadata and managed with AlterUserScramCredentials (KIP-554), which sends the salted password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from moldau.security.sasl import SaslAuthenticationError

# KIP-554's mechanism codes in AlterUserScramCredentials / DescribeUserScramCredentials.
MECHANISMS = {"SCRAM-SHA-256": (1, "sha256"), "SCRAM-SHA-512": (2, "sha512")}
MECHANISM_BY_CODE = {code: name for name, (code, _) in MECHANISMS.items()}
MIN_ITERATIONS = 4096  # Kafka's ScramMechanism.minIterations
MAX_ITERATIONS = 16384  # KIP-554's upper bound


@dataclass(slots=True, frozen=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def to_json(self) -> dict[str, object]:
        return {"salt": _b64(self.salt), "stored_key": _b64(self.stored_key),
                "server_key": _b64(self.server_key), "iterations": self.iterations}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> ScramCredential:
        return cls(base64.b64decode(str(doc["salt"])), base64.b64decode(str(doc["stored_key"])),
                   base64.b64decode(str(doc["server_key"])), int(doc["iterations"]))  # type: ignore[call-overload]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(MECHANISMS[mechanism][1], password.encode(), salt, iterations)


def credential_from_salted_password(mechanism: str, salted: bytes, salt: bytes, iterations: int) -> ScramCredential:
    digest = MECHANISMS[mechanism][1]
    client_key = hmac.digest(salted, b"Client Key", digest)
    stored_key = hashlib.new(digest, client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", digest)
    return ScramCredential(salt, stored_key, server_key, iterations)


def new_credential(mechanism: str, password: str, iterations: int = MIN_ITERATIONS) -> ScramCredential:
    salt = os.urandom(32)
    return credential_from_salted_password(mechanism, salted_password(mechanism, password, salt, iterations),
                                           salt, iterations)


def _attributes(message: str) -> dict[str, str]:
    result = {}
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise SaslAuthenticationError(f"Invalid SCRAM message attribute {part[:40]!r}")
        result[key] = value
    return result


_SASLNAME = re.compile(r"=(?!2C|3D)")


def _decode_username(name: str) -> str:
    if _SASLNAME.search(name):
        raise SaslAuthenticationError("Invalid SCRAM username: '=' must be escaped as =2C or =3D")
    return name.replace("=2C", ",").replace("=3D", "=")


class ScramServer:
    """One SCRAM exchange: client-first → server-first → client-final → server-final."""

    def __init__(self, mechanism: str, lookup: object) -> None:
        self.mechanism = mechanism
        self._digest = MECHANISMS[mechanism][1]
        self._lookup = lookup  # callable (username, mechanism) -> ScramCredential | None
        self.complete = False
        self.authorization_id = ""
        self.credential_expires_ms: int | None = None
        self._state = "client-first"
        self._credential: ScramCredential | None = None
        self._client_first_bare = ""
        self._gs2_header = ""
        self._server_first = ""
        self._nonce = ""

    def evaluate(self, token: bytes) -> bytes:
        try:
            message = token.decode()
        except UnicodeDecodeError:
            raise SaslAuthenticationError("Invalid SCRAM message: not UTF-8") from None
        if self._state == "client-first":
            return self._client_first(message)
        if self._state == "client-final":
            return self._client_final(message)
        raise SaslAuthenticationError(f"Unexpected SCRAM message in state {self._state}")

    def _client_first(self, message: str) -> bytes:
        gs2, sep, bare = message.partition(",")
        authzid, sep2, bare = bare.partition(",")
        if not sep or not sep2 or gs2 not in ("n", "y"):
            raise SaslAuthenticationError("Invalid SCRAM client-first message: bad GS2 header (channel binding "
                                          "is not supported)")
        attrs = _attributes(bare)
        if "n" not in attrs or "r" not in attrs:
            raise SaslAuthenticationError("Invalid SCRAM client-first message: missing n= or r=")
        username = _decode_username(attrs["n"])
        if authzid and authzid != f"a={attrs['n']}":
            raise SaslAuthenticationError("Authentication failed: Client requested an authorization id that is "
                                          "different from username")
        credential = self._lookup(username, self.mechanism)  # type: ignore[operator]
        if credential is None:
            raise SaslAuthenticationError("Authentication failed: Invalid user credentials")
        self._credential = credential
        self.authorization_id = username
        self._client_first_bare = bare
        self._gs2_header = f"{gs2},{authzid},"
        self._nonce = attrs["r"] + base64.b64encode(os.urandom(24)).decode()
        self._server_first = f"r={self._nonce},s={_b64(credential.salt)},i={credential.iterations}"
        self._state = "client-final"
        return self._server_first.encode()

    def _client_final(self, message: str) -> bytes:
        without_proof, sep, proof_part = message.rpartition(",p=")
        attrs = _attributes(without_proof) if sep else {}
        # Kafka's ScramSaslServer checks that the nonce *ends with* the server's: librdkafka before 2.1 sends
        # the client nonce twice (client nonce + server nonce, which already starts with it).
        if not sep or not attrs.get("r", "").endswith(self._nonce):
            raise SaslAuthenticationError("Invalid SCRAM client-final message: nonce mismatch or no proof")
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except ValueError:
            raise SaslAuthenticationError("Invalid SCRAM client proof") from None
        # RFC 5802: c= repeats the GS2 header (no channel binding: "biws" is base64 of "n,,").
        if attrs.get("c") != base64.b64encode(self._gs2_header.encode()).decode():
            raise SaslAuthenticationError("Invalid SCRAM client-final message: channel binding does not match")
        credential = self._credential
        assert credential is not None
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.digest(credential.stored_key, auth_message, self._digest)
        if len(proof) != len(signature):
            raise SaslAuthenticationError("Authentication failed: Invalid user credentials")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self._digest, client_key).digest(), credential.stored_key):
            raise SaslAuthenticationError("Authentication failed: Invalid user credentials")
        self._state = "complete"
        self.complete = True
        return f"v={_b64(hmac.digest(credential.server_key, auth_message, self._digest))}".encode()


class ScramClient:
    """The client side of SCRAM, for Moldau's own CLI client (`--command-config`)."""

    def __init__(self, mechanism: str, username: str, password: str) -> None:
        self.mechanism = mechanism
        self._digest = MECHANISMS[mechanism][1]
        self._username = username.replace("=", "=3D").replace(",", "=2C")
        self._password = password
        self._nonce = base64.b64encode(os.urandom(18)).decode()
        self._client_first_bare = f"n={self._username},r={self._nonce}"
        self._server_signature = b""

    def first_message(self) -> bytes:
        return f"n,,{self._client_first_bare}".encode()

    def final_message(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = _attributes(text)
        if not attrs.get("r", "").startswith(self._nonce):
            raise SaslAuthenticationError("SCRAM server nonce does not extend the client nonce")
        salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
        salted = salted_password(self.mechanism, self._password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", self._digest)
        stored_key = hashlib.new(self._digest, client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self._client_first_bare},{text},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, self._digest)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self._digest)
        self._server_signature = hmac.digest(server_key, auth_message, self._digest)
        return f"{without_proof},p={_b64(proof)}".encode()

    def verify_server_final(self, server_final: bytes) -> None:
        attrs = _attributes(server_final.decode())
        if "v" not in attrs or base64.b64decode(attrs["v"]) != self._server_signature:
            raise SaslAuthenticationError(f"SCRAM server signature is invalid: {attrs.get('e', 'bad signature')}")
