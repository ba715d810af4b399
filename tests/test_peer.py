"""Child-process peers: real crashes, hangs and restarts, seen from the Lab's side.

Every event here comes from a real libzmq socket in a real child process over
127.0.0.1. Timing bounds are physics plus slack for a loaded 2-core machine.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import zlab
from zlab.peer import Peer

from conftest import children_of, live_threads, open_fds


def _last_fault(lab: zlab.Lab, text: str) -> zlab.Event:
    faults = [ev for ev in lab.events(event="FAULT") if ev.detail == text]
    assert faults, f"no FAULT marker {text!r}"
    return faults[-1]


def _state(pid: int) -> str:
    """A process's state letter (R, S, T, Z...), or '' once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def _zlab_peers_started_by(parent: int) -> list[int]:
    """Running (non-zombie) ``python -m zlab._peer_child --parent PARENT`` processes."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if b"zlab._peer_child" in argv and b"--parent" in argv and argv[argv.index(b"--parent") + 1] == str(parent).encode():
            if _state(int(entry)) not in ("", "Z"):
                found.append(int(entry))
    return found


def _connected(lab: zlab.Lab, *names: str, timeout: float = 5.0) -> None:
    for name in names:
        lab.wait_for("HANDSHAKE_SUCCEEDED", name, timeout=timeout)


# -- crash ---------------------------------------------------------------------------------------
def test_killed_sub_peer_makes_the_connecting_pub_disconnect_then_retry_forever(lab):
    sub = lab.peer("SUB", "sub0", bind="tcp")
    pub = lab.socket("PUB", "pub", connect=sub.endpoint)
    _connected(lab, "pub", "sub0")
    connected = lab.wait_for("CONNECTED", "pub")

    sub.kill()
    fault = _last_fault(lab, "kill sub0")
    disconnected = lab.wait_for("DISCONNECTED", "pub", since=fault.t, timeout=2.0)
    assert disconnected.t - fault.t < 0.5
    assert disconnected.value == connected.value  # the fd of that one TCP connection
    fifth = lab.wait_for("CLOSED", "pub", since=disconnected.t, count=5, timeout=4.0)
    assert fifth.t - disconnected.t <= 1.5, "fewer than 5 retry cycles in 1.5 s at default reconnect_ivl"
    seen = [ev.event for ev in lab.events("pub", since=disconnected.t) if ev.t <= fifth.t]
    cycle = ["CONNECT_DELAYED", "CLOSED", "CONNECT_RETRIED"]
    assert seen == ["DISCONNECTED", "CONNECT_RETRIED"] + cycle * 4 + cycle[:2]
    assert not pub.closed and not sub.alive


def test_kill_is_marked_reaped_and_read_to_end_of_file_at_once(lab):
    sub = lab.peer("SUB", "sub0", bind="tcp")
    lab.peer("PUB", "sibling", connect=sub.endpoint)  # must not hold sub0's pipes open
    pid = sub.pid
    started = time.monotonic()
    sub.kill()
    assert time.monotonic() - started < 1.0
    assert "zlab-peer-sub0" not in [t.name for t in threading.enumerate()]  # its pipe reached end-of-file
    fault = _last_fault(lab, "kill sub0")
    assert fault.socket == "sub0" and fault.endpoint == sub.endpoint
    assert _state(pid) == ""  # reaped: no zombie left
    with pytest.raises(RuntimeError, match="not running"):
        sub.kill()


# -- hang ------------------------------------------------------------------------------------------
def test_paused_peer_is_detected_by_heartbeats_and_catches_up_after_resume(lab):
    sub = lab.peer("SUB", "sub0", bind="tcp")
    lab.socket("PUB", "pub", connect=sub.endpoint, heartbeat_ivl=100, heartbeat_timeout=300)
    _connected(lab, "pub", "sub0")

    sub.pause()
    paused = _last_fault(lab, "pause sub0")
    assert _state(sub.pid) in ("T", "t")
    disconnected = lab.wait_for("DISCONNECTED", "pub", since=paused.t, timeout=3.0)
    assert 0.25 <= disconnected.t - paused.t <= 1.5

    sub.resume()
    resumed = _last_fault(lab, "resume sub0")
    # The peer learns that its connection was dropped only once it runs again.
    late = lab.wait_for("DISCONNECTED", "sub0", since=paused.t, timeout=3.0)
    assert late.t >= resumed.t
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", since=resumed.t, timeout=3.0)


def test_paused_peer_without_heartbeats_is_never_noticed(lab):
    sub = lab.peer("SUB", "sub0", bind="tcp")
    pub = lab.socket("PUB", "pub", connect=sub.endpoint)
    _connected(lab, "pub", "sub0")

    sub.pause()
    paused = _last_fault(lab, "pause sub0")
    with pytest.raises(RuntimeError, match="already paused"):
        sub.pause()
    with pytest.raises(TimeoutError):
        lab.wait_for("DISCONNECTED", "pub", since=paused.t, timeout=3.0)
    with pytest.raises(RuntimeError, match="paused"):
        sub.stats()

    sub.resume()  # the connection survived the hang: messages still flow on it
    deadline = time.monotonic() + 5.0
    received = 0
    while not received and time.monotonic() < deadline:
        pub.send(b"after-hang|1")
        received = sub.stats()["received"]
        time.sleep(0.02)
    assert received >= 1
    assert len(lab.events("pub", "CONNECTED")) == 1  # one connection, never replaced


# -- restart ---------------------------------------------------------------------------------------
def test_restarted_peer_is_reconnected_by_the_socket_that_was_never_closed(lab):
    sub = lab.peer("SUB", "sub0", bind="tcp")
    endpoint, first_pid = sub.endpoint, sub.pid
    pub = lab.socket("PUB", "pub", connect=endpoint)
    _connected(lab, "pub")
    sub.kill()
    lab.wait_for("DISCONNECTED", "pub", timeout=2.0)

    sub.restart()
    assert sub.endpoint == endpoint and sub.pid != first_pid and sub.alive
    assert _last_fault(lab, "restart sub0")
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", count=2, timeout=5.0)

    deadline = time.monotonic() + 5.0
    seq, stats = 0, {"received": 0}
    while not stats["received"] and time.monotonic() < deadline:
        seq += 1
        pub.send(b"again|%d" % seq)
        stats = sub.stats()
        time.sleep(0.02)
    assert stats["received"] >= 1 and 1 <= stats["last_seq"] <= seq
    assert not pub.closed


def test_restart_of_a_live_peer_replaces_its_process(lab):
    peer = lab.peer("PULL", "pull0", bind="tcp")
    first = peer.pid
    peer.restart()
    assert peer.pid != first and peer.alive and _state(first) == ""
    assert peer.restarts == 1


# -- traffic -----------------------------------------------------------------------------------------
def test_publishing_peer_numbers_its_messages_and_counts_them(lab):
    pub = lab.peer("PUB", "pub0", bind="tcp")
    sub = lab.socket("SUB", "sub", connect=pub.endpoint, subscribe=b"data")
    _connected(lab, "sub", "pub0")
    # The subscription reaches the PUB shortly after the handshake (slow joiner): probe until it did.
    deadline = time.monotonic() + 5.0
    while not sub.poll(0) and time.monotonic() < deadline:
        pub.publish(1, payload=b"data-probe", wait=True)
        sub.poll(20)
    probes = []
    while sub.poll(0):
        probes.append(sub.recv())
    assert probes, "the subscription never reached the publishing peer"

    stats = pub.publish(20, interval_ms=5, payload=b"data", wait=True)
    assert stats["publishing"] == 0 and stats["dropped"] == 0
    got = []
    while len(got) < 20 and sub.poll(2000):
        got.append(sub.recv())
    seqs = [int(m.rsplit(b"|", 1)[1]) for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + 20))
    assert stats["sent"] == seqs[-1]  # every message numbered, none refused


def test_rep_peer_echoes_requests_and_writes_nothing_to_our_stdout(lab, capfd):
    rep = lab.peer("REP", "rep0", bind="tcp")
    req = lab.socket("REQ", "req", connect=rep.endpoint)
    req.send(b"ping|7")
    assert req.poll(5000)
    assert req.recv() == b"ping|7"
    stats = rep.stats()
    assert stats["received"] == 1 and stats["sent"] == 1 and stats["last_seq"] == 7
    rep.close()
    assert rep.last_stats is not None and rep.output == []
    assert capfd.readouterr() == ("", "")  # the child's stdout/stderr are a pipe, not ours
    with pytest.raises(RuntimeError, match="closed"):
        rep.resume()


def test_peer_events_are_on_the_lab_clock(lab):
    router = lab.socket("ROUTER", "router", bind="tcp")
    before = lab.now()
    dealer = lab.peer("DEALER", "dealer0", connect=lab.endpoint(router))
    after = lab.now()
    assert dealer.endpoint == lab.endpoint(router)
    mine = lab.wait_for("HANDSHAKE_SUCCEEDED", "router")
    theirs = lab.wait_for("HANDSHAKE_SUCCEEDED", "dealer0")
    assert abs(mine.t - theirs.t) < 0.25  # two ends of one handshake, one clock
    first = lab.events("dealer0")[0]
    assert before <= first.t <= after + 0.25


def test_a_peer_that_exits_by_itself_is_noted(lab):
    peer = lab.peer("PULL", "pull0", bind="tcp")
    os.kill(peer.pid, signal.SIGTERM)
    note = lab.wait_for("NOTE", "pull0", timeout=5.0)
    assert "exited by itself" in note.detail
    assert not peer.alive
    with pytest.raises(RuntimeError, match="not running"):
        peer.stats()


# -- mistakes ------------------------------------------------------------------------------------------
def test_peer_arguments_are_checked_with_clear_errors(lab):
    with pytest.raises(ValueError, match="exactly one of"):
        lab.peer("SUB")
    with pytest.raises(ValueError, match="inproc"):
        lab.peer("SUB", bind="inproc")
    with pytest.raises(ValueError, match="heartbeat_ivl"):
        lab.peer("SUB", bind="tcp", heartbeat_ivl=-5)
    with pytest.raises(ValueError, match="subscribe"):
        lab.peer("PUB", bind="tcp", subscribe=b"x")
    with pytest.raises(ValueError, match="unknown socket type"):
        lab.peer("NOPE", bind="tcp")


def test_peer_bind_on_a_port_in_use_raises_valueerror(lab):
    taken = lab.socket("PULL", "taken", bind="tcp")
    with pytest.raises(ValueError, match="cannot bind .*[Aa]ddress already in use"):
        lab.peer("PULL", "late", bind=lab.endpoint(taken))
    lab.peer("PULL", "late", bind="tcp").close()  # the name is free again


def test_publish_is_bounded_and_only_for_sending_kinds(lab):
    pub = lab.peer("PUB", "pub0", bind="tcp")
    with pytest.raises(ValueError, match="count"):
        pub.publish(0)
    with pytest.raises(ValueError, match="interval_ms"):
        pub.publish(1000, interval_ms=10_000)
    sub = lab.peer("SUB", "sub0", connect=pub.endpoint)
    with pytest.raises(ValueError, match="cannot publish"):
        sub.publish(1)
    with pytest.raises(ValueError, match="already used"):
        lab.peer("SUB", "sub0", connect=pub.endpoint)


# -- nothing outlives the Lab ------------------------------------------------------------------------------
def test_lab_close_resumes_paused_peers_and_reaps_every_child():
    with zlab.Lab() as lab:
        a = lab.peer("SUB", "a", bind="tcp")
        b = lab.peer("PUB", "b", connect=a.endpoint)
        b.pause()
        pids = [a.pid, b.pid]
        started = time.monotonic()
    took = time.monotonic() - started
    assert [_state(pid) for pid in pids] == ["", ""]
    assert took < 1.5
    assert a.last_stats is not None and b.last_stats is not None  # both exited gracefully
    assert not a.alive and not b.alive


def test_peers_never_outlive_a_lab_left_by_an_exception_or_forgotten():
    with pytest.raises(KeyError):
        with zlab.Lab() as lab:
            raised = lab.peer("PULL", "p", bind="tcp").pid
            raise KeyError("boom")
    assert _state(raised) == ""

    def forgotten() -> int:
        return zlab.Lab().peer("PULL", "p", bind="tcp").pid  # nobody closes this Lab

    pid = forgotten()
    gc.collect()  # the Lab's finalizer closes its peers
    deadline = time.monotonic() + 2.0
    while _state(pid) != "" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _state(pid) == ""


def test_peers_die_within_2_s_when_their_parent_is_sigkilled(tmp_path):
    script = textwrap.dedent(
        """
        import time, zlab
        lab = zlab.Lab()
        a = lab.peer("SUB", "a", bind="tcp")
        b = lab.peer("PUB", "b", connect=a.endpoint)
        c = lab.peer("PULL", "c", bind="tcp")
        c.pause()  # a stopped child cannot notice anything itself: PDEATHSIG must do it
        print(a.pid, b.pid, c.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              cwd=tmp_path)
    try:
        assert parent.stdout is not None
        ready = threading.Event()
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: (line.append(parent.stdout.readline()), ready.set()), daemon=True)
        reader.start()
        assert ready.wait(30), "the parent never started its peers"
        pids = [int(x) for x in line[0].split()]
        assert len(pids) == 3 and _zlab_peers_started_by(parent.pid) != []
    finally:
        parent.kill()
        parent.wait(10)
        parent.stdout.close()
    killed = time.monotonic()
    while time.monotonic() - killed < 3.0:
        if not _zlab_peers_started_by(parent.pid) and all(_state(p) in ("", "Z") for p in pids):
            break
        time.sleep(0.02)
    gone_after = time.monotonic() - killed
    assert _zlab_peers_started_by(parent.pid) == []
    assert all(_state(p) in ("", "Z") for p in pids)  # a zombie is dead; PID 1 reaps orphans
    assert gone_after < 2.0


def test_twenty_labs_with_peers_and_a_proxy_leave_nothing_behind():
    def one_lab() -> None:
        with zlab.Lab() as lab:
            a = lab.peer("SUB", "a", bind="tcp")
            proxy = lab.proxy(a)
            b = lab.peer("PUB", "b", connect=proxy)
            lab.wait_for("HANDSHAKE_SUCCEEDED", "b", timeout=10.0)
            assert isinstance(b, Peer) and proxy.connections == 1

    one_lab()  # warm-up: lazily created interpreter state is not a leak
    fds, threads, children = open_fds(), live_threads(), children_of(os.getpid())
    for _ in range(20):
        one_lab()
    assert set(children_of(os.getpid())) <= set(children), "a child process (or zombie) was left behind"
    # <=, not ==: a thread of an earlier test may finish meanwhile; a leak only ever adds.
    assert live_threads() <= threads, [t.name for t in threading.enumerate()]
    assert open_fds() <= fds
