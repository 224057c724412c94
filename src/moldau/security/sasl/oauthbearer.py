"""SASL/OAUTHBEARER (RFC 7628, KIP-255, KIP-768): JWTs checked against a JWKS, or Kafka's unsecured mode.

With `sasl.oauthbearer.jwks.endpoint.url` set (https://, http:// or file:// for a local key set), tokens
must be signed JWTs whose key is in the JWKS, with `exp`, the expected audience and issuer (Kafka's
OAuthBearerValidatorCallbackHandler; PyJWT checks signatures). Without it the broker behaves like Kafka's
default OAuthBearerUnsecuredValidatorCallbackHandler: unsigned (`alg: none`) tokens, for development.
A rejected token gets `{"status":"invalid_token"}` and, after the client's `%x01` reply, fails.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from moldau.security.sasl import SaslAuthenticationError


@dataclass(slots=True)
class OAuthSettings:
    jwks_url: str | None
    audience: list[str]
    issuer: str | None
    sub_claim: str = "sub"
    clock_skew_s: int = 30
    jwks_refresh_ms: int = 3_600_000


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class JwtValidator:
    """Validates a compact JWT and returns its claims; one per listener, with the JWKS in memory.

    `refresh()` (blocking: file or HTTP) loads the key set; the broker calls it in a thread at start and
    every `sasl.oauthbearer.jwks.endpoint.refresh.ms`, so validating a token never waits on the network.
    """

    def __init__(self, settings: OAuthSettings) -> None:
        self.settings = settings
        self._keys: dict[str, Any] = {}  # kid -> PyJWK

    def refresh(self) -> None:
        import urllib.request

        import jwt

        url = self.settings.jwks_url
        assert url is not None
        with urllib.request.urlopen(url, timeout=10) as response:  # file://, http://, https://
            document = json.loads(response.read())
        try:
            key_set = jwt.PyJWKSet.from_dict(document)
        except jwt.PyJWTError as exc:
            raise ValueError(f"invalid JWKS at {url}: {exc}") from None
        self._keys = {key.key_id or "": key for key in key_set.keys}

    def validate(self, token: str) -> dict[str, Any]:
        if self.settings.jwks_url:
            return self._validate_signed(token)
        return self._validate_unsecured(token)

    def _validate_unsecured(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3 or parts[2]:
            raise SaslAuthenticationError("invalid_token: an unsecured JWS has three parts and no signature")
        try:
            header = json.loads(_b64url(parts[0]))
            claims = json.loads(_b64url(parts[1]))
        except (ValueError, UnicodeDecodeError):
            raise SaslAuthenticationError("invalid_token: header or claims are not base64url JSON") from None
        if not isinstance(header, dict) or header.get("alg") != "none" or not isinstance(claims, dict):
            raise SaslAuthenticationError("invalid_token: unsecured tokens must have alg 'none'")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)):
            raise SaslAuthenticationError("invalid_token: the exp claim is required")
        if exp + self.settings.clock_skew_s < time.time():
            raise SaslAuthenticationError("invalid_token: the token has expired")
        return claims

    def _validate_signed(self, token: str) -> dict[str, Any]:
        try:
            import jwt  # PyJWT, the `oauth` extra
        except ImportError:
            raise SaslAuthenticationError("OAUTHBEARER with a JWKS needs PyJWT: pip install 'moldau[oauth]'") from None
        try:
            kid = jwt.get_unverified_header(token).get("kid") or ""
            key = self._keys.get(kid) or (next(iter(self._keys.values())) if len(self._keys) == 1 and not kid
                                          else None)
            if key is None:
                raise SaslAuthenticationError(f"invalid_token: no key with kid {kid!r} in the JWKS")
            options = {"require": ["exp", self.settings.sub_claim], "verify_aud": bool(self.settings.audience)}
            return jwt.decode(token, key.key, algorithms=["RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
                                                          "PS256", "PS384", "PS512"],
                              audience=self.settings.audience or None, issuer=self.settings.issuer,
                              leeway=self.settings.clock_skew_s, options=options)  # type: ignore[arg-type]
        except jwt.PyJWTError as exc:
            raise SaslAuthenticationError(f"invalid_token: {exc}") from None


class OAuthBearerServer:
    mechanism = "OAUTHBEARER"

    def __init__(self, validator: JwtValidator) -> None:
        self._validator = validator
        self.complete = False
        self.authorization_id = ""
        self.credential_expires_ms: int | None = None
        self._error: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        if self._error is not None:
            # RFC 7628 §3.2.3: after an error challenge the client sends %x01 and the exchange fails.
            raise SaslAuthenticationError(self._error)
        try:
            message = token.decode()
        except UnicodeDecodeError:
            raise SaslAuthenticationError("Invalid OAUTHBEARER message: not UTF-8") from None
        gs2, sep, rest = message.partition("\x01")
        fields = gs2.split(",")
        if not sep or len(fields) < 2 or fields[0] not in ("n", "y"):
            raise SaslAuthenticationError("Invalid OAUTHBEARER initial response: bad GS2 header")
        authzid = fields[1][2:] if fields[1].startswith("a=") else ""
        pairs = dict(kv.partition("=")[::2] for kv in rest.split("\x01") if kv)
        auth = pairs.get("auth", "")
        if not auth.startswith("Bearer "):
            raise SaslAuthenticationError("Invalid OAUTHBEARER initial response: no 'auth=Bearer <token>'")
        try:
            claims = self._validator.validate(auth[len("Bearer "):].strip())
            principal = claims.get(self._validator.settings.sub_claim)
            if not isinstance(principal, str) or not principal:
                raise SaslAuthenticationError(f"invalid_token: no {self._validator.settings.sub_claim} claim")
            if authzid and authzid != principal:
                raise SaslAuthenticationError("Authentication failed: authorization id differs from the token's "
                                              "principal")
        except SaslAuthenticationError as exc:
            self._error = str(exc)
            return json.dumps({"status": "invalid_token"}).encode()
        self.authorization_id = principal
        self.credential_expires_ms = int(float(claims["exp"]) * 1000)
        self.complete = True
        return b""
