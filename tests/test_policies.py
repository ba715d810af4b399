"""RetryLimiter, the serialised Lab socket it relies on, and recommended_options -- with real sockets."""

from __future__ import annotations

import socket as pysocket
import threading
import time

import pytest
import zmq

from zlab.options import OPTIONS, validate_option
from zlab.policies import (
    ROLES,
    GiveUp,
    RetryLimiter,
    SerializedSocket,
    disconnect_endpoint,
    limiter_for,
    recommended_options,
)


@pytest.fixture
def refused_endpoint():
    """A loopback port that is bound but never listening: every connect is refused at once."""
    holder = pysocket.socket()
    holder.bind(("127.0.0.1", 0))
    yield f"tcp://127.0.0.1:{holder.getsockname()[1]}"
    holder.close()


def pub_losing_its_sub(lab, **options):
    """A Lab SUB bound, a Lab PUB connecting to it (handshaken); returns (pub, sub, endpoint)."""
    sub = lab.socket("SUB", "sub", bind="tcp", subscribe=b"")
    endpoint = lab.endpoint(sub)
    pub = lab.socket("PUB", "pub", connect=endpoint, **options)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", timeout=5)
    return pub, sub, endpoint


# -- the acceptance test ------------------------------------------------------------------------
def test_limiter_of_five_stops_the_retry_cycle_of_a_pub_whose_sub_died(lab):
    pub, sub, endpoint = pub_losing_its_sub(lab)
    calls: list[GiveUp] = []
    limiter = lab.limit_retries("pub", max_attempts=5, on_give_up=calls.append)
    died = lab.now()
    sub.close()
    policy = lab.wait_for("POLICY", "pub", since=died, timeout=5)
    assert policy.endpoint == endpoint and policy.socket == "pub"
    assert policy.detail.startswith(f"gave up on {endpoint} after 5 attempts")
    assert policy.detail.endswith("disconnected")
    assert len(lab.events("pub", "CONNECT_RETRIED", since=died)) == 5
    with pytest.raises(TimeoutError):  # the cycle has stopped: not one more attempt in 2 s
        lab.wait_for("CONNECT_RETRIED", "pub", since=policy.t, timeout=2.0)
    assert [(c.endpoint, c.attempts, c.reason, c.action) for c in calls] == [(endpoint, 5, "attempts", "disconnected")]
    assert limiter.errors == [] and limiter.gave_up == calls
    states = {r.endpoint: r.state for r in lab.connections(socket="pub")}
    assert states == {endpoint: "given-up"}
    # The socket itself is fine: it connects elsewhere and delivers.
    sub2 = lab.socket("SUB", "sub2", bind="tcp", subscribe=b"")
    lab.connect(pub, lab.endpoint(sub2))
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", since=policy.t, timeout=5)
    from zlab.traffic import deliver

    assert deliver(pub, sub2, b"still alive")[0] == b"still alive"


def test_a_successful_handshake_resets_the_count(lab):
    pub, sub, endpoint = pub_losing_its_sub(lab)
    limiter = lab.limit_retries("pub", max_attempts=4)
    first = lab.now()
    sub.close()
    lab.wait_for("CONNECT_RETRIED", "pub", since=first, count=2, timeout=5)
    back = lab.socket("SUB", "sub_back", subscribe=b"")
    lab.bind(back, endpoint)  # the SUB returns on the same port before the limit
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", since=first, timeout=5)
    assert [r.attempts for r in limiter.states()] == [0]
    second = lab.now()
    back.close()
    policy = lab.wait_for("POLICY", "pub", since=second, timeout=5)
    assert "after 4 attempts" in policy.detail
    assert len(lab.events("pub", "CONNECT_RETRIED", since=second)) == 4
    assert len(lab.events("pub", "POLICY")) == 1


def test_give_up_after_seconds_without_handshake(lab, refused_endpoint):
    lab.socket("DEALER", "dealer")
    limiter = lab.limit_retries("dealer", max_attempts=None, give_up_after_s=0.4)
    lab.connect(lab.sockets["dealer"], refused_endpoint)
    first = lab.wait_for("CONNECT_DELAYED", "dealer", timeout=5)
    policy = lab.wait_for("POLICY", "dealer", timeout=5)
    assert "no HANDSHAKE_SUCCEEDED for 0.4 s" in policy.detail
    assert 0.35 <= policy.t - first.t <= 1.5  # the limiter checks at least every 0.1 s
    assert limiter.gave_up[0].reason == "deadline"


def test_limiter_disconnects_while_the_owning_thread_is_blocked_in_recv(lab):
    push = lab.socket("PUSH", "push", bind="tcp")
    pull = lab.socket("PULL", "pull", connect=lab.endpoint(push))
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pull", timeout=5)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pull.recv()), daemon=True)
    reader.start()  # the socket's owner now waits in recv() with no timeout
    lab.limit_retries("pull", max_attempts=3)
    died = lab.now()
    push.close()
    policy = lab.wait_for("POLICY", "pull", since=died, timeout=5)
    with pytest.raises(TimeoutError):
        lab.wait_for("CONNECT_RETRIED", "pull", since=policy.t + 0.05, timeout=0.5)
    assert reader.is_alive() and not received  # still blocked, never raced
    push2 = lab.socket("PUSH", "push2", bind="tcp")
    lab.connect(pull, lab.endpoint(push2))
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pull", since=policy.t, timeout=5)
    push2.send(b"wake up")
    reader.join(5)
    assert received == [b"wake up"]


def test_user_socket_limiter_only_requests_until_apply_from_the_owning_thread(lab, refused_endpoint):
    own = lab.context.socket(zmq.DEALER)  # the user's own socket: no lock, only its thread may touch it
    own.linger = 0
    try:
        lab.watch(own, "own")
        limiter = lab.limit_retries("own", max_attempts=2)
        assert not limiter.serialized
        own.connect(refused_endpoint)
        policy = lab.wait_for("POLICY", "own", timeout=5)
        assert "call limiter.apply()" in policy.detail
        assert limiter.pending == [f"disconnect {refused_endpoint}"]
        lab.wait_for("CONNECT_RETRIED", "own", since=policy.t, timeout=5)  # nothing touched it: it loops on
        assert limiter.apply() == [f"disconnect {refused_endpoint}"]
        applied = lab.now()
        with pytest.raises(TimeoutError):
            lab.wait_for("CONNECT_RETRIED", "own", since=applied + 0.05, timeout=0.5)
        assert limiter.pending == []
    finally:
        lab.unwatch(own)
        own.close()


def test_pause_disconnects_retrying_endpoints_and_resume_reconnects_them(lab, refused_endpoint):
    pub, sub, endpoint = pub_losing_its_sub(lab)
    lab.connect(pub, refused_endpoint)
    lab.wait_for("CONNECT_RETRIED", "pub", timeout=5)
    limiter = lab.limit_retries("pub", max_attempts=None)
    assert limiter.pause() == [refused_endpoint]
    paused = lab.events("pub", "POLICY")[-1]
    assert paused.detail.startswith(f"paused retrying on {refused_endpoint}")
    with pytest.raises(TimeoutError):
        lab.wait_for("CONNECT_RETRIED", "pub", since=paused.t + 0.05, timeout=0.5)
    states = {r.endpoint: r.state for r in lab.connections(socket="pub")}
    assert states == {endpoint: "handshaken", refused_endpoint: "paused"}
    assert limiter.resume() == [refused_endpoint]
    lab.wait_for("CONNECT_RETRIED", "pub", since=paused.t, timeout=5)
    assert lab.events("pub", "POLICY")[-1].detail == f"resumed retrying on {refused_endpoint}"
    assert limiter.paused is False


def test_events_logged_before_the_limiter_started_count(lab, refused_endpoint):
    lab.socket("DEALER", "dealer", connect=refused_endpoint)
    lab.wait_for("CONNECT_RETRIED", "dealer", count=3, timeout=5)
    limiter = lab.limit_retries("dealer", max_attempts=3)
    lab.wait_for("POLICY", "dealer", timeout=2)  # at once: the three were replayed from the log
    assert limiter.gave_up[0].attempts >= 3


def test_one_limiter_per_socket_and_close_releases_it(lab):
    lab.socket("DEALER", "dealer")
    first = lab.limit_retries("dealer")
    assert limiter_for(lab, "dealer") is first
    with pytest.raises(ValueError, match="a RetryLimiter already watches 'dealer'"):
        RetryLimiter(lab, "dealer")
    threads = threading.active_count()
    first.close()
    assert limiter_for(lab, "dealer") is None
    assert threading.active_count() == threads - 1
    second = RetryLimiter(lab, "dealer", 2)
    assert "2 attempts" in repr(second)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"socket_name": "nope"}, "no open socket named 'nope' in this Lab; open sockets: dealer"),
    ({"max_attempts": 0}, "max_attempts must be a whole number >= 1"),
    ({"give_up_after_s": -1}, "give_up_after_s is in seconds and must be > 0"),
    ({"on_give_up": "print"}, "on_give_up must be callable"),
])
def test_bad_limiter_arguments_say_what_was_expected(lab, kwargs, message):
    lab.socket("DEALER", "dealer")
    args = {"socket_name": "dealer", **kwargs}
    with pytest.raises(ValueError, match=message):
        RetryLimiter(lab, **args)


def test_libzmq_reconnect_stop_gives_up_on_refusal_without_a_count_or_a_word(lab, refused_endpoint):
    """The comparison the limiter is measured against: ZMQ_RECONNECT_STOP (draft, honoured by 4.3.5)."""
    lab.socket("DEALER", "dealer", connect=refused_endpoint, reconnect_stop=1)  # CONN_REFUSED
    first = lab.wait_for("CONNECT_DELAYED", "dealer", timeout=5)
    with pytest.raises(TimeoutError):
        lab.wait_for("CONNECT_RETRIED", "dealer", timeout=0.5)
    names = {ev.event for ev in lab.events("dealer", since=first.t)}
    assert "CONNECT_RETRIED" not in names and "POLICY" not in names  # it stopped, and nothing says so


# -- the serialised socket ----------------------------------------------------------------------
def test_lab_sockets_are_serialized_and_honour_rcvtimeo(lab):
    pull = lab.socket("PULL", "pull", bind="tcp", rcvtimeo=150)
    assert isinstance(pull, SerializedSocket)
    start = time.monotonic()
    with pytest.raises(zmq.Again):
        pull.recv()
    assert 0.14 <= time.monotonic() - start < 1.0
    assert pull.poll(50) == 0


def test_a_policy_waits_for_a_multipart_message_boundary(lab):
    pull = lab.socket("PULL", "pull", bind="tcp")
    push = lab.socket("PUSH", "push", connect=lab.endpoint(pull))
    push.send_multipart([b"one", b"two"])
    assert pull.recv() == b"one"  # mid-message: taking a pipe away now would trip libzmq's fq assert
    with pytest.raises(TimeoutError, match="middle of a multipart message"):
        with pull.exclusive(timeout=0.1):
            pass
    assert pull.recv() == b"two"
    with pull.exclusive(timeout=0.1):
        assert pull.zlab_lock._is_owned()


def test_disconnect_endpoint_refuses_a_plain_socket_and_reports_unknown_endpoints(lab):
    plain = lab.context.socket(zmq.DEALER)
    try:
        with pytest.raises(TypeError, match="only a Lab-made socket"):
            disconnect_endpoint(plain, "tcp://127.0.0.1:1")
    finally:
        plain.close(0)
    dealer = lab.socket("DEALER", "dealer")
    assert disconnect_endpoint(dealer, "tcp://127.0.0.1:1") == "was not connected"
    dealer.close()
    assert disconnect_endpoint(dealer, "tcp://127.0.0.1:1") == "socket closed"


# -- recommended options ------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_recommended_options_are_valid_and_accepted_by_a_real_socket(lab, role):
    rec = recommended_options(role)
    kind = {"publisher": "PUB", "subscriber": "SUB", "client": "DEALER", "server": "ROUTER"}[role]
    sock = lab.socket(kind, f"{role}0", **rec.options)
    for item in rec:
        assert validate_option(item.option, item.value) == item.value
        assert item.unit == OPTIONS[item.option].unit
        assert item.reason and "\n" not in item.reason
        assert sock.getsockopt(getattr(zmq, item.option.upper())) == item.value
    assert {"heartbeat_ivl", "heartbeat_timeout", "linger"} <= set(rec.options)
    assert role in str(rec)


def test_connecting_roles_get_backoff_timeouts_and_leave_reconnect_stop_off():
    # reconnect_stop=2 (HANDSHAKE_FAILED) made a subscriber stop for good after a hang or a
    # partition longer than handshake_ivl (lesson 07's drills): the kit recommends 0 and says why.
    for role in ("subscriber", "client"):
        rec = recommended_options(role)
        options = rec.options
        assert options["reconnect_ivl_max"] > options["reconnect_ivl"] > 0
        assert options["connect_timeout"] > 0 and options["reconnect_stop"] == 0
        assert "RetryLimiter" in rec.reasons["reconnect_stop"]


def test_unknown_role_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown role 'broker'; valid roles: publisher, subscriber, client, server"):
        recommended_options("broker")


def test_lab_close_stops_the_limiter_thread_before_closing_its_sockets():
    import zlab

    before = {t.name for t in threading.enumerate()}
    lab = zlab.Lab()
    lab.socket("DEALER", "dealer")
    limiter = lab.limit_retries("dealer")
    assert "zlab-limiter-dealer" in {t.name for t in threading.enumerate()}
    lab.close()
    assert not limiter._thread.is_alive()
    assert {t.name for t in threading.enumerate()} <= before
    assert limiter_for(lab, "dealer") is None


def test_a_forgotten_lab_with_a_limiter_is_still_collected_and_its_thread_stopped():
    import gc
    import weakref

    import zlab

    lab = zlab.Lab()
    lab.socket("DEALER", "dealer")
    thread = lab.limit_retries("dealer")._thread
    ref = weakref.ref(lab)
    del lab
    gc.collect()
    assert ref() is None  # the limiter holds its Lab weakly: the Lab's finalizer can run
    thread.join(3)
    assert not thread.is_alive()
