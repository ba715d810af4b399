"""Options: one place that knows units, defaults and ranges, and says what is allowed."""

import pytest
import zmq

from zlab.options import OPTIONS, socket_type, validate_option


def test_defaults_match_a_fresh_libzmq_socket():
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    try:
        for name, spec in OPTIONS.items():
            if name == "reconnect_stop":
                continue  # not readable on every build
            assert sock.getsockopt(spec.zmq_constant) == spec.default, name
    finally:
        sock.close(linger=0)
        ctx.term()


@pytest.mark.parametrize("name,value,message", [
    ("heartbeat_ivl", -5, r"heartbeat_ivl must be in 0\.\.2147483647 ms; got -5"),
    ("reconnect_ivl", -2, r"reconnect_ivl must be in -1\.\."),
    ("heartbeat_ttl", 6553600, r"0\.\.6553599 ms"),
    ("linger", "soon", r"whole number"),
    ("tcp_keepalive", 2, r"-1\.\.1"),
])
def test_bad_values_say_the_allowed_range(name, value, message):
    with pytest.raises(ValueError, match=message):
        validate_option(name, value)


def test_unknown_option_lists_the_taught_ones():
    with pytest.raises(ValueError, match="heartbeat_ivl, heartbeat_timeout"):
        validate_option("heartbeat_interval", 100)


def test_pyzmq_options_outside_the_kit_pass_through():
    assert validate_option("subscribe", "") == b""
    assert validate_option("plain_server", 1) == 1


def test_unknown_socket_type_lists_valid_types():
    with pytest.raises(ValueError, match="unknown socket type 'PUBB'; valid types: PAIR, PUB, SUB"):
        socket_type("PUBB")
    assert socket_type("sub") == zmq.SUB


def test_lab_socket_rejects_bad_options_and_leaves_nothing_open(lab):
    with pytest.raises(ValueError, match="reconnect_ivl_max"):
        lab.socket("PUB", "pub", reconnect_ivl_max=-1)
    assert lab.sockets == {}
    assert lab.socket("PUB", "pub").getsockopt(zmq.LINGER) == 0


def test_heartbeat_timeout_minus_1_means_libzmq_default_and_is_left_unset(lab):
    # libzmq 4.3.5 reads -1 (= heartbeat_ivl) but refuses to be set to it (EINVAL).
    sock = lab.socket("DEALER", heartbeat_ivl=100, heartbeat_timeout=-1)
    assert sock.getsockopt(zmq.HEARTBEAT_TIMEOUT) == -1
    with pytest.raises(ValueError, match=r"0\.\.2147483647 ms \(or -1 for libzmq's default\)"):
        validate_option("heartbeat_timeout", -2)
