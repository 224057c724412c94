"""The SASL state machine without sockets: states, re-authentication (KIP-368), and a property test that
no sequence of malformed handshakes and tokens authenticates without the password."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.protocol.errors import ErrorCode
from moldau.security.sasl import SaslAuthenticationError
from moldau.security.sasl.authenticator import IllegalSaslState, SaslAuthenticator
from moldau.security.sasl.plain import PlainServer
from moldau.security.sasl.scram import ScramClient, ScramServer, new_credential

METADATA, HANDSHAKE, AUTHENTICATE, API_VERSIONS = 3, 17, 36, 18
USERS = {"alice": "alice-secret"}
CREDENTIAL = new_credential("SCRAM-SHA-256", "alice-secret", 4096)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def authenticator(clock: Clock, reauth_ms: int = 0) -> SaslAuthenticator:
    return SaslAuthenticator({
        "PLAIN": lambda: PlainServer(USERS),
        "SCRAM-SHA-256": lambda: ScramServer("SCRAM-SHA-256",
                                             lambda u, m: CREDENTIAL if u == "alice" else None),
    }, reauth_ms, clock)


def test_only_authentication_apis_before_authentication_and_session_expiry():
    clock = Clock()
    sasl = authenticator(clock, reauth_ms=10_000)
    assert sasl.permits(API_VERSIONS) and sasl.permits(HANDSHAKE) and not sasl.permits(METADATA)
    assert sasl.handshake("PLAIN", 1) == ErrorCode.NONE
    assert not sasl.permits(METADATA) and sasl.permits(AUTHENTICATE)
    sasl.authenticate(b"\0alice\0alice-secret")
    assert sasl.authenticated and sasl.permits(METADATA) and sasl.session_lifetime_ms() == 10_000
    clock.ms += 10_000
    assert not sasl.permits(METADATA) and sasl.permits(HANDSHAKE)  # expired: re-authenticate or go
    assert sasl.handshake("PLAIN", 1) == ErrorCode.NONE
    sasl.authenticate(b"\0alice\0alice-secret")
    assert sasl.permits(METADATA) and sasl.reauthentications == 1


def test_reauthentication_cannot_change_principal_or_mechanism():
    clock = Clock()
    sasl = authenticator(clock, reauth_ms=10_000)
    sasl.handshake("PLAIN", 1)
    sasl.authenticate(b"\0alice\0alice-secret")
    assert sasl.handshake("SCRAM-SHA-256", 1) == ErrorCode.UNSUPPORTED_SASL_MECHANISM
    sasl = authenticator(clock, reauth_ms=10_000)
    sasl.handshake("PLAIN", 1)
    sasl.authenticate(b"\0alice\0alice-secret")
    sasl._factories["PLAIN"] = lambda: PlainServer({"mallory": "pw"})  # the same mechanism, another user
    sasl.handshake("PLAIN", 1)
    try:
        sasl.authenticate(b"\0mallory\0pw")
        raise AssertionError("principal changed during re-authentication")
    except SaslAuthenticationError as exc:
        assert "Cannot change principals" in str(exc)


def test_scram_round_trip_with_our_client_and_a_wrong_password():
    for password, ok in (("alice-secret", True), ("wrong", False)):
        sasl = authenticator(Clock())
        sasl.handshake("SCRAM-SHA-256", 1)
        client = ScramClient("SCRAM-SHA-256", "alice", password)
        server_first = sasl.authenticate(client.first_message())
        try:
            client.verify_server_final(sasl.authenticate(client.final_message(server_first)))
            assert ok and sasl.principal_name == "alice"
        except SaslAuthenticationError:
            assert not ok and not sasl.authenticated


steps = st.lists(st.one_of(
    st.tuples(st.just("handshake"), st.sampled_from(["PLAIN", "SCRAM-SHA-256", "GSSAPI", ""]), st.integers(0, 1)),
    st.tuples(st.just("token"), st.one_of(
        st.binary(max_size=80),
        st.sampled_from([b"\0alice\0wrong", b"alice\0alice-secret", b"\0\0", b"n,,n=alice,r=abc",
                         b"n,,n=alice,r=abc,extra", b"c=biws,r=abc,p=AAAA", b"\0alice\0alice-secret\0"])),
        st.just(0)),
), max_size=8)


@settings(max_examples=500, deadline=None)
@given(steps)
def test_no_sequence_without_the_password_authenticates(sequence):
    sasl = authenticator(Clock())
    for kind, value, version in sequence:
        try:
            if kind == "handshake":
                sasl.handshake(value, version)  # type: ignore[arg-type]
            else:
                sasl.authenticate(value)  # type: ignore[arg-type]
        except (SaslAuthenticationError, IllegalSaslState):
            pass
        assert not sasl.authenticated
        assert not sasl.permits(METADATA)
