"""The command line: scenarios, run, check, probe -- output shapes and every user mistake's one-line error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import zmq

from zlab.cli import main, parse_endpoint


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# -- user mistakes: exit 2, one line naming the problem and what is allowed -----------------
@pytest.mark.parametrize("argv,expected", [
    (["run", "no-such"], "unknown scenario 'no-such'; known scenarios: backoff"),
    (["run", "retry-loop", "--set", "colour=red"], "has no setting 'colour'; its settings: duration, reconnect_ivl"),
    (["run", "retry-loop", "--set", "reconnect_ivl=fast"], "reconnect_ivl must be a whole number"),
    (["run", "retry-loop", "--set", "reconnect_ivl"], "--set expects KEY=VALUE"),
    (["run", "retry-loop", "--set", "=3"], "--set expects KEY=VALUE"),
    (["run", "retry-loop", "--set", "reconnect_ivl=-2"], "reconnect_ivl must be in -1.."),
    (["run", "retry-loop", "--duration", "0"], "duration is in seconds and must be in (0, 120]"),
    (["run", "retry-loop", "--duration", "soon"], "invalid float value: 'soon'"),
    (["run", "lifecycle", "--duration", "1"], "has no duration setting"),
    (["run", "lifecycle", "--set", "transport=udp"], "transport must be one of tcp, ipc"),
    (["run", "backoff", "--set", "compare=perhaps"], "compare must be true or false"),
    (["run", "backoff", "--set", "attempts=0"], "attempts must be in 1..30"),
    (["run", "retry-loop", "--jsonl", "/no/such/dir/events.jsonl"], "cannot write there"),
    (["probe", "localhost:5555"], "malformed endpoint 'localhost:5555'; expected tcp://HOST:PORT"),
    (["probe", "tcp://127.0.0.1:70000"], "port 70000 is not in 1..65535"),
    (["probe", "inproc://x"], "malformed endpoint 'inproc://x'"),
    (["probe", "tcp://127.0.0.1:5555", "--type", "PIPE"], "invalid choice: 'PIPE'"),
    (["probe", "tcp://127.0.0.1:5555", "--duration", "-1"], "--duration is in seconds"),
    (["probe", "tcp://127.0.0.1:5555", "--set", "heartbeat_ivl=often"], "heartbeat_ivl must be a whole number"),
    (["nonsense"], "invalid choice: 'nonsense'"),
])
def test_user_mistakes_exit_2_with_one_line(capsys, argv, expected):
    threads = threading.active_count()
    status, out, err = _run(capsys, *argv)
    assert status == 2
    assert expected in _one_line_error(err)
    assert out == ""
    assert threading.active_count() <= threads  # nothing left running


def test_endpoints_accepted_by_probe():
    for ok in ("tcp://127.0.0.1:5555", "tcp://localhost:1", "tcp://[::1]:65535", "ipc:///tmp/x.ipc"):
        assert parse_endpoint(ok) == ok


# -- output --------------------------------------------------------------------------
def test_scenarios_lists_every_scenario_with_a_description(capsys):
    from zlab.scenarios import SCENARIOS

    status, out, _ = _run(capsys, "scenarios")
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == len(SCENARIOS)
    assert all(len(line.split(None, 1)) == 2 for line in lines)
    status, out, _ = _run(capsys, "scenarios", "--settings")
    assert "--set reconnect_ivl_max=800  (ms)" in out


def test_run_prints_the_event_table_summary_and_findings(capsys, tmp_path):
    jsonl = tmp_path / "events.jsonl"
    status, out, err = _run(capsys, "run", "lifecycle", "--jsonl", str(jsonl))
    assert status == 0
    assert "t (ms)" in out and "summary:" in out and "findings:" in out
    assert "CONNECT_DELAYED            115: EINPROGRESS" in out
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert records and {"t", "socket", "event", "value", "endpoint", "meaning"} <= set(records[0])
    assert "events written" in err


def test_run_json_is_one_object_and_progress_goes_to_stderr(capsys):
    status, out, err = _run(capsys, "run", "retry-loop", "--json", "--duration", "2")
    assert status == 0
    data = json.loads(out)  # exactly one JSON document on stdout
    assert list(data) == ["scenario", "versions", "settings", "events", "summary", "findings"]
    assert data["settings"]["duration"] == 2.0
    assert {"t", "socket", "event", "value", "endpoint"} <= set(data["events"][0])
    pub = [e["event"] for e in data["events"] if e["socket"] == "pub"]
    after = pub[pub.index("DISCONNECTED") + 1:]
    cycles, state = 0, 0
    for name in after:
        if name == "CONNECT_RETRIED":
            state = 1
        elif name == "CONNECT_DELAYED" and state == 1:
            state = 2
        elif name == "CLOSED" and state == 2:
            cycles, state = cycles + 1, 0
    assert cycles >= 8
    sub = [e["event"] for e in data["events"] if e["socket"] == "sub"]
    assert "CONNECT_RETRIED" not in sub and "CONNECT_DELAYED" not in sub
    assert "running retry-loop" in err  # a run over a second shows progress


def test_set_values_reach_the_scenario(capsys):
    status, out, _ = _run(capsys, "run", "stop-retrying", "--json", "--set", "attempts=2", "--duration", "0.6")
    data = json.loads(out)
    assert status == 0 and data["settings"]["attempts"] == 2 and data["settings"]["duration"] == 0.6
    assert data["summary"]["variants"]["pub_ivl-1"]["connect_retried"] == 0


def test_plot_flag_writes_a_file_or_says_why_not(capsys, tmp_path):
    target = tmp_path / "run.png"
    status, _, err = _run(capsys, "run", "bind-failed", "--plot", str(target))
    if "is not available" in err:
        assert status == 2
    else:
        assert status == 0 and target.stat().st_size > 0, err


def test_probe_streams_the_events_of_a_real_endpoint(capsys):
    ctx = zmq.Context()
    server = ctx.socket(zmq.PUB)
    server.setsockopt(zmq.LINGER, 0)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    try:
        status, out, _ = _run(capsys, "probe", f"tcp://127.0.0.1:{port}", "--duration", "0.5")
    finally:
        server.close()
        ctx.term()
    assert status == 0
    assert "HANDSHAKE_SUCCEEDED" in out and "a ZeroMQ peer answered" in out


def test_probe_of_a_closed_port_says_nobody_accepted(capsys):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    status, out, _ = _run(capsys, "probe", f"tcp://127.0.0.1:{port}", "--type", "dealer", "--duration", "0.4")
    assert status == 0 and "CONNECT_RETRIED" in out and "nobody accepted" in out


# -- the real console script and python -m zlab -------------------------------------------
def _zlab() -> list[str]:
    script = shutil.which("zlab", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "zlab"]


def test_console_script_reports_a_mistake_in_one_line_without_traceback():
    out = subprocess.run(_zlab() + ["run", "backoff", "--set", "reconnect_ivl_max=lots"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and out.stdout == ""
    assert "reconnect_ivl_max must be a whole number" in _one_line_error(out.stderr)


def test_python_m_zlab_check_is_fast_and_calls_disconnected_differs():
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "zlab", "check", "--json"], capture_output=True, text=True,
                         timeout=60)
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["libzmq"] == zmq.zmq_version() and data["pyzmq"] == zmq.pyzmq_version()
    verdicts = {c["id"]: c["verdict"] for c in data["claims"]}
    assert verdicts["disconnected-closes-socket"] == "differs"
    assert len(verdicts) >= 10 and set(verdicts.values()) <= {"holds", "differs", "partly"}
    assert elapsed < 30
