"""The Lab and its topologies: real sockets, named, monitored from birth, closed cleanly."""

import os
import time

import pytest
import zmq

import zlab
from zlab.traffic import deliver


def test_lab_sockets_default_to_linger_0_and_are_monitored(lab):
    sock = lab.socket("PUB", bind="tcp")
    assert sock.getsockopt(zmq.LINGER) == 0
    assert lab.wait_for("LISTENING").socket == "pub0"


def test_port_in_use_is_a_clear_error(lab):
    first = lab.socket("PUB", "a", bind="tcp")
    with pytest.raises(ValueError, match="address already in use"):
        lab.socket("PUB", "b", bind=lab.endpoint(first))
    assert "b" not in lab.sockets


def test_duplicate_names_are_refused(lab):
    lab.socket("PUB", "x")
    with pytest.raises(ValueError, match="already open"):
        lab.socket("SUB", "x")


def test_pubsub_pub_binds_delivers(lab):
    topo = lab.pubsub(subscribers=2)
    assert len(topo.subs) == 2 and topo.endpoint.startswith("tcp://127.0.0.1:")
    assert deliver(topo.pub, topo.subs[0], b"hi")[0] == b"hi"
    assert deliver(topo.pub, topo.subs[1], b"hi")[0] == b"hi"


def test_pubsub_pub_connects_loops_when_its_sub_dies(lab):
    topo = lab.pubsub(pub_binds=False)
    topo.subs[0].close()
    disconnected = lab.wait_for("DISCONNECTED", "pub")
    lab.wait_for("CLOSED", "pub", since=disconnected.t, count=2, timeout=3)
    assert not topo.pub.closed


@pytest.mark.parametrize("builder,names", [
    ("reqrep", {"req", "rep"}),
    ("pushpull", {"push", "pull0"}),
    ("dealer_router", {"dealer", "router"}),
])
def test_builders_name_their_sockets(lab, builder, names):
    topo = getattr(lab, builder)()
    assert set(topo.sockets) == names
    assert topo.endpoint.startswith("tcp://127.0.0.1:")


def test_ipc_endpoints_live_in_a_private_directory_removed_on_close():
    with zlab.Lab() as lab:
        topo = lab.pushpull(transport="ipc")
        path = topo.endpoint[len("ipc://"):]
        directory = os.path.dirname(path)
        assert os.stat(directory).st_mode & 0o777 == 0o700
    assert not os.path.exists(directory)


def test_inproc_says_it_has_no_events_instead_of_an_empty_table(lab):
    topo = lab.pubsub(transport="inproc")
    assert "no monitor events" in topo.note
    assert lab.events(event="NOTE")[0].detail == topo.note
    assert lab.events(event=["CONNECTED", "ACCEPTED", "HANDSHAKE_SUCCEEDED"]) == []


def test_close_is_idempotent_and_fast():
    lab = zlab.Lab()
    lab.pubsub(pub_binds=False)
    start = time.monotonic()
    lab.close()
    lab.close()
    assert time.monotonic() - start < 1
    with pytest.raises(RuntimeError, match="closed"):
        lab.socket("PUB")


def test_unknown_transport_is_a_clear_error(lab):
    with pytest.raises(ValueError, match="malformed endpoint 'udp'"):
        lab.socket("PUB", bind="udp")
    with pytest.raises(ValueError, match="malformed endpoint"):
        lab.socket("SUB", connect="127.0.0.1:5555")
    assert lab.sockets == {}
