"""The admin endpoint: another process lists states and commands a running lab; garbage never stops it."""

from __future__ import annotations

import json
import os
import pathlib
import socket as pysocket
import subprocess
import sys
import threading

import pytest
import zmq

from zlab.admin import COMMANDS, AdminEndpoint, Operator, request
from zlab.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent


def zlab_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run ``python -m zlab ...`` in another process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "zlab", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture
def sub_on_two_pubs(lab):
    """A SUB connected to two bound PUBs, both handshaken; returns (sub, [endpoints])."""
    pubs = [lab.socket("PUB", f"pub{i}", bind="tcp") for i in range(2)]
    endpoints = [lab.endpoint(p) for p in pubs]
    sub = lab.socket("SUB", "sub", connect=endpoints, subscribe=b"")
    lab.wait_for("HANDSHAKE_SUCCEEDED", "sub", count=2, timeout=5)
    return sub, endpoints


def test_zlab_admin_from_another_process_lists_states_and_disconnects_an_endpoint(lab, sub_on_two_pubs):
    sub, endpoints = sub_on_two_pubs
    admin = lab.serve_admin()
    assert admin.endpoint.startswith("tcp://127.0.0.1:")

    listed = zlab_cli("admin", admin.endpoint, "status")
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if line.startswith("sub ")]
    assert len(lines) == 2 and all("handshaken" in line for line in lines)
    assert all(ep in listed.stdout for ep in endpoints)

    before = lab.now()
    dropped = zlab_cli("admin", admin.endpoint, "disconnect", endpoints[0])
    assert dropped.returncode == 0, dropped.stderr
    assert "disconnected" in dropped.stdout
    marker = lab.wait_for("POLICY", "sub", since=before, timeout=5)
    assert marker.detail == f"disconnected {endpoints[0]} (operator)" and marker.endpoint == endpoints[0]
    lab.wait_for("DISCONNECTED", "pub0", since=before, timeout=5)  # the TCP connection really went away
    states = {r.endpoint: r.state for r in lab.connections(socket="sub")}
    assert states == {endpoints[0]: "closed", endpoints[1]: "handshaken"}

    as_json = json.loads(zlab_cli("admin", admin.endpoint, "list", "--json").stdout)
    assert {r["endpoint"]: r["state"] for r in as_json["connections"] if r["socket"] == "sub"} == states
    assert not sub.closed


@pytest.mark.parametrize(("garbage", "error"), [
    (b"\xff\xfe not utf-8", "must be UTF-8 JSON"),
    (b"{not json", "malformed JSON"),
    (b'["a", "list"]', "a request is a JSON object"),
    (b'{"cmd": "explode"}', "unknown command 'explode'; commands: status, list"),
    (b'{"cmd": ["status"]}', "unknown command"),
    (b'{"cmd": "disconnect"}', "disconnect needs an endpoint"),
    (b'{"cmd": "disconnect", "endpoint": 5}', "endpoint must be a string"),
    (b'{"cmd": "disconnect", "endpoint": "tcp://127.0.0.1:1"}', "no open socket of this lab connects to"),
    (b'{"cmd": "disconnect", "endpoint": "tcp://127.0.0.1:1", "socket": "nope"}', "no open socket named 'nope'"),
    (b'{"cmd": "resume-retrying", "socket": "sub"}', "retrying is not paused on 'sub'"),
])
def test_garbage_gets_an_error_reply_and_the_endpoint_keeps_serving(lab, sub_on_two_pubs, garbage, error):
    admin = lab.serve_admin()
    reply = request(admin.endpoint, garbage, timeout=5)
    assert reply["ok"] is False and error in reply["error"]
    assert request(admin.endpoint, {"cmd": "status"}, timeout=5)["ok"] is True
    assert admin.alive and admin.errors == 1 and admin.requests == 2


def test_a_multi_frame_request_is_refused_and_serving_goes_on(lab):
    admin = lab.serve_admin()
    ctx = zmq.Context()
    try:
        req = ctx.socket(zmq.REQ)
        req.linger = 0
        req.connect(admin.endpoint)
        req.send_multipart([b'{"cmd": "status"}', b"extra"])
        assert req.poll(5000)
        assert "got 2 frames" in json.loads(req.recv())["error"]
    finally:
        ctx.destroy(0)
    assert request(admin.endpoint, {"cmd": "help"}, timeout=5)["commands"] == COMMANDS


def test_reconnect_and_pause_resume_through_the_admin_endpoint(lab, sub_on_two_pubs):
    sub, endpoints = sub_on_two_pubs
    admin = lab.serve_admin()
    before = lab.now()
    reply = request(admin.endpoint, {"cmd": "reconnect", "endpoint": endpoints[1]}, timeout=5)
    assert reply["ok"] and reply["was"] == "disconnected" and reply["socket"] == "sub"
    lab.wait_for("HANDSHAKE_SUCCEEDED", "sub", since=before, timeout=5)

    lab.sockets["pub1"].close()
    lab.wait_for("CONNECT_RETRIED", "sub", since=before, timeout=5)
    paused = request(admin.endpoint, {"cmd": "pause-retrying"}, timeout=5)
    assert paused["ok"] and paused["paused"] == {"sub": [endpoints[1]]}
    status = request(admin.endpoint, {"cmd": "status"}, timeout=5)
    assert status["states"] == {"handshaken": 1, "paused": 1, "listening": 1, "closed": 1}  # pub1 closed
    assert status["limiters"][0]["paused"] is True
    resumed = request(admin.endpoint, {"cmd": "resume-retrying"}, timeout=5)
    assert resumed["resumed"] == {"sub": [endpoints[1]]}
    assert {r.endpoint: r.state for r in lab.connections(socket="sub")}[endpoints[1]] in ("connecting", "retrying")


def test_the_admin_thread_is_owned_and_stopped_by_lab_close():
    import zlab

    threads = threading.active_count()
    lab = zlab.Lab()
    admin = lab.serve_admin()
    assert threading.active_count() > threads
    lab.close()
    assert not admin.alive
    with pytest.raises(TimeoutError, match="no reply from the admin endpoint"):
        request(admin.endpoint, {"cmd": "status"}, timeout=0.3)


def test_operator_refuses_a_socket_the_user_only_watches(lab):
    own = lab.context.socket(zmq.SUB)
    own.linger = 0
    try:
        lab.watch(own, "own")
        reply = Operator(lab).handle({"cmd": "disconnect", "endpoint": "tcp://127.0.0.1:1", "socket": "own"})
        assert reply["ok"] is False and "the user's own socket" in reply["error"]
    finally:
        lab.unwatch(own)
        own.close()


def test_admin_endpoint_rejects_a_malformed_address(lab):
    with pytest.raises(ValueError, match="endpoint must look like tcp://127.0.0.1:5555"):
        AdminEndpoint(lab, "127.0.0.1:5555")


def test_cli_usage_mistakes_exit_2_and_silence_exits_1(capsys):
    holder = pysocket.socket()
    holder.bind(("127.0.0.1", 0))
    nobody = f"tcp://127.0.0.1:{holder.getsockname()[1]}"
    try:
        assert main(["admin", nobody, "disconnect"]) == 2
        assert "disconnect needs the endpoint" in capsys.readouterr().err
        assert main(["admin", nobody, "status", "tcp://127.0.0.1:1"]) == 2
        assert main(["admin", nobody, "status", "--timeout", "0.3"]) == 1
        assert "no reply from the admin endpoint" in capsys.readouterr().err
    finally:
        holder.close()


def test_a_forgotten_lab_with_an_admin_endpoint_is_still_collected_and_stops_serving():
    import gc
    import weakref

    import zlab

    lab = zlab.Lab()
    admin = lab.serve_admin()
    ref = weakref.ref(lab)
    del lab
    gc.collect()
    assert ref() is None
    assert not admin.alive
