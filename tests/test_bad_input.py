"""Bad input, generated: every rejection is a ValueError with a message, nothing is left open."""

import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zlab
from zlab.options import OPTIONS, SOCKET_TYPES, socket_type, validate_option

option_names = st.sampled_from(sorted(OPTIONS))
anything = st.one_of(st.integers(min_value=-2**40, max_value=2**40), st.floats(allow_nan=True),
                     st.text(max_size=8), st.none(), st.booleans(), st.binary(max_size=4))


@given(name=option_names, value=anything)
@settings(max_examples=300, deadline=None)
def test_option_values_are_accepted_in_range_or_rejected_with_the_range(name, value):
    spec = OPTIONS[name]
    try:
        result = validate_option(name, value)
    except ValueError as exc:
        assert name in str(exc) and spec.unit in str(exc)
    else:
        top = 2**31 - 1 if spec.maximum is None else spec.maximum
        assert isinstance(result, int) and spec.minimum <= result <= top


@given(kind=st.one_of(st.text(max_size=10), st.integers(min_value=-5, max_value=50)))
@settings(max_examples=200, deadline=None)
def test_socket_types_are_known_or_rejected_with_the_list(kind):
    try:
        number = socket_type(kind)
    except ValueError as exc:
        assert "valid types: PAIR, PUB, SUB" in str(exc)
    else:
        assert number in SOCKET_TYPES.values()


@given(endpoint=st.one_of(
    st.text(max_size=30),
    st.builds(lambda host, port: f"tcp://{host}:{port}", st.sampled_from(["127.0.0.1", "", "::1", "x y"]),
              st.integers(min_value=-5, max_value=70000)),
))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_malformed_endpoints_are_value_errors_and_leave_no_socket(endpoint):
    threads = threading.active_count()
    with zlab.Lab() as lab:
        for role in ("bind", "connect"):
            try:
                sock = lab.socket("PAIR", **{role: endpoint})
            except ValueError as exc:
                assert str(exc)
                assert lab.sockets == {}
            else:
                sock.close()
    assert threading.active_count() <= threads + 1  # the dispatcher of a closing log may linger briefly


def test_a_bad_option_in_a_topology_leaves_nothing_running():
    with zlab.Lab() as lab:
        try:
            lab.pubsub(subscribers=2, sub_options={"heartbeat_ivl": -1})
        except ValueError as exc:
            assert "heartbeat_ivl must be in 0.." in str(exc)
        else:
            raise AssertionError("a negative heartbeat_ivl was accepted")
        assert lab.sockets == {}  # the PUB made before the bad SUB was closed too
