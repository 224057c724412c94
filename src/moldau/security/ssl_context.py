"""Server (and inter-broker client) `ssl.SSLContext`s from Kafka's `ssl.*` configs (PEM keystores and truststores, KIP-651).

A keystore is either one PEM file at `ssl.keystore.location` holding the PKCS#8 private key and the
certificate chain, or the PEM text itself in `ssl.keystore.key` and `ssl.keystore.certificate.chain`.
Python's `ssl` loads keys and chains only from files, so inline PEM goes through a private temporary
file that is removed as soon as it is loaded.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from typing import Any

from moldau.security.listeners import SecurityConfigError

CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
                "TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1": ssl.TLSVersion.TLSv1}


def server_context(config: Any) -> ssl.SSLContext:
    """Build the context for a listener; `config[key]` returns that listener's value of `key`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _set_protocols(context, config["ssl.enabled.protocols"])
    _load_keystore(context, config)
    _load_truststore(context, config)
    client_auth = (config["ssl.client.auth"] or "none").lower()
    if client_auth not in CLIENT_AUTH:
        raise SecurityConfigError(f"Invalid ssl.client.auth {client_auth!r}: expected none, requested or required")
    context.verify_mode = CLIENT_AUTH[client_auth]
    _set_ciphers(context, config["ssl.cipher.suites"])
    return context


def _set_ciphers(context: ssl.SSLContext, suites: list[str]) -> None:
    if suites:
        names = [openssl_cipher_name(s) for s in suites if not _is_tls13_suite(s)]
        if names:
            try:
                context.set_ciphers(":".join(names))
            except ssl.SSLError:
                raise SecurityConfigError(f"None of ssl.cipher.suites {suites} is available in OpenSSL") from None


def client_context(config: Any) -> ssl.SSLContext:
    """The context a broker connects to another broker's listener with (Kafka's inter-broker channel uses the
    listener's own `ssl.*` configs in client mode): the truststore verifies the peer, and the keystore, when
    set, answers a listener that requires client certificates (`ssl.client.auth=required`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _set_protocols(context, config["ssl.enabled.protocols"])
    if config["ssl.truststore.certificates"] or config["ssl.truststore.location"]:
        _load_truststore(context, config)
    else:
        context.load_default_certs()
    if config["ssl.keystore.location"] or config["ssl.keystore.key"]:
        _load_keystore(context, config)
    # Kafka's ssl.endpoint.identification.algorithm: "https" (the default) checks the host name, "" does not.
    context.check_hostname = bool(config["ssl.endpoint.identification.algorithm"])
    _set_ciphers(context, config["ssl.cipher.suites"])
    return context


def reload_keystore(context: ssl.SSLContext, config: Any) -> None:
    """Load a new key and chain into a live context: new connections use them, open ones keep theirs."""
    _load_keystore(context, config)


def _set_protocols(context: ssl.SSLContext, protocols: list[str]) -> None:
    try:
        versions = sorted(TLS_VERSIONS[p] for p in protocols)
    except KeyError as exc:
        raise SecurityConfigError(f"Unsupported TLS version {exc.args[0]!r} in ssl.enabled.protocols") from None
    if not versions:
        raise SecurityConfigError("ssl.enabled.protocols is empty")
    context.minimum_version, context.maximum_version = versions[0], versions[-1]


def _load_keystore(context: ssl.SSLContext, config: Any) -> None:
    if (config["ssl.keystore.type"] or "PEM").upper() != "PEM":
        raise SecurityConfigError(f"ssl.keystore.type {config['ssl.keystore.type']} is not supported: Python's ssl "
                                  "reads PEM only (convert with `openssl pkcs12 -in ks.p12 -nodes`)")
    password = config["ssl.key.password"]
    location, key, chain = (config["ssl.keystore.location"], config["ssl.keystore.key"],
                            config["ssl.keystore.certificate.chain"])
    try:
        if key or chain:
            if not (key and chain):
                raise SecurityConfigError("ssl.keystore.key and ssl.keystore.certificate.chain must be set together")
            with _private_file(key.strip() + "\n" + chain.strip() + "\n") as path:
                context.load_cert_chain(path, password=password)
        elif location:
            context.load_cert_chain(location, password=password)
        else:
            raise SecurityConfigError("An SSL listener needs ssl.keystore.location (PEM key and chain) or "
                                      "ssl.keystore.key with ssl.keystore.certificate.chain")
    except (ssl.SSLError, OSError) as exc:
        raise SecurityConfigError(f"Cannot load the keystore {location or '(ssl.keystore.key)'}: {exc}") from None


def _load_truststore(context: ssl.SSLContext, config: Any) -> None:
    if (config["ssl.truststore.type"] or "PEM").upper() != "PEM":
        raise SecurityConfigError(f"ssl.truststore.type {config['ssl.truststore.type']} is not supported: use PEM")
    try:
        if config["ssl.truststore.certificates"]:
            context.load_verify_locations(cadata=config["ssl.truststore.certificates"])
        elif config["ssl.truststore.location"]:
            context.load_verify_locations(cafile=config["ssl.truststore.location"])
    except (ssl.SSLError, OSError) as exc:
        raise SecurityConfigError(f"Cannot load the truststore: {exc}") from None


class _private_file:
    """A 0600 temporary file with `text`, deleted on exit."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._path = ""

    def __enter__(self) -> str:
        fd, self._path = tempfile.mkstemp(prefix="moldau-keystore-", suffix=".pem")
        with os.fdopen(fd, "w") as f:
            f.write(self._text)
        return self._path

    def __exit__(self, *exc: object) -> None:
        os.unlink(self._path)


def _is_tls13_suite(name: str) -> bool:
    # TLS 1.3 suites (TLS_AES_128_GCM_SHA256, ...) have no key exchange part; OpenSSL configures them
    # separately and Python's ssl cannot restrict them, so they stay enabled.
    return name.startswith("TLS_") and "_WITH_" not in name


_CIPHER = re.compile(r"(AES|CAMELLIA|ARIA)_(\d+)_(GCM|CBC|CCM)")


def openssl_cipher_name(name: str) -> str:
    """Java/IANA suite names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) as OpenSSL's (ECDHE-RSA-AES128-GCM-SHA256)."""
    if not name.startswith("TLS_") or "_WITH_" not in name:
        return name  # already an OpenSSL name
    exchange, _, rest = name[4:].partition("_WITH_")
    exchange = "" if exchange == "RSA" else exchange.replace("_", "-") + "-"
    match = _CIPHER.match(rest)
    if match:
        algorithm, bits, mode = match.groups()
        tail = rest[match.end():].lstrip("_")
        cipher = f"{algorithm}{bits}" + ("" if mode == "CBC" else f"-{mode}")
        return f"{exchange}{cipher}-{tail}"
    return exchange + rest.replace("_", "-")
