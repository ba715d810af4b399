"""Safe shutdown, and context isolation: end a ZeroMQ program without hanging.

Measured here (libzmq 4.3.5, see the BRIEF): LINGER defaults to -1, so a
socket closed with a message queued for a peer that is gone makes
``zmq_ctx_term()`` wait forever; with LINGER 0 it returns in under 1 ms, with
LINGER 500 in about 500 ms. A socket left open blocks ``term()`` too. An
unread monitor stalls the context's I/O thread, and with it every socket of
that context -- but not the sockets of another context.

:func:`safe_shutdown` ends a context in the order that cannot hang:

1. **monitors first**: drain each monitor reader (a full one would make
   ``disable_monitor()`` block while holding the GIL), ``disable_monitor()``,
   read until MONITOR_STOPPED, and only then close the reader (closing it first
   can leave libzmq's reaper stuck: HAZARDS.md);
2. **count what is queued**: inbound messages nobody read are received and
   counted (they are discarded); libzmq has no API for the outbound queue
   (ZMQ_EVENT_PIPES_STATS is draft-only), so outbound loss is inferred: when
   ``term()`` took about the LINGER, messages were waiting for a peer that never
   took them and were dropped when LINGER expired;
3. **bounded LINGER**: each socket is closed with ``min(its LINGER, linger_ms)``
   (-1 counts as infinite);
4. **a deadline**: ``term()`` runs in a daemon worker thread; the caller waits
   at most until ``deadline_s`` and gets a report either way. A context whose
   ``term()`` did not return (a socket still open elsewhere, a socket closed
   earlier with LINGER -1) is left to that thread.

Must run in the thread that uses the sockets (ZeroMQ sockets are not
thread-safe); ``term()`` itself is safe from any thread.

:func:`term_hang_demo` and :func:`isolation_demo` show the failure and the cure
in a child process, with a timeout, because a frozen context cannot be cleaned
up: the child ends with ``os._exit``.
"""

from __future__ import annotations

import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import zmq

__all__ = [
    "HangDemo",
    "IsolationDemo",
    "ShutdownReport",
    "SocketReport",
    "isolation_demo",
    "safe_shutdown",
    "term_hang_demo",
]

_MONITOR_STOPPED = 0x0400
_RECEIVERS = {zmq.SUB, zmq.XSUB, zmq.PULL, zmq.DEALER, zmq.ROUTER, zmq.REP, zmq.REQ, zmq.PAIR, zmq.XPUB}
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class SocketReport:
    """One socket's shutdown: its label and type, LINGER before (ms, -1 = forever) and as
    closed, inbound messages still queued (received and discarded), and any error."""

    name: str
    type: str
    linger_was: int | None
    linger_used: int | None
    unread: int = 0
    error: str = ""


@dataclass
class ShutdownReport:
    """What :func:`safe_shutdown` did, in order, and how long it took (seconds, ms as named).

    ``completed`` is True when ``term()`` returned within the deadline
    (``term_s`` is then its duration). ``outbound_discarded`` is True when
    ``term()`` waited about the longest LINGER used (messages were queued for a
    peer that never took them and were dropped), False when it returned well
    before, None when that cannot be told (LINGER 0 drops without waiting, or
    ``term()`` did not return).
    """

    deadline_s: float
    linger_ms: int
    elapsed_s: float = 0.0
    completed: bool = False
    term_s: float | None = None
    outbound_discarded: bool | None = None
    monitors_stopped: int = 0
    monitor_events_drained: int = 0
    sockets: list[SocketReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unread(self) -> int:
        """Inbound messages discarded, over all sockets."""
        return sum(s.unread for s in self.sockets)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def __str__(self) -> str:
        if self.completed:
            head = f"context terminated in {self.term_s * 1000:.1f} ms (deadline {self.deadline_s:g} s)"
        else:
            head = f"context NOT terminated within the {self.deadline_s:g} s deadline; returned after {self.elapsed_s:.2f} s"
        lines = [head, f"sockets closed: {len(self.sockets)}, monitors stopped: {self.monitors_stopped}, "
                       f"unread inbound messages discarded: {self.unread}"]
        if self.outbound_discarded:
            lines.append("outbound messages were still queued and were discarded when LINGER expired")
        lines.extend(self.notes)
        return "\n".join(lines)


def _socket_type_name(sock: zmq.Socket) -> str:
    try:
        return zmq.SocketType(sock.type).name
    except Exception:
        return "?"


def _stop_monitor(watched: zmq.Socket, reader: zmq.Socket, timeout: float) -> tuple[bool, int]:
    """Drain, disable, read to MONITOR_STOPPED, close the reader. Returns (stopped cleanly, events read)."""
    events = 0

    def drain(until_stopped: bool, wait_s: float) -> bool:
        nonlocal events
        deadline = time.monotonic() + wait_s
        while True:
            remaining = deadline - time.monotonic()
            if not reader.poll(max(0, int(remaining * 1000))):
                return False
            frames = reader.recv_multipart()
            events += 1
            if len(frames[0]) >= 2 and struct.unpack_from("=H", frames[0])[0] == _MONITOR_STOPPED:
                return True
            if not until_stopped and remaining <= 0:
                return False

    stopped = False
    if not reader.closed:
        drain(False, 0.0)  # relieve a full queue first: disable_monitor() would block holding the GIL
        if not watched.closed:
            try:
                watched.disable_monitor()
            except zmq.ZMQError:
                pass
        stopped = drain(True, timeout)
        reader.close(linger=0)
    return stopped, events


def safe_shutdown(context: zmq.Context, sockets: Mapping[str, zmq.Socket] | Iterable[zmq.Socket] | None = None,
                  *, monitors: Mapping[zmq.Socket, zmq.Socket] | Iterable[tuple[zmq.Socket, zmq.Socket]] = (),
                  linger_ms: int = 200, deadline_s: float = 2.0, drain_limit: int = 100_000,
                  monitor_timeout_s: float = 0.5) -> ShutdownReport:
    """Stop monitors, close sockets with a bounded LINGER and terminate ``context`` by a deadline.

    ``sockets`` (a ``{label: socket}`` mapping or an iterable) defaults to every
    open socket pyzmq tracks for ``context``. ``monitors`` pairs a watched socket
    with its monitor reader; readers made by pyzmq's ``get_monitor_socket()`` are
    found by themselves. ``linger_ms`` (>= 0) bounds each socket's LINGER;
    ``deadline_s`` (> 0) bounds the whole call: it returns by then even if
    ``term()`` is still blocked (see :class:`ShutdownReport`). Call from the
    thread that uses the sockets. ``ValueError`` for a negative linger or
    deadline.
    """
    if isinstance(linger_ms, bool) or not isinstance(linger_ms, int) or linger_ms < 0:
        raise ValueError(f"linger_ms must be a whole number of ms >= 0 (a bounded LINGER); got {linger_ms!r}")
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, (int, float)) or deadline_s <= 0:
        raise ValueError(f"deadline_s is in seconds and must be > 0; got {deadline_s!r}")
    start = time.monotonic()
    deadline = start + deadline_s
    report = ShutdownReport(deadline_s=float(deadline_s), linger_ms=linger_ms)

    if sockets is None:
        tracked = getattr(context, "_sockets", None)  # pyzmq keeps a WeakSet of a context's sockets
        found = [s for s in list(tracked or ()) if not s.closed]
        named = {f"{_socket_type_name(s).lower()}{i}": s for i, s in enumerate(found)}
    elif isinstance(sockets, Mapping):
        named = dict(sockets)
    else:
        named = {f"{_socket_type_name(s).lower()}{i}": s for i, s in enumerate(sockets)}

    # 1. monitors, before anything else
    pairs = list(monitors.items()) if isinstance(monitors, Mapping) else list(monitors)
    for sock in named.values():
        reader = getattr(sock, "_monitor_socket", None)  # set by pyzmq's get_monitor_socket()
        if reader is not None and not reader.closed and all(r is not reader for _, r in pairs):
            pairs.append((sock, reader))
    readers = {id(r) for _, r in pairs}
    for watched, reader in pairs:
        remaining = max(0.05, min(monitor_timeout_s, deadline - time.monotonic()))
        stopped, drained = _stop_monitor(watched, reader, remaining)
        report.monitors_stopped += int(stopped)
        report.monitor_events_drained += drained
        if not stopped:
            report.notes.append("a monitor reader was closed without MONITOR_STOPPED (timed out)")

    # 2 and 3. count unread inbound messages, close with a bounded LINGER
    max_linger = 0
    for name, sock in named.items():
        if id(sock) in readers:
            continue
        entry = SocketReport(name, _socket_type_name(sock), None, None)
        report.sockets.append(entry)
        if sock.closed:
            entry.error = "already closed"
            continue
        try:
            if sock.type in _RECEIVERS:
                for _ in range(drain_limit):
                    sock.recv_multipart(zmq.NOBLOCK)
                    entry.unread += 1
        except zmq.ZMQError:  # Again: nothing more; EFSM: a REQ/REP not in a receiving state
            pass
        try:
            entry.linger_was = int(sock.getsockopt(zmq.LINGER))
            used = linger_ms if entry.linger_was < 0 else min(entry.linger_was, linger_ms)
            entry.linger_used = used
            max_linger = max(max_linger, used)
            sock.close(linger=used)
        except zmq.ZMQError as exc:
            entry.error = exc.strerror
            try:
                sock.close(linger=0)
            except zmq.ZMQError:
                pass

    # 4. term() in a worker thread, waited for until the deadline
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def term() -> None:
        t0 = time.monotonic()
        try:
            context.term()
        except Exception as exc:  # reported, never raised into a thread
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        outcome["term_s"] = time.monotonic() - t0
        done.set()

    worker = threading.Thread(target=term, name="zlab-term", daemon=True)
    worker.start()
    report.completed = done.wait(max(0.0, deadline - time.monotonic()))
    report.elapsed_s = time.monotonic() - start
    if report.completed:
        report.term_s = outcome["term_s"]
        if "error" in outcome:
            report.notes.append(f"term() raised {outcome['error']}")
        if max_linger > 0:
            report.outbound_discarded = report.term_s >= 0.9 * max_linger / 1000
    else:
        report.notes.append(
            f"term() was still blocked at the {deadline_s:g} s deadline: some socket of this context is still "
            "open, or was closed earlier with LINGER -1 and a message for a peer that is gone; the context is "
            "left to a daemon thread")
    return report


# -- demonstrations, each in a child process ---------------------------------------------
@dataclass
class HangDemo:
    """Result of :func:`term_hang_demo`: did the child's shutdown hang, how long it ran (s),
    and the child's :class:`ShutdownReport` as a dict (None for the plain ``term()``)."""

    cure: str
    hung: bool
    elapsed_s: float
    report: dict[str, Any] | None = None
    stderr: str = ""


@dataclass
class IsolationDemo:
    """Result of :func:`isolation_demo`: whether the victim context froze, and how the critical
    context in the same process fared meanwhile (round trips, median and worst latency in ms)."""

    freeze: str
    victim_frozen: bool
    victim_detail: str
    critical_round_trips: int
    critical_median_ms: float
    critical_max_ms: float
    stderr: str = ""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = _PACKAGE_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _run_child(args: dict[str, Any], timeout_s: float, hang_after_s: float | None = None) -> tuple[list[str], bool, str]:
    """Run ``_child_main(args)`` in ``python -c``; return (stdout lines, killed for hanging, stderr).

    With ``hang_after_s``, the child is killed if it has not exited that long after it printed
    ``terminating`` (so a slow start on a loaded machine is not mistaken for a hang).
    """
    # The child must never outlive this process (a child stuck in term() would stay forever): it asks
    # for SIGKILL on our death (PR_SET_PDEATHSIG) before importing anything, then checks its parent is
    # still us to close the race; _child_main adds a getppid() watchdog. PDEATHSIG fires when the
    # spawning *thread* exits: this thread waits for the child, so it outlives it.
    args = {**args, "parent": os.getpid()}
    code = ("import ctypes, os, signal\n"
            "try:\n"
            "    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG\n"
            "except (OSError, AttributeError):\n"
            "    pass\n"
            f"if os.getppid() != {os.getpid()}:\n"
            "    os._exit(3)\n"
            f"from zlab.shutdown import _child_main; _child_main({json.dumps(args)!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, close_fds=True, env=_child_env(), cwd=_PACKAGE_DIR)
    lines: list[str] = []
    buf = b""
    killed = False
    deadline = time.monotonic() + timeout_s
    hang_deadline: float | None = None
    fd = proc.stdout.fileno()
    try:
        while True:
            limit = deadline if hang_deadline is None else min(deadline, hang_deadline)
            remaining = limit - time.monotonic()
            if remaining <= 0:
                proc.kill()
                killed = True
                break
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace")
                lines.append(line)
                if line == "terminating" and hang_after_s is not None:
                    hang_deadline = time.monotonic() + hang_after_s
    finally:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill did not take
            proc.kill()
            proc.wait(5)
        stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    return lines, killed, stderr


def _last_json(lines: list[str]) -> dict[str, Any] | None:
    for line in reversed(lines):
        if line.startswith("{"):
            return json.loads(line)
    return None


def term_hang_demo(cure: str = "safe_shutdown", *, linger_ms: int = 200, deadline_s: float = 1.0,
                   hang_after_s: float = 2.0, timeout_s: float = 30.0) -> HangDemo:
    """The frozen ``term()``: a PUSH with the default LINGER -1 queues a message for a peer that is gone.

    In a child process. ``cure`` is ``"none"`` (close, then plain ``ctx.term()``:
    it hangs; the child is killed ``hang_after_s`` s after it started
    terminating), ``"safe_shutdown"`` (:func:`safe_shutdown` with ``linger_ms`` and
    ``deadline_s``: returns in about ``linger_ms``) or ``"closed-first"`` (the
    socket was already closed with LINGER -1, so no LINGER can be bounded any
    more: :func:`safe_shutdown` still returns at its deadline, and says that
    ``term()`` did not finish). ``timeout_s`` bounds the child's whole life.
    """
    if cure not in ("none", "safe_shutdown", "closed-first"):
        raise ValueError(f"cure must be 'none', 'safe_shutdown' or 'closed-first'; got {cure!r}")
    args = {"demo": "term", "cure": cure, "linger_ms": linger_ms, "deadline_s": deadline_s}
    lines, killed, stderr = _run_child(args, timeout_s, hang_after_s)
    data = _last_json(lines) or {}
    return HangDemo(cure, killed, float(data.get("elapsed_s", hang_after_s if killed else 0.0)),
                    data.get("report"), stderr[-2000:])


def isolation_demo(freeze: str = "monitor", *, round_trips: int = 20, timeout_s: float = 30.0) -> IsolationDemo:
    """A critical socket pair in its own context keeps working while another context is frozen.

    In a child process (the frozen context can never be cleaned up). ``freeze``
    is ``"monitor"`` (a monitor nobody reads fills up and blocks the victim
    context's I/O thread: its own traffic stops) or ``"linger"`` (the victim's
    ``term()`` hangs on a LINGER -1 message). Meanwhile a REQ/REP pair in a second
    context does ``round_trips`` round trips over loopback TCP.
    """
    if freeze not in ("monitor", "linger"):
        raise ValueError(f"freeze must be 'monitor' or 'linger'; got {freeze!r}")
    if not 1 <= round_trips <= 1000:
        raise ValueError(f"round_trips must be in 1..1000; got {round_trips}")
    lines, killed, stderr = _run_child({"demo": "isolation", "freeze": freeze, "round_trips": round_trips},
                                       timeout_s)
    data = _last_json(lines)
    if data is None:
        raise TimeoutError(f"the isolation demo child {'was killed after' if killed else 'ended before'} "
                           f"{timeout_s:g} s without a result; stderr: {stderr[-500:]}")
    return IsolationDemo(freeze, data["victim_frozen"], data["victim_detail"], data["round_trips"],
                         data["median_ms"], data["max_ms"], stderr[-2000:])


# -- the child side ------------------------------------------------------------------------
_RESERVED: list[socket.socket] = []


def _dead_endpoint() -> str:
    """A loopback endpoint whose connects are refused: a port bound (so nobody else takes it) but
    never listening. (Closing a ZeroMQ listener is asynchronous: its port can still accept for a while.)"""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    _RESERVED.append(holder)
    return f"tcp://127.0.0.1:{holder.getsockname()[1]}"


def _queued_for_dead_peer(ctx: zmq.Context) -> zmq.Socket:
    """A PUSH (LINGER -1, the default) holding a message for a peer that is gone.

    Waits for the first CONNECT_RETRIED first: closed before its first connect
    attempt failed, the socket lets ``term()`` finish (measured: 1-3 ms), once
    libzmq is retrying, ``term()`` waits forever.
    """
    push = ctx.socket(zmq.PUSH)
    reader = push.get_monitor_socket(zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_MONITOR_STOPPED)
    push.connect(_dead_endpoint())
    push.send(b"queued for a peer that is gone")  # sits in the pipe (IMMEDIATE 0)
    if not reader.poll(5000):
        raise TimeoutError("no CONNECT_RETRIED within 5 s from a connect to a closed loopback port")
    _stop_monitor(push, reader, 1.0)
    return push


def _emit(obj: Any) -> None:
    sys.stdout.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
    sys.stdout.flush()


def _watch_parent(parent: int, interval_s: float = 0.2) -> None:  # pragma: no cover - in a child process
    """Exit as soon as ``parent`` is gone (we are re-parented): a second guard besides PDEATHSIG, for
    systems without prctl. A daemon thread; ``os._exit`` because the main thread may be stuck in term()."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(3)

    threading.Thread(target=watch, name="zlab-parent-watchdog", daemon=True).start()


def _child_main(raw: str) -> None:  # pragma: no cover - runs in a child process
    args = json.loads(raw)
    if "parent" in args:
        _watch_parent(int(args["parent"]))
    try:
        if args["demo"] == "term":
            _child_term(args)
        else:
            _child_isolation(args)
    finally:
        sys.stdout.flush()
        os._exit(0)  # a frozen context cannot be cleaned up; do not try at exit


def _child_term(args: dict[str, Any]) -> None:  # pragma: no cover - runs in a child process
    ctx = zmq.Context()
    push = _queued_for_dead_peer(ctx)
    cure = args["cure"]
    if cure in ("none", "closed-first"):
        push.close()
    _emit("terminating")
    t0 = time.monotonic()
    if cure == "none":
        ctx.term()  # hangs
        _emit({"elapsed_s": time.monotonic() - t0})
        return
    report = safe_shutdown(ctx, {"push": push} if cure == "safe_shutdown" else {},
                           linger_ms=args["linger_ms"], deadline_s=args["deadline_s"])
    _emit({"elapsed_s": time.monotonic() - t0, "report": report.to_dict()})


def _child_isolation(args: dict[str, Any]) -> None:  # pragma: no cover - runs in a child process
    victim = zmq.Context()
    detail = ""
    if args["freeze"] == "linger":
        push = _queued_for_dead_peer(victim)
        push.close()  # LINGER -1
        term = threading.Thread(target=victim.term, daemon=True)
        term.start()
        term.join(0.3)
        frozen = term.is_alive()
        detail = "the victim's term() is blocked by a LINGER -1 message" if frozen else "term() returned"
    else:
        pull = victim.socket(zmq.PULL)
        pull.bind("tcp://127.0.0.1:*")
        feed = victim.socket(zmq.PUSH)
        feed.connect(pull.last_endpoint.decode())
        feed.send(b"before")
        before_ok = bool(pull.poll(2000)) and pull.recv() == b"before"
        dead = _dead_endpoint()
        noisy = victim.socket(zmq.DEALER)
        noisy.setsockopt(zmq.RECONNECT_IVL, 1)
        noisy.get_monitor_socket()  # default RCVHWM, and nobody will read it
        for _ in range(20):  # each connect loops CONNECT_DELAYED/CLOSED/CONNECT_RETRIED every ~1-2 ms
            noisy.connect(dead)
        frozen, deadline, sent = False, time.monotonic() + 10.0, 0
        while before_ok and not frozen and time.monotonic() < deadline:
            feed.send(b"after")  # queued; once the victim's I/O thread is stuck it never travels
            sent += 1
            frozen = not pull.poll(500)
            if not frozen:
                pull.recv()
                time.sleep(0.01)  # pacing: a bounded trickle, not a flood
        detail = (f"the victim's own PUSH->PULL message #{sent} did not arrive in 500 ms: its I/O thread is "
                  "blocked sending to a full monitor" if frozen else "the victim still delivered")
        # Do not touch `noisy` again: bind() or disable_monitor() would block holding the GIL.
    critical = zmq.Context()
    rep = critical.socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    rep.bind("tcp://127.0.0.1:*")
    req = critical.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(rep.last_endpoint.decode())
    latencies = []
    for i in range(args["round_trips"]):
        t0 = time.monotonic()
        req.send(b"ping %d" % i)
        if not rep.poll(2000):
            break
        rep.send(rep.recv())
        if not req.poll(2000):
            break
        req.recv()
        latencies.append((time.monotonic() - t0) * 1000)
    _emit({"victim_frozen": frozen, "victim_detail": detail, "round_trips": len(latencies),
           "median_ms": round(statistics.median(latencies), 3) if latencies else -1.0,
           "max_ms": round(max(latencies), 3) if latencies else -1.0})
