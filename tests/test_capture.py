"""Capture: every monitor event reaches the EventLog, nothing freezes, nothing leaks."""

import time

import zmq

import zlab
from conftest import live_threads, open_fds


def flap(sock, cycles):
    """bind + unbind on a fresh loopback port: LISTENING then CLOSED, ``cycles`` times."""
    for _ in range(cycles):
        sock.bind("tcp://127.0.0.1:*")
        sock.unbind(sock.last_endpoint)


def close_and_count(lab, sock, name):
    """Close ``sock`` and wait for its MONITOR_STOPPED. Measured (libzmq 4.3.5): in a tight
    bind/unbind loop about 0.1 % of the CLOSED events are held back until the socket closes,
    with a bare pyzmq reader too; after close every one has arrived."""
    sock.close()
    lab.wait_for("MONITOR_STOPPED", name, timeout=5)
    return lab.log.counts(name)


def test_dealer_pair_shows_libzmq_test_monitor_lifecycle(lab):
    # libzmq tests/test_monitor.cpp: server LISTENING, ACCEPTED, HANDSHAKE_SUCCEEDED;
    # client CONNECTED, HANDSHAKE_SUCCEEDED; client close -> server DISCONNECTED(same fd).
    server = lab.socket("DEALER", "server", bind="tcp")
    endpoint = lab.endpoint(server)
    client = lab.socket("DEALER", "client", connect=endpoint)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "server")
    lab.wait_for("HANDSHAKE_SUCCEEDED", "client")
    client.close()
    disconnected = lab.wait_for("DISCONNECTED", "server")

    server_events = [e for e in lab.events("server") if e.event != "CLOSED"]
    assert [e.event for e in server_events][:4] == ["LISTENING", "ACCEPTED", "HANDSHAKE_SUCCEEDED", "DISCONNECTED"]
    client_events = [e.event for e in lab.events("client") if e.event in ("CONNECTED", "HANDSHAKE_SUCCEEDED")]
    assert client_events == ["CONNECTED", "HANDSHAKE_SUCCEEDED"]
    accepted = lab.wait_for("ACCEPTED", "server")
    assert disconnected.value == accepted.value  # the connection's fd, not the socket
    assert all(e.endpoint == endpoint for e in server_events)
    assert all(e.endpoint == endpoint for e in lab.events("client") if e.event != "MONITOR_STOPPED")


def test_connection_churn_loses_no_event(lab):
    router = lab.socket("ROUTER", "router", bind="tcp")
    endpoint = lab.endpoint(router)
    ctx = zmq.Context()
    try:
        for i in range(300):
            client = ctx.socket(zmq.DEALER)
            client.linger = 0
            client.connect(endpoint)
            client.send(b"%d" % i)
            assert router.poll(5000), f"client {i} never arrived"
            router.recv_multipart()
            client.close()
    finally:
        ctx.term()
    # Nobody read the log until now.
    lab.wait_for("DISCONNECTED", "router", count=300, timeout=10)
    counts = lab.log.counts("router")
    assert counts["ACCEPTED"] == 300
    assert counts["DISCONNECTED"] == 300
    assert lab.log.discarded == 0


def test_bind_unbind_storm_with_slow_subscriber_does_not_freeze():
    with zlab.Lab() as lab:
        lab.log.subscribe(lambda ev: time.sleep(0.001))  # 1 ms per event: far slower than capture
        sock = lab.socket("DEALER", "flapper")
        start = time.monotonic()
        flap(sock, 3000)
        elapsed = time.monotonic() - start
        assert elapsed < 10, f"3000 bind/unbind cycles took {elapsed:.1f} s"
        lab.wait_for("LISTENING", "flapper", count=3000, timeout=5)
        counts = close_and_count(lab, sock, "flapper")
        assert counts["LISTENING"] == 3000 and counts["CLOSED"] == 3000
        assert lab.log.discarded == 0


def test_a_small_cap_counts_what_it_discards_and_never_blocks():
    with zlab.Lab(cap=1000) as lab:
        sock = lab.socket("DEALER", "flapper")
        flap(sock, 3000)
        close_and_count(lab, sock, "flapper")
        assert lab.log.total == 6001  # 3000 LISTENING + 3000 CLOSED + MONITOR_STOPPED
        assert len(lab.log) == 1000 and lab.log.discarded == 5001


def test_unbounded_backlog_never_blocks_the_emitter(lab):
    # libzmq blocks once ~2000 events wait unread with a default reader; RCVHWM 0 means never.
    watched = lab.socket("DEALER", "watched")
    flap(watched, 5000)
    counts = close_and_count(lab, watched, "watched")
    assert counts["LISTENING"] == 5000 and counts["CLOSED"] == 5000


def test_closing_the_lab_leaves_user_sockets_usable():
    ctx = zmq.Context()
    server = ctx.socket(zmq.PAIR)
    client = ctx.socket(zmq.PAIR)
    try:
        server.linger = client.linger = 0
        port = server.bind_to_random_port("tcp://127.0.0.1")
        with zlab.Lab() as lab:
            lab.watch(server, "server")
            client.connect(f"tcp://127.0.0.1:{port}")
            lab.wait_for("HANDSHAKE_SUCCEEDED", "server")
        assert lab.events("server")[-1].event == "MONITOR_STOPPED"
        client.send(b"still here")
        assert server.poll(2000)
        assert server.recv() == b"still here"
    finally:
        server.close()
        client.close()
        ctx.term()


def test_user_closing_a_watched_socket_releases_its_reader():
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    with zlab.Lab() as lab:
        lab.watch(sock, "mine")
        sock.close()
        lab.wait_for("MONITOR_STOPPED", "mine", timeout=2)
        start = time.monotonic()
        ctx.term()  # would block forever if the Lab still held a reader in this context
        assert time.monotonic() - start < 1


def test_asyncio_sockets_can_be_watched():
    import zmq.asyncio

    actx = zmq.asyncio.Context()
    sock = actx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        with zlab.Lab() as lab:
            lab.watch(sock, "async")
            sock.bind("tcp://127.0.0.1:*")
            assert lab.wait_for("LISTENING", "async", timeout=2).value > 0
    finally:
        sock.close()
        actx.term()


def test_100_labs_leave_nothing_behind():
    fds, threads = open_fds(), live_threads()
    slowest = 0.0
    for _ in range(100):
        lab = zlab.Lab()
        topo = lab.pubsub(pub_binds=False)
        topo.pub.send(b"x")
        topo.subs[0].close()  # the PUB is left retrying
        lab.wait_for("DISCONNECTED", "pub", timeout=5)
        start = time.monotonic()
        lab.close()
        slowest = max(slowest, time.monotonic() - start)
    assert slowest < 1.0, f"slowest close took {slowest:.2f} s"
    deadline = time.monotonic() + 3
    while (open_fds() > fds or live_threads() > threads) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds() <= fds, "file descriptors leaked"
    assert live_threads() <= threads, "threads leaked"
