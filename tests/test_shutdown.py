"""Safe shutdown and context isolation: the hangs happen in child processes, with timeouts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import zmq
from conftest import children_of

from zlab.shutdown import isolation_demo, safe_shutdown, term_hang_demo


def test_plain_term_hangs_on_a_message_queued_for_a_dead_peer_with_linger_minus_one():
    demo = term_hang_demo("none", hang_after_s=1.0)
    assert demo.hung, demo.stderr  # still inside ctx.term() 1 s after calling it: killed


def test_safe_shutdown_returns_within_its_deadline_where_plain_term_hangs():
    demo = term_hang_demo("safe_shutdown", linger_ms=200, deadline_s=1.0)
    assert not demo.hung, demo.stderr
    report = demo.report
    assert report["completed"] is True
    assert demo.elapsed_s < 1.0
    assert 0.18 <= report["term_s"] <= 0.9  # about the bounded LINGER of 200 ms
    assert report["outbound_discarded"] is True
    assert report["sockets"] == [{"name": "push", "type": "PUSH", "linger_was": -1, "linger_used": 200,
                                  "unread": 0, "error": ""}]


def test_safe_shutdown_still_returns_at_its_deadline_when_term_cannot_finish():
    demo = term_hang_demo("closed-first", deadline_s=0.5)  # closed earlier with LINGER -1: nothing to bound
    assert not demo.hung, demo.stderr
    assert 0.45 <= demo.elapsed_s < 1.5
    assert demo.report["completed"] is False and demo.report["term_s"] is None
    assert "still blocked at the 0.5 s deadline" in demo.report["notes"][0]


def test_safe_shutdown_stops_monitors_first_and_counts_unread_messages():
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://unread")  # inproc: a sent message is in the receiver's pipe when send() returns
    reader = pull.get_monitor_socket()
    push = ctx.socket(zmq.PUSH)
    push.connect("inproc://unread")
    for i in range(3):
        push.send(b"unread %d" % i)
    report = safe_shutdown(ctx, {"pull": pull, "push": push}, linger_ms=1000, deadline_s=3.0)
    assert report.completed and report.term_s < 0.9  # nothing was waiting for LINGER
    assert report.outbound_discarded is False
    assert report.monitors_stopped == 1 and report.monitor_events_drained >= 1  # MONITOR_STOPPED at least
    assert reader.closed and pull.closed and push.closed
    assert {s.name: s.unread for s in report.sockets} == {"pull": 3, "push": 0}
    assert report.unread == 3 and "context terminated" in str(report)


def test_safe_shutdown_finds_the_contexts_sockets_by_itself():
    ctx = zmq.Context()
    socks = [ctx.socket(zmq.DEALER) for _ in range(2)]  # LINGER -1, nothing queued
    report = safe_shutdown(ctx, deadline_s=2.0)
    assert report.completed and all(s.closed for s in socks)
    assert sorted(s.linger_used for s in report.sockets) == [200, 200]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"linger_ms": -1}, "linger_ms must be a whole number of ms >= 0"),
    ({"deadline_s": 0}, "deadline_s is in seconds and must be > 0"),
])
def test_bad_shutdown_arguments_say_what_was_expected(kwargs, message):
    ctx = zmq.Context()
    try:
        with pytest.raises(ValueError, match=message):
            safe_shutdown(ctx, [], **kwargs)
    finally:
        ctx.term()


def test_a_critical_context_keeps_working_while_an_unread_monitor_freezes_another():
    demo = isolation_demo("monitor")
    assert demo.victim_frozen, demo.victim_detail + demo.stderr
    assert demo.critical_round_trips == 20
    assert 0 < demo.critical_median_ms < 200


def test_a_critical_context_keeps_working_while_another_context_hangs_in_term():
    demo = isolation_demo("linger")
    assert demo.victim_frozen, demo.victim_detail + demo.stderr
    assert demo.critical_round_trips == 20


def test_demo_arguments_are_checked():
    with pytest.raises(ValueError, match="cure must be 'none', 'safe_shutdown' or 'closed-first'"):
        term_hang_demo("prayer")
    with pytest.raises(ValueError, match="freeze must be 'monitor' or 'linger'"):
        isolation_demo("ice")


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a reaped or zombie process can hold nothing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _zmq_threads(pid: int) -> int:
    try:
        return sum(1 for tid in os.listdir(f"/proc/{pid}/task")
                   if open(f"/proc/{pid}/task/{tid}/comm").read().startswith("ZMQbg"))
    except OSError:
        return 0


def test_demo_child_stuck_in_term_dies_with_its_parent():
    # A parent process runs term_hang_demo("none") (its child hangs in ctx.term() for 60 s), then is SIGKILLed.
    code = "from zlab.shutdown import term_hang_demo; term_hang_demo('none', hang_after_s=60, timeout_s=60)"
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    child = None
    try:
        deadline = time.monotonic() + 20
        while child is None and time.monotonic() < deadline:
            found = [pid for pid in children_of(parent.pid) if _zmq_threads(pid)]  # it has a context now
            child = found[0] if found else None
            time.sleep(0.05)
        assert child is not None, "the demo's child never started a ZeroMQ context"
        time.sleep(1.0)  # it reaches ctx.term() within a few ms of its first CONNECT_RETRIED
        assert _alive(child), "the child should still be hanging in term() (hang_after_s=60)"
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        gone_by = time.monotonic() + 3.0
        while _alive(child) and time.monotonic() < gone_by:
            time.sleep(0.05)
        assert not _alive(child), "the demo's child outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
