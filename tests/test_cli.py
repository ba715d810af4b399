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
    (["run", "lifecycle", "--plot", "/tmp/zlab-plot.txt"], "the suffix decides the format"),
    (["admin", "garbage", "status"], "malformed endpoint 'garbage'; expected tcp://HOST:PORT"),
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


# -- bugs, interrupts and the progress line -----------------------------------------------
@pytest.fixture
def scenario_body(monkeypatch):
    """Replace the body of the quick ``lifecycle`` scenario for one test; returns the calls seen."""
    import dataclasses

    from zlab.scenarios import SCENARIOS

    calls: list[str] = []

    def install(body):
        def counted(lab, settings):
            calls.append("run")
            return body(lab, settings)

        monkeypatch.setitem(SCENARIOS, "lifecycle", dataclasses.replace(SCENARIOS["lifecycle"], body=counted))
        return calls

    return install


def _bug(lab, settings):
    raise ValueError("an index computed wrong")  # a bug in the library, not the user's input


def test_a_bug_during_a_run_is_an_internal_error_not_a_usage_error(capsys, scenario_body, monkeypatch):
    scenario_body(_bug)
    monkeypatch.delenv("ZLAB_DEBUG", raising=False)
    status, out, err = _run(capsys, "run", "lifecycle")
    assert status == 1 and out == ""
    line = _one_line_error(err)
    assert line.startswith("zlab: internal error: ValueError: an index computed wrong") and "please report" in line
    monkeypatch.setenv("ZLAB_DEBUG", "1")
    status, _, err = _run(capsys, "run", "lifecycle")
    assert status == 1 and "Traceback" in err and "internal error" in err.splitlines()[-1]


def test_a_setting_refused_inside_the_scenario_is_still_a_usage_error(capsys):
    status, out, err = _run(capsys, "run", "bind-failed", "--set", "foreign_address=not-an-ip")
    assert status == 2 and "foreign_address must be" in _one_line_error(err)


def test_plot_with_an_unsupported_suffix_fails_before_the_scenario_runs(capsys, scenario_body, tmp_path):
    calls = scenario_body(_bug)
    status, out, err = _run(capsys, "run", "lifecycle", "--plot", str(tmp_path / "run.txt"))
    assert status == 2 and out == "" and calls == []
    assert "got '.txt'" in _one_line_error(err)


def _fast_progress(monkeypatch):
    from zlab import cli

    real = cli._Progress.__init__
    monkeypatch.setattr(cli._Progress, "__init__",
                        lambda self, label, delay=1.0, stream=None: real(self, label, 0.0, stream))


def test_ctrl_c_during_a_run_says_interrupted_not_done(capsys, scenario_body, monkeypatch):
    def interrupted(lab, settings):
        time.sleep(0.3)  # the progress line (delay 0 here) is shown by now
        raise KeyboardInterrupt

    scenario_body(interrupted)
    _fast_progress(monkeypatch)
    status, _, err = _run(capsys, "run", "lifecycle")
    assert status == 130
    assert "zlab: running lifecycle..." in err and err.rstrip().endswith("zlab: interrupted")
    assert "done" not in err


def test_a_failed_run_reports_once_and_never_says_done(capsys, scenario_body, monkeypatch):
    def fails(lab, settings):
        time.sleep(0.3)
        raise RuntimeError("the peer did not start")

    scenario_body(fails)
    _fast_progress(monkeypatch)
    status, _, err = _run(capsys, "run", "lifecycle")
    assert status == 1 and "done" not in err
    assert err.count("lifecycle failed: the peer did not start") == 1


def test_progress_stop_prints_its_done_line_once():
    import io

    from zlab.cli import _Progress

    stream = io.StringIO()
    progress = _Progress("working", delay=0.0, stream=stream).start()
    deadline = time.monotonic() + 5
    while not progress.shown and time.monotonic() < deadline:
        time.sleep(0.01)
    progress.stop()
    progress.stop()  # a second stop (a finally after an except) prints nothing more
    assert stream.getvalue().count("done in") == 1


def test_zlab_without_a_command_prints_help_to_stderr_and_exits_2(capsys):
    status, out, err = _run(capsys)
    assert status == 2 and out == ""
    assert err.startswith("usage: zlab") and "probe" in err


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_probe_of_an_ipv6_endpoint_sets_ipv6_and_connects(capsys):
    ctx = zmq.Context()
    server = ctx.socket(zmq.PUB)
    server.setsockopt(zmq.LINGER, 0)
    server.setsockopt(zmq.IPV6, 1)
    server.bind("tcp://[::1]:*")
    endpoint = server.getsockopt(zmq.LAST_ENDPOINT).decode()
    try:
        status, out, _ = _run(capsys, "probe", endpoint, "--duration", "0.5")
    finally:
        server.close()
        ctx.term()
    assert endpoint.startswith("tcp://[::1]:")
    assert status == 0 and "HANDSHAKE_SUCCEEDED" in out and "a ZeroMQ peer answered" in out


def test_probe_of_a_name_that_does_not_resolve_says_so(capsys):
    status, out, _ = _run(capsys, "probe", "tcp://no-such-host.invalid:5555", "--duration", "0.6")
    assert status == 0 and "CONNECT_RETRIED" in out
    counts = next(line for line in out.splitlines() if line.startswith("in "))
    assert "CONNECT_RETRIED" in counts and "CONNECT_DELAYED" not in counts and "CLOSED" not in counts
    assert "the address never resolved" in out and "nobody accepted" not in out
