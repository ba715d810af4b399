"""Reliability: nothing leaks, an interrupt leaves nothing running, bad input is refused cleanly, and
nothing listens beyond loopback.

Accounting is done from outside the library: descriptors in /proc/self/fd, threads from
``threading.enumerate()``, child processes (zombies included) from /proc/*/stat, listening TCP
sockets from /proc/net/tcp{,6} matched to the descriptors of this process and its children.
Baselines are taken after a warm-up and compared with a settle loop (a reader thread may still be
returning when close() does), never after a sleep.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import pathlib
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import traceback

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import zlab
from zlab import cli
from zlab.scenarios import SCENARIOS, run
from zlab.widgets import Dashboard, Rig
from conftest import children_of

ROOT = pathlib.Path(__file__).resolve().parent.parent


# -- accounting ------------------------------------------------------------------------------------
def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in children_of(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _tcp_listeners() -> dict[int, tuple[str, int]]:
    """Socket inode -> (address, port) for every TCP socket in state LISTEN, IPv4 and IPv6."""
    found: dict[int, tuple[str, int]] = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] != "0A":  # LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)
            # the kernel prints each 32-bit word in host (little-endian) order
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found[int(fields[9])] = (socket.inet_ntop(family, packed), int(hex_port, 16))
    return found


def listening_addresses(pids: set[int]) -> set[tuple[str, int, int]]:
    """(address, port, pid) of every listening TCP socket held by one of ``pids``."""
    listeners = _tcp_listeners()
    found = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in listeners:
                    found.add((*listeners[inode], pid))
    return found


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def endpoint_is_private(endpoint: str) -> bool:
    """tcp on 127.x / [::1], inproc, or ipc (checked apart for its directory)."""
    if endpoint.startswith(("inproc://", "ipc://")):
        return True
    if endpoint.startswith("tcp://"):
        host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
        return is_loopback(host)
    return False


class Baseline:
    """Descriptors, threads and child processes now; :meth:`check` waits (bounded) until they are back."""

    def __init__(self) -> None:
        self.fds = open_fds()
        self.threads = set(threading.enumerate())  # objects, not idents: an ident can be reused
        self.children = children_of(os.getpid())

    def leftovers(self) -> list[str]:
        problems = []
        extra_threads = [t.name for t in threading.enumerate() if t not in self.threads]
        if extra_threads:
            problems.append(f"threads {extra_threads}")
        extra_children = children_of(os.getpid()) - self.children
        if extra_children:
            problems.append(f"child processes {sorted(extra_children)}")
        if open_fds() > self.fds:
            problems.append(f"{open_fds() - self.fds} descriptors ({self.fds} -> {open_fds()})")
        return problems

    def check(self, timeout: float = 5.0, context: str = "") -> None:
        deadline = time.monotonic() + timeout
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not self.leftovers(), "left behind: " + "; ".join(self.leftovers()) + (f" ({context})" if context else "")


@pytest.fixture
def thread_crashes():
    """Every exception that escapes any thread's run() while the test runs (the collector's included)."""
    crashes: list[str] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        crashes.append(f"{args.thread.name if args.thread else '?'}: {args.exc_type.__name__}: {args.exc_value}")

    threading.excepthook = hook
    try:
        yield crashes
    finally:
        threading.excepthook = previous


# -- (a) leaks ---------------------------------------------------------------------------------------
def full_rig(lab: zlab.Lab, options: dict) -> Rig:
    """Two child peers, a fault proxy between them, a PUB here, and an admin endpoint."""
    sub = lab.peer("SUB", "sub-peer", bind="tcp")
    proxy = lab.proxy(sub, name="proxy0")
    pub_peer = lab.peer("PUB", "pub-peer", connect=proxy)
    pub = lab.socket("PUB", "pub", connect=sub.endpoint, **options)
    lab.serve_admin()
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", timeout=15)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub-peer", timeout=15)
    faults = {"pause": sub.pause, "kill": pub_peer.kill, "cut": proxy.cut}
    return Rig("pub -> sub-peer <- proxy0 <- pub-peer, admin", faults, {"pub": pub})


CYCLES = 100


@pytest.mark.timeout(400)
def test_100_full_topologies_return_fds_threads_and_children_to_baseline():
    # The first cycle of each kind pays for imports and lazily made interpreter state.
    for frontend in (False, True):
        Dashboard(full_rig, frontend=frontend, timeline_s=None, name="leak").close()
    base = Baseline()
    slowest_close, started = 0.0, time.monotonic()
    for i in range(CYCLES):
        board = Dashboard(full_rig, frontend=bool(i % 2), timeline_s=None, name="leak",
                          options={"reconnect_ivl": 50})
        assert (board.widget is not None) == bool(i % 2)
        if i % 4 == 1:
            board.fault("pause")  # close must SIGCONT a stopped child before asking it to exit
        elif i % 4 == 2:
            board.fault("cut")
        elif i % 4 == 3:
            board.fault("kill")
        closing = time.monotonic()
        board.close()
        slowest_close = max(slowest_close, time.monotonic() - closing)
        assert board.lab.closed
    elapsed = time.monotonic() - started
    base.check()
    # Measured on 2 idle cores: ~0.3 s a cycle (two Python child processes start), close ~30 ms.
    assert slowest_close < 3.0, f"slowest close {slowest_close:.2f} s"
    print(f"\n{CYCLES} full cycles in {elapsed:.1f} s ({elapsed / CYCLES * 1000:.0f} ms each), "
          f"slowest close {slowest_close * 1000:.0f} ms")


# -- (b) interruption --------------------------------------------------------------------------------
def call_with_ctrl_c(fn, delay: float) -> str:
    """Run ``fn()`` and send this process a real SIGINT ``delay`` s after it starts, as Jupyter's
    "interrupt kernel" does. Returns where the KeyboardInterrupt was raised ("" if ``fn`` ended first).

    The handler raises KeyboardInterrupt once and only while ``fn`` runs, so a late signal can
    never hit pytest itself.
    """
    state = {"armed": False, "where": ""}

    def handler(signum, frame):
        if state["armed"]:
            state["armed"] = False
            state["where"] = " <- ".join(f"{pathlib.Path(f.filename).name}:{f.lineno} {f.name}"
                                         for f in reversed(traceback.extract_stack(frame, limit=6)))
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    try:
        state["armed"] = True
        try:
            timer.start()
            fn()
        except KeyboardInterrupt:
            if not state["where"]:
                raise
    finally:
        state["armed"] = False
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGINT, previous)
    return state["where"]


# Each case: settings that make the scenario last a few seconds, and delays that land in
# different phases (peer start-up, handshake waits, the fault, the measuring window).
INTERRUPTED = [
    ("heartbeat", {"compare": False, "heartbeat_ivl": 0, "duration": 3.0}, [0.01, 0.1, 0.35, 1.0]),
    ("monitor-freeze", {"reader": "unread", "duration": 2.0}, [0.05, 0.3, 1.2]),
    ("many-connections", {"publishers": 2, "duration": 2.0}, [0.05, 0.4, 1.0]),
    ("retry-loop", {"duration": 2.0}, [0.005, 0.05, 0.5]),
]


@pytest.mark.parametrize("name, overrides, delays", INTERRUPTED, ids=[c[0] for c in INTERRUPTED])
def test_ctrl_c_mid_scenario_leaves_nothing_running_and_the_next_scenario_works(name, overrides, delays,
                                                                                thread_crashes):
    run("lifecycle")  # warm-up: imports, interpreter state
    base = Baseline()
    for delay in delays:
        where = call_with_ctrl_c(lambda: run(name, **overrides), delay)
        assert where, f"{name} ended before the interrupt at {delay} s"
        base.check(context=f"interrupted at {delay} s in {where}")
    after = run("lifecycle")
    assert after.summary and any(ev.event == "HANDSHAKE_SUCCEEDED" for ev in after.events)
    base.check()
    assert thread_crashes == []


def test_ctrl_c_during_lab_close_still_closes_everything(thread_crashes):
    """A second Ctrl-C while close() runs: close finishes first, then the interrupt is raised."""
    base_probe = zlab.Lab()
    base_probe.peer("SUB", "warm", bind="tcp")
    base_probe.close()
    base = Baseline()
    # close() of a Lab with two peers takes ~25 ms; sweep the interrupt across it.
    inside_close = 0
    for delay_ms in (1, 2, 4, 6, 8, 10, 12, 15, 18, 21, 25, 30):
        lab = zlab.Lab()
        a = lab.peer("SUB", "a", bind="tcp")
        lab.peer("PUB", "b", connect=a.endpoint)
        lab.proxy(a)
        lab.wait_for("HANDSHAKE_SUCCEEDED", "b", timeout=15)

        def close_then_idle() -> None:
            lab.close()
            time.sleep(0.1)  # the signal lands here if close() was faster than the delay

        where = call_with_ctrl_c(close_then_idle, delay_ms / 1000)
        inside_close += " close" in where
        assert lab.closed
        base.check(context=f"interrupted at {delay_ms} ms in {where}")
    assert inside_close >= 3, "the sweep never interrupted close() itself"
    assert thread_crashes == []


def test_ctrl_c_on_zlab_run_ends_it_and_its_peers_with_status_130():
    # A terminal's Ctrl-C goes to the whole foreground process group: the CLI and its peers.
    proc = subprocess.Popen(
        [sys.executable, "-m", "zlab", "run", "heartbeat", "--set", "compare=false", "--set", "heartbeat_ivl=0",
         "--set", "duration=20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, cwd=ROOT,
    )
    try:
        # The progress line comes after 1 s of running: by then the peer is up and the scenario waits.
        first_line: list[bytes] = []
        reader = threading.Thread(target=lambda: first_line.append(proc.stderr.readline()), daemon=True)
        reader.start()
        reader.join(30)
        assert first_line and first_line[0].startswith(b"zlab: running heartbeat"), first_line
        assert children_of(proc.pid), "the run has no peer process"
        os.killpg(proc.pid, signal.SIGINT)
        out, rest = proc.communicate(timeout=15)
        err = first_line[0] + rest
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err.decode()
    assert err.decode().strip().splitlines()[-1] == "zlab: interrupted"
    assert b"Traceback" not in err and b"Traceback" not in out
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of that process group is left


# -- (c) bad input on the command line ------------------------------------------------------------------
# Arguments are drawn from what users mistype: known names with odd values, odd names, line breaks,
# numbers in every notation. Each argv is first classified with the CLI's own validators:
# rejected ones must exit 2 with one line; accepted ones that run for well under a second (a short
# probe of a loopback or ipc endpoint; the lifecycle and bind-failed scenarios) run too, and must
# end without a traceback; other accepted ones would run for seconds and are skipped.
SETTING_KEYS = sorted({key for sc in SCENARIOS.values() for key in sc.defaults})
PYZMQ_OPTIONS = ["subscribe", "routing_id", "plain_server", "curve_server", "tcp_maxrt", "ipv6", "linger", "rcvhwm",
                 "heartbeat_ivl", "heartbeat_timeout", "reconnect_ivl", "connect_timeout", "sndhwm"]
odd_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
numbers = st.one_of(st.integers(-10**12, 10**12).map(str), st.floats().map(repr),
                    st.sampled_from(["nan", "inf", "-inf", "1e309", "0x10", "1_000", "٣", "", " ", "-0", "+5",
                                     "true", "false", "yes", "maybe", "1.5", "2147483648", "-2", "0", "1"]))
values = st.one_of(numbers, odd_text)
set_items = st.one_of(
    st.builds("{}={}".format, st.one_of(st.sampled_from(SETTING_KEYS), odd_text), values),
    st.builds("{}{}".format, st.sampled_from(SETTING_KEYS), values),  # the "=" forgotten
    odd_text,
)
option_items = st.one_of(st.builds("{}={}".format, st.sampled_from(PYZMQ_OPTIONS), values), set_items)
short = st.sampled_from(["0.05", "0.1", "0.2"])


def _flatten(pairs) -> list[str]:
    return [x for pair in pairs for x in pair if x is not None]


run_argvs = st.builds(
    lambda name, sets, extra: ["run", name, *_flatten(("--set", item) for item in sets), *extra],
    st.one_of(st.sampled_from(sorted(SCENARIOS)), odd_text),
    st.lists(set_items, min_size=1, max_size=3),
    st.lists(st.one_of(st.tuples(st.sampled_from(["--duration", "--rows", "--jsonl", "--plot"]), values),
                       st.tuples(st.sampled_from(["--json", "--bogus", "-x"]), st.none())), max_size=2).map(_flatten),
)
probe_argvs = st.builds(
    lambda endpoint, opts: ["probe", endpoint, *opts],
    st.one_of(st.builds("tcp://{}:{}".format, st.sampled_from(["127.0.0.1", "", "[::1]", "x y", "256.1.1.1", "*"]),
                        numbers),
              st.builds("ipc://{}".format, odd_text), odd_text),
    st.lists(st.one_of(st.tuples(st.just("--set"), option_items),
                       st.tuples(st.just("--type"), st.one_of(st.sampled_from(["PUB", "req", "STREAM"]), odd_text)),
                       st.tuples(st.just("--duration"), st.one_of(short, numbers))), max_size=3).map(_flatten),
).map(lambda argv: argv if "--duration" in argv else argv + ["--duration", "0.1"])
other_argvs = st.one_of(
    st.builds(lambda n: ["demo", "--cycles", n], numbers),
    st.builds(lambda a, b, c: ["admin", a, b, *c], odd_text,
              st.one_of(st.sampled_from(sorted(cli._ADMIN_ACTIONS)), odd_text),
              st.lists(st.one_of(odd_text, st.sampled_from(["--timeout", "--socket", "--json"])), max_size=3)),
    st.builds(lambda rest: ["scenarios", *rest], st.lists(odd_text, min_size=1, max_size=2)),
    st.builds(lambda rest: ["check", *rest], st.lists(odd_text, min_size=1, max_size=2)),
    st.lists(odd_text, min_size=1, max_size=3),
)


def classify(argv: list[str]) -> str:
    """``"reject"`` if the CLI's validators refuse ``argv``, ``"cheap"`` if accepted and quick to run,
    ``"skip"`` if accepted and slow. An unexpected exception counts as "reject": ``main`` then runs
    and the test sees what a user would."""
    try:
        args = cli.build_parser().parse_args(argv)
        if args.command is None:
            return "skip"  # bare `zlab`: the help text (test_cli covers it)
        if args.command == "run":
            from zlab.scenarios import get

            sc = get(args.name)
            overrides = cli._settings_from_args(sc, args.sets, args.duration)
            if args.rows < 0:
                return "reject"
            for option, path in (("--jsonl", args.jsonl), ("--plot", args.plot)):
                if path:
                    cli._check_writable(option, path)
            quick = sc.name in ("lifecycle", "bind-failed") and overrides.get("timeout_s", 1.0) <= 1.0
            return "cheap" if quick and not args.jsonl and not args.plot else "skip"
        if args.command == "probe":
            endpoint = cli.parse_endpoint(args.endpoint)
            cli._probe_options(args.sets)
            if not 0 < args.duration <= 3600:
                return "reject"
            local = endpoint.startswith(("tcp://127.0.0.1:", "ipc://"))
            return "cheap" if local and args.duration <= 0.3 else "skip"
        if args.command == "demo":
            return "skip" if 1 <= args.cycles <= 50 else "reject"
        if args.command == "admin":
            cmd = cli._ADMIN_ACTIONS[args.action]
            if (cmd in ("disconnect", "reconnect")) != bool(args.arg) or not 0 < args.timeout <= 60:
                return "reject"
        return "skip"
    except SystemExit:  # --help / --version
        return "skip"
    except Exception:
        return "reject"


def check_outcome(argv: list[str], capsys, base: Baseline, rejected: bool) -> None:
    capsys.readouterr()
    started = time.monotonic()
    try:
        status = cli.main(argv)
    except SystemExit as exc:  # only --help and --version may exit, with 0
        assert exc.code in (0, None), argv
        capsys.readouterr()
        return
    took = time.monotonic() - started
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, (argv, err)
    if rejected:
        assert status == 2, (argv, status, err)
    else:
        assert status in (0, 1, 2), (argv, status, err)
    if status:
        lines = err.strip("\n").split("\n")
        assert len(lines) == 1 and lines[0].startswith("zlab: ") and len(lines[0]) > len("zlab: error: "), \
            (argv, err)
        if status == 2:
            assert lines[0].startswith("zlab: error: "), (argv, err)
    assert took < 5, (argv, took)
    base.check(timeout=5)  # no half-built Lab, peer or thread left running


HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.filter_too_much,
                                                                         HealthCheck.too_slow])


@pytest.fixture(scope="module")
def cli_baseline():
    with contextlib.redirect_stdout(io.StringIO()):
        cli.main(["scenarios"])  # imports every scenario module first
    return Baseline()


@given(argv=run_argvs)
@HYPO
def test_bad_run_arguments_exit_2_with_one_line(argv, capsys, cli_baseline, thread_crashes):
    kind = classify(argv)
    event(kind)
    assume(kind != "skip")
    check_outcome(argv, capsys, cli_baseline, rejected=kind == "reject")
    assert thread_crashes == []


@given(argv=st.one_of(probe_argvs, other_argvs))
@HYPO
def test_bad_probe_admin_demo_and_stray_arguments_exit_2_with_one_line(argv, capsys, cli_baseline, thread_crashes):
    kind = classify(argv)
    event(kind)
    assume(kind != "skip")
    check_outcome(argv, capsys, cli_baseline, rejected=kind == "reject")
    assert thread_crashes == []


local_probes = st.builds(
    lambda endpoint, kind, sets: ["probe", endpoint, "--duration", "0.1", "--type", kind,
                                  *_flatten(("--set", item) for item in sets)],
    st.one_of(st.integers(1, 65535).map("tcp://127.0.0.1:{}".format),
              st.text("abc/._-", min_size=1, max_size=120).map("ipc:///tmp/zlab-fuzz-{}".format)),
    st.sampled_from(["SUB", "PUB", "DEALER", "REQ", "ROUTER", "PAIR", "STREAM", "XPUB", "PULL"]),
    st.lists(st.builds("{}={}".format, st.sampled_from(PYZMQ_OPTIONS), values), max_size=2),
)


@given(argv=local_probes)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
def test_probes_with_odd_options_run_or_exit_2_in_one_line(argv, capsys, cli_baseline, thread_crashes):
    # These get past the validators and build a Lab: a refusal comes from libzmq itself.
    kind = classify(argv)
    event(kind)
    assume(kind != "skip")
    check_outcome(argv, capsys, cli_baseline, rejected=kind == "reject")
    assert thread_crashes == []


@pytest.mark.parametrize("argv", [
    # refused inside the scenario or the probe, after a Lab and its collector started
    ["run", "bind-failed", "--set", "foreign_address=not-an-ip"],
    ["run", "backoff", "--set", "reconnect_ivl=0", "--set", "compare=false"],
    ["probe", "tcp://127.0.0.1:1", "--duration", "0.2", "--type", "PUB", "--set", "subscribe=x"],
    ["probe", "tcp://127.0.0.1:1", "--duration", "0.2", "--set", "plain_server=abc"],
    ["probe", "tcp://127.0.0.1:1", "--duration", "0.2", "--set", "tcp_maxrt=99999999999999"],
    ["probe", "ipc://" + "x" * 200, "--duration", "0.2"],
    # refused before anything starts
    ["run", "lifecycle", "--set", "transport=udp"],
    ["run", "retry-loop", "--set", "reconnect_ivl=1", "--set", "duration=121"],
    ["scenarios", "\n0"],
])
def test_rejections_exit_2_with_one_line_and_leave_nothing_running(argv, capsys, cli_baseline, thread_crashes):
    check_outcome(argv, capsys, cli_baseline, rejected=True)
    assert thread_crashes == []


# -- (d) security --------------------------------------------------------------------------------------------
# Settings that keep each scenario short; every scenario is run once.
QUICK = {
    "backoff": {"attempts": 1, "compare": False, "reconnect_ivl": 10, "reconnect_ivl_max": 20, "duration": 2.0},
    "bind-failed": {},
    "context-freeze": {"linger_ms": 50},
    "direction": {"duration": 0.2, "reconnect_ivl": 20},
    "disconnect-keeps-socket": {"reconnect_ivl": 20, "cycles": 1},
    "handshake-failure": {"duration": 0.2},
    "heartbeat": {"compare": False, "duration": 0.5},
    "hwm": {"messages": 2000, "duration": 0.5},
    "lifecycle": {"transport": "ipc"},
    "many-connections": {"publishers": 2, "duration": 0.3},
    "monitor-freeze": {"reader": "rcvhwm0", "duration": 0.3, "baseline_s": 0.1},
    "retry-loop": {"duration": 0.2, "reconnect_ivl": 20},
    "stop-retrying": {"attempts": 1, "duration": 0.3},
}


class ListenerAudit(threading.Thread):
    """Samples, every 20 ms, the listening TCP sockets and the command lines of this process's
    descendants, so that listeners of child processes and of the proxy are seen too."""

    def __init__(self) -> None:
        super().__init__(name="test-listener-audit", daemon=True)
        self.stop = threading.Event()
        self.listeners: set[tuple[str, int, int]] = set()
        self.children: dict[int, tuple[int, list[str]]] = {}

    def sample(self) -> None:
        me = os.getpid()
        pids = descendants(me)
        for pid in pids:
            if pid not in self.children:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
                except OSError:
                    continue
                fields = _stat_fields(pid)
                if argv and fields is not None:
                    self.children[pid] = (int(fields[1]), argv)
        self.listeners |= listening_addresses(pids | {me})

    def run(self) -> None:
        while not self.stop.wait(0.02):
            self.sample()

    def __enter__(self) -> ListenerAudit:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(5)
        self.sample()


def assert_no_shell(children: dict[int, tuple[int, list[str]]]) -> None:
    executable = os.path.realpath(sys.executable)
    for pid, (ppid, argv) in children.items():
        assert ppid == os.getpid(), f"pid {pid} {argv} was not started by us directly (a shell in between?)"
        assert os.path.realpath(argv[0]) == executable, f"pid {pid} runs {argv!r}, not Python"
        assert os.path.basename(argv[0]) not in ("sh", "bash", "dash")


def test_quick_settings_cover_every_scenario():
    assert sorted(QUICK) == sorted(SCENARIOS)


@pytest.mark.timeout(240)
def test_every_scenario_binds_only_loopback_ipc_or_inproc_and_spawns_no_shell():
    seen_bound: list[str] = []
    with ListenerAudit() as audit:
        for name, overrides in QUICK.items():
            result = run(name, **overrides)
            for ev in result.events:
                if ev.event == "LISTENING":  # every bind of every Lab socket and peer
                    seen_bound.append(ev.endpoint)
                    assert endpoint_is_private(ev.endpoint), f"{name} bound {ev.endpoint}"
                    if ev.endpoint.startswith("ipc://"):
                        directory = os.path.dirname(ev.endpoint[len("ipc://"):])
                        assert not os.path.exists(directory), f"{name} left its ipc directory {directory}"
    assert any(ep.startswith("ipc://") for ep in seen_bound)
    assert audit.listeners, "the audit saw no listener at all"
    wide = {entry for entry in audit.listeners if not is_loopback(entry[0])}
    assert not wide, f"listening beyond loopback: {wide}"
    assert len(audit.children) >= 3  # heartbeat, many-connections peers; freeze children
    assert_no_shell(audit.children)


def test_peers_proxy_and_admin_listen_on_loopback_only_and_children_have_no_shell():
    with ListenerAudit() as audit, zlab.Lab() as lab:
        sub = lab.peer("SUB", "sub-peer", bind="tcp")
        proxy = lab.proxy(sub)
        pub_peer = lab.peer("PUB", "pub-peer", connect=proxy)
        here = lab.socket("SUB", "here", bind="tcp", subscribe=b"")
        lab.peer("PUB", "pub-peer2", connect=lab.endpoint(here))
        admin = lab.serve_admin()  # the default endpoint
        lab.wait_for("HANDSHAKE_SUCCEEDED", "pub-peer", timeout=15)
        live = listening_addresses(descendants(os.getpid()) | {os.getpid()})
        expected = {("peer", sub.pid, sub.endpoint), ("proxy", os.getpid(), proxy.endpoint),
                    ("admin", os.getpid(), admin.endpoint), ("socket", os.getpid(), lab.endpoint(here))}
        assert pub_peer.pid not in {pid for *_, pid in live}  # a connecting peer listens on nothing
    for what, pid, endpoint in expected:
        assert endpoint.startswith("tcp://127.0.0.1:"), (what, endpoint)
        assert ("127.0.0.1", int(endpoint.rsplit(":", 1)[1]), pid) in live, (what, endpoint, live)
    wide = {entry for entry in audit.listeners | live if not is_loopback(entry[0])}
    assert not wide, f"listening beyond loopback: {wide}"
    assert len(audit.children) == 3
    assert_no_shell(audit.children)


def test_an_explicit_address_is_used_as_given():
    # Binding beyond loopback is possible, but only when the user writes the address.
    with zlab.Lab() as lab:
        sock = lab.socket("PAIR", "wide", bind="tcp://0.0.0.0:*")
        assert lab.endpoint(sock).startswith("tcp://0.0.0.0:")


def test_ipc_endpoints_of_sockets_and_peers_share_a_private_0700_directory_removed_on_close():
    with zlab.Lab() as lab:
        here = lab.socket("PULL", "here", bind="ipc")
        peer = lab.peer("PULL", "there", bind="ipc")
        paths = [lab.endpoint(here)[len("ipc://"):], peer.endpoint[len("ipc://"):]]
        directory = os.path.dirname(paths[0])
        assert os.path.dirname(paths[1]) == directory
        info = os.stat(directory)
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
        assert all(stat.S_ISSOCK(os.stat(p).st_mode) for p in paths)
    assert not os.path.exists(directory)


def _subprocess_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            base = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            yield node, base, name


def test_no_module_starts_a_process_through_a_shell():
    sources = sorted((ROOT / "zlab").rglob("*.py"))
    spawners = 0
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node, base, name in _subprocess_calls(tree):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            assert (base, name) not in {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
                                        ("subprocess", "getstatusoutput")}, where
            for kw in node.keywords:
                if kw.arg == "shell":
                    assert isinstance(kw.value, ast.Constant) and kw.value.value is False, where
            if base == "subprocess" and name in ("Popen", "run", "call", "check_call", "check_output"):
                spawners += 1
                assert node.args and not isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)), \
                    f"{where}: the command must be an argv list"
    assert spawners >= 2  # peer spawner, scenario children (and shutdown's demo child)
