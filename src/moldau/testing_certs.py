"""Throw-away certificates for tests: a CA, a server certificate for 127.0.0.1/localhost, client certificates.

    certs = generate_certificates(tmp_path)            # needs `cryptography` (a test dependency)
    broker: ssl.keystore.location=certs.server_keystore, ssl.truststore.location=certs.ca
    client: ssl.ca.location=certs.ca, ssl.certificate.location=certs.client_cert, ssl.key.location=certs.client_key
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True, frozen=True)
class Certificates:
    ca: Path  # the CA certificate (PEM): the broker's and the clients' truststore
    server_keystore: Path  # KIP-651 PEM keystore: PKCS#8 key followed by the certificate chain
    server_key: Path
    server_chain: Path
    client_cert: Path
    client_key: Path
    client_dn: str  # RFC 2253, as ssl.principal.mapping.rules see it


def generate_certificates(directory: Path, client_cn: str = "client", key_password: str | None = None) -> Certificates:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CZ"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Moldau Test"),
                          x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Tests"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(subject: x509.Name, key, issuer: x509.Name, issuer_key, ca: bool, usage=None, san=None):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def key_pem(key, password: str | None = None) -> bytes:
        encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                      else serialization.NoEncryption())
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    def cert_pem(cert) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = issue(name("Moldau Test CA"), ca_key, name("Moldau Test CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = issue(name("localhost"), server_key, ca_cert.subject, ca_key, ca=False,
                        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
                        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = issue(name(client_cn), client_key, ca_cert.subject, ca_key, ca=False,
                        usage=[ExtendedKeyUsageOID.CLIENT_AUTH])

    paths = Certificates(ca=directory / "ca.pem", server_keystore=directory / "server.keystore.pem",
                         server_key=directory / "server.key.pem", server_chain=directory / "server.chain.pem",
                         client_cert=directory / "client.pem", client_key=directory / "client.key.pem",
                         client_dn=f"CN={client_cn},OU=Tests,O=Moldau Test,C=CZ")
    paths.ca.write_bytes(cert_pem(ca_cert))
    chain = cert_pem(server_cert) + cert_pem(ca_cert)
    paths.server_keystore.write_bytes(key_pem(server_key, key_password) + chain)
    paths.server_key.write_bytes(key_pem(server_key, key_password))
    paths.server_chain.write_bytes(chain)
    paths.client_cert.write_bytes(cert_pem(client_cert))
    paths.client_key.write_bytes(key_pem(client_key))
    for path in (paths.server_keystore, paths.server_key, paths.client_key):
        path.chmod(0o600)
    return paths
