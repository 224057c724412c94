"""Kafka principals (`User:alice`) and the SSL principal from a client certificate.

Kafka's DefaultKafkaPrincipalBuilder: PLAINTEXT connections and SSL connections without a client
certificate are `User:ANONYMOUS`; with a certificate, `ssl.principal.mapping.rules` (SslPrincipalMapper)
turn the subject's RFC 2253 distinguished name into the user name; SASL uses the authenticated name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from moldau.security.listeners import SecurityConfigError


@dataclass(slots=True, frozen=True)
class KafkaPrincipal:
    principal_type: str
    name: str

    def __str__(self) -> str:
        return f"{self.principal_type}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> KafkaPrincipal:
        kind, sep, name = text.partition(":")
        if not sep or not kind:
            raise ValueError(f"Invalid principal {text!r}: expected Type:name, e.g. User:alice")
        return cls(kind, name)


ANONYMOUS = KafkaPrincipal("User", "ANONYMOUS")

# Short attribute names Java's X500Principal.getName() (RFC 2253) uses; others appear as OIDs there.
_RDN_KEYS = {"commonName": "CN", "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
             "organizationName": "O", "organizationalUnitName": "OU", "streetAddress": "STREET",
             "domainComponent": "DC", "userId": "UID"}


def rfc2253_name(subject: tuple[tuple[tuple[str, str], ...], ...]) -> str:
    """`ssl.SSLSocket.getpeercert()["subject"]` as RFC 2253 text: last RDN first, like Java's getName()."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{_RDN_KEYS.get(key, key)}={_escape(value)}" for key, value in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    escaped = re.sub(r'([,+"\\<>;])', r"\\\1", value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and len(escaped) > 1:
        escaped = escaped[:-1] + "\\ "
    return escaped


_RULE = re.compile(r"\s*(DEFAULT|RULE:((?:\\/|[^/])*)/((?:\\/|[^/])*)/([LU]?)|(.*?))\s*(?:,\s*|$)")


@dataclass(slots=True, frozen=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str
    case: str

    def apply(self, dn: str) -> str | None:
        if self.pattern is None:
            return dn
        if not self.pattern.fullmatch(dn):
            return None
        result = self.pattern.sub(self.replacement, dn)
        return result.lower() if self.case == "L" else result.upper() if self.case == "U" else result


class SslPrincipalMapper:
    """`ssl.principal.mapping.rules`: `RULE:pattern/replacement/[LU]` entries and `DEFAULT`, first match wins."""

    def __init__(self, rules: str | None) -> None:
        self.rules: list[_Rule] = []
        text = (rules or "DEFAULT").strip()
        position = 0
        while position < len(text):
            match = _RULE.match(text, position)
            if match is None or match.end() == position:
                raise SecurityConfigError(f"Invalid ssl.principal.mapping.rules near {text[position:]!r}")
            if match.group(5):
                raise SecurityConfigError(f"Invalid rule in ssl.principal.mapping.rules: {match.group(5)!r}")
            if match.group(1) == "DEFAULT":
                self.rules.append(_Rule(None, "", ""))
            else:
                pattern = match.group(2).replace("\\/", "/")
                # Java's Matcher.replaceAll uses $1 for groups; Python's re uses \g<1>.
                replacement = re.sub(r"\$(\d+)", r"\\g<\1>", match.group(3).replace("\\/", "/"))
                self.rules.append(_Rule(re.compile(pattern), replacement, match.group(4)))
            position = match.end()

    def name(self, dn: str) -> str:
        for rule in self.rules:
            result = rule.apply(dn)
            if result is not None:
                return result
        raise PermissionError(f"No rule of ssl.principal.mapping.rules applies to the distinguished name {dn}")
