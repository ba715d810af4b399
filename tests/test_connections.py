"""The per-endpoint connection state machine: bookkeeping with hand-built events, behaviour with real sockets."""

from __future__ import annotations

import time

import pytest

from zlab.connections import POLICY_PREFIXES, STATES, ConnectionTracker, connection_table, format_table
from zlab.events import Event

EP1 = "tcp://127.0.0.1:5001"
EP2 = "tcp://127.0.0.1:5002"
BOUND = "tcp://127.0.0.1:6000"


def ev(t: float, event: str, endpoint: str = EP1, value: int = 0, socket: str = "sub", detail: str = "") -> Event:
    """A hand-built record for the pure bookkeeping tests (never shown as a real observation)."""
    return Event(t, socket, event, value, endpoint, detail)


def row_of(rows, endpoint, socket="sub"):
    matches = [r for r in rows if r.endpoint == endpoint and r.socket == socket]
    assert len(matches) == 1, rows
    return matches[0]


# -- pure bookkeeping (fake clock) -----------------------------------------------------------
def test_connect_walks_connecting_connected_handshaken_and_only_handshaken_is_alive():
    tracker = ConnectionTracker()
    tracker.feed(ev(0.0, "CONNECT_DELAYED", value=115))
    assert tracker.rows(0.01)[0].state == "connecting"
    tracker.feed(ev(0.010, "CONNECTED", value=12))
    row = tracker.rows(0.011)[0]
    assert (row.state, row.fd, row.alive) == ("connected", 12, False)
    tracker.feed(ev(0.012, "HANDSHAKE_SUCCEEDED"))
    row = tracker.rows(0.5)[0]
    assert (row.state, row.alive, row.waiting_since) == ("handshaken", True, None)
    assert row.since == pytest.approx(0.012)
    assert row.time_in_state == pytest.approx(0.488)


def test_connected_without_handshake_becomes_silent_suspected_after_the_threshold():
    tracker = ConnectionTracker(silent_after_s=0.5)
    tracker.feed(ev(1.0, "CONNECT_DELAYED", value=115))
    tracker.feed(ev(1.0, "CONNECTED", value=12))
    assert tracker.rows(1.4)[0].state == "connected"
    row = tracker.rows(2.0)[0]
    assert row.state == "silent-suspected"
    assert row.since == pytest.approx(1.5)
    assert row.time_in["connected"] == pytest.approx(0.5)
    assert row.time_in["silent-suspected"] == pytest.approx(0.5)
    # A late handshake (the peer woke up) makes it alive again, and the silent time is kept.
    tracker.feed(ev(2.5, "HANDSHAKE_SUCCEEDED"))
    row = tracker.rows(3.0)[0]
    assert row.state == "handshaken"
    assert row.time_in["silent-suspected"] == pytest.approx(1.0)


def test_disconnected_moves_one_endpoint_to_retrying_never_the_whole_socket():
    tracker = ConnectionTracker()
    for ep in (EP1, EP2):
        tracker.extend([ev(0.0, "CONNECT_DELAYED", ep, 115), ev(0.001, "CONNECTED", ep, 10),
                        ev(0.002, "HANDSHAKE_SUCCEEDED", ep)])
    tracker.feed(ev(1.0, "DISCONNECTED", EP2, 11))
    rows = tracker.rows(1.1)
    assert row_of(rows, EP1).state == "handshaken"
    assert row_of(rows, EP2).state == "retrying"
    assert row_of(rows, EP2).waiting_since == pytest.approx(1.0)


def test_connect_retried_counts_attempts_and_a_handshake_resets_them():
    tracker = ConnectionTracker()
    tracker.extend([ev(0.0, "CONNECT_DELAYED", value=115), ev(0.0, "CLOSED", value=13),
                    ev(0.0, "CONNECT_RETRIED", value=100)])
    for i in range(1, 4):
        tracker.extend([ev(i * 0.1, "CONNECT_DELAYED", value=115), ev(i * 0.1, "CLOSED", value=13),
                        ev(i * 0.1, "CONNECT_RETRIED", value=100)])
    row = tracker.rows(0.35)[0]
    assert (row.state, row.attempts, row.waiting_since) == ("retrying", 4, 0.0)
    tracker.extend([ev(0.4, "CONNECT_DELAYED", value=115), ev(0.41, "CONNECTED", value=13)])
    assert tracker.rows(0.41)[0].attempts == 4  # CONNECTED is not success
    tracker.feed(ev(0.42, "HANDSHAKE_SUCCEEDED"))
    assert tracker.rows(0.5)[0].attempts == 0


def test_given_up_endpoint_ignores_late_retries_until_reconnected():
    tracker = ConnectionTracker()
    tracker.extend([ev(0.0, "CONNECT_DELAYED", value=115), ev(0.0, "CONNECT_RETRIED", value=100)])
    tracker.feed(ev(0.2, "POLICY", detail=f"gave up on {EP1} after 1 attempts: disconnected"))
    tracker.extend([ev(0.21, "CONNECT_DELAYED", value=115), ev(0.21, "CLOSED", value=9),
                    ev(0.21, "CONNECT_RETRIED", value=100)])  # already in flight at the disconnect
    row = tracker.rows(1.0)[0]
    assert (row.state, row.attempts) == ("given-up", 1)
    tracker.feed(ev(1.0, "POLICY", detail=f"reconnected {EP1} (operator)"))
    row = tracker.rows(1.0)[0]
    assert (row.state, row.attempts) == ("connecting", 0)


@pytest.mark.parametrize("prefix", sorted(POLICY_PREFIXES))
def test_each_policy_marker_prefix_puts_a_given_up_endpoint_in_its_state(prefix):
    tracker = ConnectionTracker()
    tracker.feed(ev(0.0, "CONNECT_RETRIED", value=100))
    tracker.feed(ev(0.1, "POLICY", detail=f"gave up on {EP1} after 1 attempts"))
    tracker.feed(ev(0.2, "POLICY", detail=f"{prefix}{EP1}"))
    assert tracker.rows(0.3)[0].state == POLICY_PREFIXES[prefix]
    assert POLICY_PREFIXES[prefix] in STATES


def test_a_reset_marker_zeroes_the_count_of_a_retrying_endpoint_which_keeps_retrying():
    tracker = ConnectionTracker()
    tracker.extend([ev(0.0, "CONNECT_RETRIED", value=100), ev(0.1, "CONNECT_RETRIED", value=100)])
    tracker.feed(ev(0.2, "POLICY", detail=f"reset retry count of {EP1}"))
    row = tracker.rows(0.3)[0]
    assert (row.state, row.attempts, row.waiting_since) == ("retrying", 0, 0.2)


def test_markers_of_other_kinds_or_without_endpoint_change_nothing():
    tracker = ConnectionTracker()
    tracker.feed(ev(0.0, "CONNECT_RETRIED", value=100))
    tracker.feed(ev(0.1, "FAULT", detail=f"gave up on {EP1}"))
    tracker.feed(ev(0.1, "POLICY", endpoint="", detail="gave up on everything"))
    assert tracker.rows(0.2)[0].state == "retrying"


def test_monitor_stopped_closes_every_row_of_that_socket_only():
    tracker = ConnectionTracker()
    tracker.extend([ev(0.0, "CONNECT_RETRIED", EP1), ev(0.0, "CONNECT_RETRIED", EP2),
                    ev(0.0, "CONNECT_RETRIED", EP1, socket="other")])
    tracker.feed(ev(1.0, "MONITOR_STOPPED", endpoint=""))
    rows = tracker.rows(1.0)
    assert [r.state for r in rows if r.socket == "sub"] == ["closed", "closed"]
    assert row_of(rows, EP1, "other").state == "retrying"


def test_bound_endpoint_is_one_listening_row_counting_peers_until_its_listener_closes():
    tracker = ConnectionTracker()
    tracker.extend([ev(0.0, "LISTENING", BOUND, 7, socket="pub"), ev(0.1, "ACCEPTED", BOUND, 8, socket="pub"),
                    ev(0.1, "ACCEPTED", BOUND, 9, socket="pub"), ev(0.1, "HANDSHAKE_SUCCEEDED", BOUND, socket="pub"),
                    ev(0.5, "DISCONNECTED", BOUND, 8, socket="pub")])
    row = tracker.rows(0.6)[0]
    assert (row.role, row.state, row.peers, row.fd) == ("bind", "listening", 1, 7)
    tracker.feed(ev(0.7, "CLOSED", BOUND, 9, socket="pub"))  # an accepted connection's fd, not the listener
    assert tracker.rows(0.7)[0].state == "listening"
    tracker.feed(ev(0.8, "CLOSED", BOUND, 7, socket="pub"))
    assert tracker.rows(0.8)[0].state == "closed"


def test_time_in_each_state_adds_up_to_the_time_since_the_first_event():
    events = [ev(0.0, "CONNECT_DELAYED", value=115), ev(0.2, "CONNECTED", value=5), ev(0.3, "HANDSHAKE_SUCCEEDED"),
              ev(1.0, "DISCONNECTED", value=5), ev(1.0, "CONNECT_RETRIED", value=100)]
    row = connection_table(events, 2.0)[0]
    assert sum(row.time_in.values()) == pytest.approx(2.0)
    assert row.time_in == pytest.approx({"connecting": 0.2, "connected": 0.1, "handshaken": 0.7, "retrying": 1.0})


def test_an_event_that_does_not_say_which_side_starts_no_row():
    assert connection_table([ev(0.0, "DISCONNECTED", value=5), ev(0.0, "HANDSHAKE_SUCCEEDED")], 1.0) == []


def test_silent_after_must_be_positive_seconds():
    with pytest.raises(ValueError, match="silent_after_s is in seconds and must be > 0; got 0"):
        ConnectionTracker(silent_after_s=0)


def test_format_table_shows_one_line_per_row_and_accepts_records():
    rows = connection_table([ev(0.0, "CONNECT_RETRIED", value=100)], 1.5)
    text = format_table(rows)
    assert EP1 in text and "retrying" in text and "1.50 s" in text
    assert format_table([r.to_record() for r in rows]) == text
    assert format_table([]) == "no connections seen yet"


# -- real sockets ---------------------------------------------------------------------------
def test_killing_one_of_three_peers_leaves_two_handshaken_and_one_retrying(lab):
    peers = [lab.peer("PUB", f"pub{i}", bind="tcp") for i in range(3)]
    endpoints = [p.endpoint for p in peers]
    sub = lab.socket("SUB", "sub", connect=endpoints, subscribe=b"")
    lab.wait_for("HANDSHAKE_SUCCEEDED", "sub", count=3, timeout=10)
    killed = lab.now()
    peers[1].kill()
    lab.wait_for("CONNECT_RETRIED", "sub", since=killed, timeout=5)
    rows = lab.connections(socket="sub")
    states = {r.endpoint: r.state for r in rows}
    assert states == {endpoints[0]: "handshaken", endpoints[1]: "retrying", endpoints[2]: "handshaken"}
    retrying = row_of(rows, endpoints[1])
    assert retrying.attempts >= 1 and retrying.time_in["handshaken"] > 0
    assert not sub.closed


def test_a_hung_peer_is_reconnected_but_never_handshaken_so_it_is_silent_suspected(lab):
    peer = lab.peer("PUB", "pub0", bind="tcp")
    lab.socket("SUB", "sub", connect=peer.endpoint, subscribe=b"", heartbeat_ivl=100, heartbeat_timeout=300)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "sub", timeout=10)
    paused = lab.now()
    peer.pause()  # SIGSTOP: its kernel still accepts, the process answers nothing
    lab.wait_for("DISCONNECTED", "sub", since=paused, timeout=5)  # only heartbeats see it
    connected = lab.wait_for("CONNECTED", "sub", since=paused, timeout=5)
    row = row_of(lab.connections(silent_after_s=30.0, socket="sub"), peer.endpoint)
    assert (row.state, row.alive) == ("connected", False)  # CONNECTED is not proof of life
    time.sleep(max(0.0, connected.t + 0.35 - lab.now()))  # the state is a function of time: let 0.3 s pass
    row = row_of(lab.connections(silent_after_s=0.3, socket="sub"), peer.endpoint)
    assert (row.state, row.alive) == ("silent-suspected", False)
    assert not lab.events("sub", "HANDSHAKE_SUCCEEDED", since=paused)
    peer.resume()
    lab.wait_for("HANDSHAKE_SUCCEEDED", "sub", since=paused, timeout=5)
    assert row_of(lab.connections(silent_after_s=0.3, socket="sub"), peer.endpoint).state == "handshaken"
