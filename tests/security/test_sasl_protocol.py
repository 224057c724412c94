"""The SASL state machine at the wire level: nothing but ApiVersions and the SASL APIs before
authentication, SaslHandshake v0's bare tokens, and a fuzz run of malformed SASL frames."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moldau.protocol import api, messages
from moldau.protocol.errors import ErrorCode
from moldau.testing import running_broker

JAAS = 'org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";'
METADATA, SASL_HANDSHAKE, SASL_AUTHENTICATE = 3, 17, 36


@pytest.fixture(scope="module")
def sasl_broker():
    with running_broker(listeners="PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                        sasl_enabled_mechanisms="PLAIN,SCRAM-SHA-256", sasl_jaas_config=JAAS) as broker:
        yield broker


class Wire:
    """A raw connection: requests encoded with our codec, responses read frame by frame."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.correlation = 0

    def request(self, api_key: int, version: int, body) -> object | None:
        self.correlation += 1
        self.sock.sendall(api.encode_request(api_key, version, self.correlation, "wire-test", body))
        frame = self.frame()
        if frame is None:
            return None
        return api.decode_response(api_key, version, frame)[1]

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def frame(self) -> bytes | None:
        """The next frame, or None when the broker closed the connection."""
        size = self._exactly(4)
        if size is None:
            return None
        return self._exactly(struct.unpack(">i", size)[0])

    def _exactly(self, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            try:
                chunk = self.sock.recv(n - len(data))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def metadata_request():
    return messages.MetadataRequest(topics=None, allow_auto_topic_creation=False)


def test_requests_before_authentication_close_the_connection(sasl_broker):
    wire = Wire(sasl_broker.bootstrap("SASL_PLAINTEXT"))
    assert wire.request(METADATA, 9, metadata_request()) is None


def test_handshake_v1_then_authenticate(sasl_broker):
    wire = Wire(sasl_broker.bootstrap("SASL_PLAINTEXT"))
    handshake = wire.request(SASL_HANDSHAKE, 1, messages.SaslHandshakeRequest(mechanism="PLAIN"))
    assert handshake.error_code == ErrorCode.NONE and handshake.mechanisms == ["PLAIN", "SCRAM-SHA-256"]
    auth = wire.request(SASL_AUTHENTICATE, 2, messages.SaslAuthenticateRequest(auth_bytes=b"\0alice\0alice-secret"))
    assert auth.error_code == ErrorCode.NONE
    assert wire.request(METADATA, 9, metadata_request()).cluster_id == sasl_broker.broker.cluster_id


def test_handshake_v0_then_bare_tokens(sasl_broker):
    wire = Wire(sasl_broker.bootstrap("SASL_PLAINTEXT"))
    handshake = wire.request(SASL_HANDSHAKE, 0, messages.SaslHandshakeRequest(mechanism="PLAIN"))
    assert handshake.error_code == ErrorCode.NONE
    wire.send_frame(b"\0alice\0alice-secret")
    assert wire.frame() == b""  # PLAIN's empty server token, size-prefixed
    assert wire.request(METADATA, 9, metadata_request()).cluster_id == sasl_broker.broker.cluster_id


def test_wrong_password_and_unknown_mechanism_are_refused_then_closed(sasl_broker):
    wire = Wire(sasl_broker.bootstrap("SASL_PLAINTEXT"))
    wire.request(SASL_HANDSHAKE, 1, messages.SaslHandshakeRequest(mechanism="PLAIN"))
    auth = wire.request(SASL_AUTHENTICATE, 1, messages.SaslAuthenticateRequest(auth_bytes=b"\0alice\0nope"))
    assert auth.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert wire.frame() is None
    wire = Wire(sasl_broker.bootstrap("SASL_PLAINTEXT"))
    handshake = wire.request(SASL_HANDSHAKE, 1, messages.SaslHandshakeRequest(mechanism="GSSAPI"))
    assert handshake.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
    assert wire.frame() is None


frames = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda token: api.encode_request(SASL_AUTHENTICATE, 1, 7, "fuzz",
                                               messages.SaslAuthenticateRequest(auth_bytes=token))[4:],
              st.binary(max_size=200)),
    st.builds(lambda mechanism: api.encode_request(SASL_HANDSHAKE, 1, 7, "fuzz",
                                                   messages.SaslHandshakeRequest(mechanism=mechanism))[4:],
              st.sampled_from(["PLAIN", "SCRAM-SHA-256", "plain", "", "X" * 300])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(frames, min_size=1, max_size=5), handshake_first=st.booleans())
def test_fuzzed_sasl_frames_never_reach_other_apis(sasl_broker, sequence, handshake_first):
    """Malformed handshakes and tokens: the broker survives and a Metadata request is never answered."""
    wire = Wire(sasl_broker.bootstrap("SASL_PLAINTEXT"))
    try:
        if handshake_first:
            wire.request(SASL_HANDSHAKE, 1, messages.SaslHandshakeRequest(mechanism="SCRAM-SHA-256"))
        for payload in sequence:
            wire.send_frame(payload)
        wire.correlation = 999
        wire.sock.sendall(api.encode_request(METADATA, 9, 1000, "fuzz", metadata_request()))
        wire.sock.settimeout(5)
        while (frame := wire.frame()) is not None:
            correlation_id = struct.unpack_from(">i", frame)[0]
            assert correlation_id != 1000, "Metadata answered before authentication"
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    finally:
        wire.close()
    # The broker is alive and still authenticates a correct client.
    test_handshake_v1_then_authenticate(sasl_broker)


def test_unauthenticated_frames_are_capped_by_sasl_server_max_receive_size(sasl_broker):
    wire = Wire(sasl_broker.bootstrap("SASL_PLAINTEXT"))
    wire.sock.sendall(struct.pack(">i", 10_000_000))  # announces 10 MB before authenticating
    assert wire.frame() is None
