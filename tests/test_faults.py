"""Peerless faults: a non-ZMTP client, a port in use, a security-mechanism mismatch."""

from __future__ import annotations

import errno
import socket
import threading

import pytest
import zmq

from zlab.faults import (
    BAD_GREETING,
    HTTP_REQUEST,
    BindConflict,
    Garbage,
    MechanismMismatch,
    bind_conflict,
    mechanism_mismatch,
    send_garbage,
)

MISMATCH = 0x11000002  # ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH


def test_http_bytes_get_a_greeting_then_a_no_detail_failure_when_the_client_leaves(lab):
    lab.socket("ROUTER", "server", bind="tcp")
    result = send_garbage(lab, "server", HTTP_REQUEST, hold=0.2)
    assert isinstance(result, Garbage)
    assert result.reply.startswith(b"\xff") and len(result.reply) >= 10  # the ZMTP signature, then it waits
    assert not result.closed_by_server
    names = [ev.event for ev in result.events]
    assert "ACCEPTED" in names and "HANDSHAKE_SUCCEEDED" not in names
    assert result.reaction is not None and result.reaction.event == "HANDSHAKE_FAILED_NO_DETAIL"
    assert "DISCONNECTED" in names
    fault = lab.events(event="FAULT")[-1]
    assert fault.detail == "garbage -> server" and fault.t <= result.events[0].t
    assert "HANDSHAKE_FAILED_NO_DETAIL" in str(result)


def test_a_broken_greeting_fails_the_handshake_at_once_with_a_protocol_error(lab):
    server = lab.socket("PULL", "server", bind="tcp")
    result = send_garbage(lab, server, BAD_GREETING, hold=1.0)
    assert result.closed_by_server
    reaction = result.reaction
    assert reaction is not None and reaction.event == "HANDSHAKE_FAILED_PROTOCOL"
    assert reaction.value == MISMATCH and reaction.meaning == "ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH"
    assert not server.closed  # one connection failed, the socket lives on


def test_garbage_reaction_is_its_own_connections_not_a_late_one_of_an_earlier_connection(lab):
    server = lab.socket("ROUTER", "server", bind="tcp")
    host, port = lab.endpoint(server)[6:].rsplit(":", 1)
    earlier = socket.create_connection((host, int(port)), timeout=2.0)
    earlier.sendall(HTTP_REQUEST)  # the server waits: no reaction until this client leaves
    lab.wait_for("ACCEPTED", "server")
    leave = threading.Timer(0.2, earlier.close)  # the earlier connection ends during the next one's hold
    leave.start()
    try:
        result = send_garbage(lab, "server", HTTP_REQUEST, hold=0.8)
    finally:
        leave.cancel()
        leave.join()
        earlier.close()
    mark = lab.events("server", "FAULT")[-1]
    ours = result.accepted.value
    late = [ev for ev in result.events if ev.event == "DISCONNECTED" and ev.value != ours]
    assert late and late[0].t > result.accepted.t  # the earlier connection's end was logged inside our window
    reaction = result.reaction
    assert reaction is not None and reaction.event == "HANDSHAKE_FAILED_NO_DETAIL"
    assert reaction.t - mark.t >= 0.7  # ours came only once our client left, after its 0.8 s hold
    after = [ev for ev in result.events if ev.t > reaction.t and ev.event == "DISCONNECTED"]
    assert after and after[0].value == ours


def test_garbage_reaches_a_peer_in_a_child_process(lab):
    peer = lab.peer("SUB", "sub0", bind="tcp")
    result = send_garbage(lab, peer, BAD_GREETING, hold=1.0)
    assert result.socket == "sub0"
    assert result.reaction is not None and result.reaction.event == "HANDSHAKE_FAILED_PROTOCOL"


def test_bind_on_a_port_in_use_raises_a_clear_error_and_reports_bind_failed(lab):
    holder = lab.socket("PUB", "holder", bind="tcp")
    endpoint = lab.endpoint(holder)
    result = bind_conflict(lab, "holder")
    assert isinstance(result, BindConflict)
    assert isinstance(result.error, ValueError)
    assert "address already in use" in str(result.error) and endpoint in str(result.error)
    assert result.event is not None and result.event.event == "BIND_FAILED"
    assert result.event.value == errno.EADDRINUSE
    seen = [ev.event for ev in result.events if not ev.is_marker]
    assert seen[:2] == ["CLOSED", "BIND_FAILED"]  # the attempt's descriptor, then the failure
    assert lab.endpoint(holder) == endpoint and not holder.closed
    assert lab.events(event="FAULT")[-1].detail == f"bind conflict on {endpoint}"


def test_bind_conflict_on_a_free_port_is_refused(lab):
    with socket.socket() as probe:  # a port nobody holds: bound, never listened on, released
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ValueError, match="was free"):
        bind_conflict(lab, f"tcp://127.0.0.1:{port}", name="second")
    assert "second" not in lab.sockets


@pytest.mark.parametrize("mechanism", ["PLAIN", "CURVE"])
def test_mechanism_mismatch_fails_both_handshakes_and_says_so(lab, mechanism):
    if mechanism == "CURVE" and not zmq.has("curve"):
        with pytest.raises(ValueError, match="CURVE"):
            mechanism_mismatch(lab, mechanism)
        return
    result = mechanism_mismatch(lab, mechanism)
    assert isinstance(result, MechanismMismatch)
    assert result.server_event is not None and result.client_event is not None
    assert result.server_event.event == result.client_event.event == "HANDSHAKE_FAILED_PROTOCOL"
    assert result.code == MISMATCH and result.code_name == "ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH"
    assert not any(ev.event == "HANDSHAKE_SUCCEEDED" for ev in result.events)
    assert result.server not in lab.sockets and result.client not in lab.sockets  # closed afterwards


def test_faults_reject_bad_targets_with_clear_errors(lab):
    with pytest.raises(ValueError, match="tcp endpoint"):
        send_garbage(lab, "ipc:///tmp/nothing.ipc")
    with pytest.raises(ValueError, match="PLAIN"):
        mechanism_mismatch(lab, "GSSAPI")
    with pytest.raises(ValueError, match="expected a socket name"):
        bind_conflict(lab, 42)
