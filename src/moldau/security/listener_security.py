"""What a listener's security protocol needs: its TLS context, principal mapping and SASL mechanisms."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Any

from moldau.security.config import ListenerConfig
from moldau.security.listeners import SecurityConfigError, SecurityProtocol
from moldau.security.principal import ANONYMOUS, KafkaPrincipal, SslPrincipalMapper, rfc2253_name
from moldau.security.sasl import SaslServer
from moldau.security.sasl.authenticator import SaslAuthenticator
from moldau.security.sasl.jaas import plain_users
from moldau.security.sasl.oauthbearer import JwtValidator, OAuthBearerServer, OAuthSettings
from moldau.security.sasl.plain import PlainServer
from moldau.security.sasl.scram import MECHANISMS as SCRAM_MECHANISMS
from moldau.security.sasl.scram import ScramCredential, ScramServer
from moldau.security.ssl_context import reload_keystore, server_context

SUPPORTED_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
ScramLookup = Callable[[str, str], ScramCredential | None]


class ListenerSecurity:
    def __init__(self, name: str, protocol: SecurityProtocol, config: ListenerConfig) -> None:
        self.name = name
        self.protocol = protocol
        self.config = config
        self.ssl_context: ssl.SSLContext | None = server_context(config) if protocol.uses_tls else None
        self.principal_mapper = SslPrincipalMapper(config["ssl.principal.mapping.rules"])
        self.mechanisms: list[str] = []
        self._plain_users: dict[str, str] = {}
        self._jwt: JwtValidator | None = None
        if protocol.uses_sasl:
            self._configure_sasl()

    def _configure_sasl(self) -> None:
        enabled = [m.upper() for m in self.config["sasl.enabled.mechanisms"]]
        unsupported = [m for m in enabled if m not in SUPPORTED_MECHANISMS]
        if unsupported or not enabled:
            raise SecurityConfigError(
                f"Listener {self.name}: SASL mechanism(s) {', '.join(unsupported) or '(none)'} not supported; set "
                f"sasl.enabled.mechanisms to some of {', '.join(SUPPORTED_MECHANISMS)} (Kafka's default is GSSAPI)"
            )
        self.mechanisms = enabled
        if "PLAIN" in enabled:
            self._plain_users = plain_users(self.config.mechanism("plain", "sasl.jaas.config"))
        if "OAUTHBEARER" in enabled:
            c = self.config
            self._jwt = JwtValidator(OAuthSettings(
                jwks_url=c["sasl.oauthbearer.jwks.endpoint.url"], audience=c["sasl.oauthbearer.expected.audience"],
                issuer=c["sasl.oauthbearer.expected.issuer"], sub_claim=c["sasl.oauthbearer.sub.claim.name"],
                clock_skew_s=c["sasl.oauthbearer.clock.skew.seconds"],
                jwks_refresh_ms=c["sasl.oauthbearer.jwks.endpoint.refresh.ms"]))

    def jwks_refresher(self) -> tuple[Callable[[], None], float] | None:
        """(blocking refresh, interval in s) when this listener validates JWTs against a JWKS."""
        if self._jwt is None or not self._jwt.settings.jwks_url:
            return None
        return self._jwt.refresh, self._jwt.settings.jwks_refresh_ms / 1000

    def reload_keystore(self, dynamic: Mapping[str, str], validate_only: bool = False) -> None:
        """Dynamic `listener.name.<l>.ssl.keystore.*`: new connections get the new certificate, open ones keep
        theirs. The keystore is loaded into a scratch context first, so a bad one changes nothing."""
        if self.ssl_context is None:
            raise SecurityConfigError(f"Listener {self.name} does not use TLS")
        config = self.config.with_overrides(dynamic)
        reload_keystore(server_context(config), config)
        if not validate_only:
            reload_keystore(self.ssl_context, config)
            self.config = config

    def ssl_principal(self, ssl_object: Any) -> KafkaPrincipal:
        """The principal of a TLS peer: ANONYMOUS without a verified client certificate."""
        cert = ssl_object.getpeercert() if ssl_object is not None else None
        if not cert or "subject" not in cert:
            return ANONYMOUS
        return KafkaPrincipal("User", self.principal_mapper.name(rfc2253_name(cert["subject"])))

    def new_authenticator(self, scram_lookup: ScramLookup, now_ms: Callable[[], int]) -> SaslAuthenticator:
        factories: dict[str, Callable[[], SaslServer]] = {}
        for mechanism in self.mechanisms:
            if mechanism == "PLAIN":
                factories[mechanism] = lambda: PlainServer(self._plain_users)
            elif mechanism in SCRAM_MECHANISMS:
                factories[mechanism] = lambda m=mechanism: ScramServer(m, scram_lookup)  # type: ignore[misc]
            elif mechanism == "OAUTHBEARER":
                assert self._jwt is not None
                factories[mechanism] = lambda v=self._jwt: OAuthBearerServer(v)  # type: ignore[misc]
        return SaslAuthenticator(factories, self.config["connections.max.reauth.ms"], now_ms)
