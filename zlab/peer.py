"""Peers: a real ZeroMQ socket in a child Python process, so that faults are real.

A thread cannot crash or hang on its own without taking the notebook with it;
a process can. ``lab.peer("SUB", "sub0", bind="tcp")`` starts
``python -m zlab._peer_child`` (no shell) with one socket, monitored from birth. The
child streams its monitor events back over its stdout pipe, one JSON line per
event stamped with ``time.monotonic()`` -- one clock for every process on
Linux -- and the parent files them in the Lab's EventLog under the peer's
name, so one timeline shows both ends of a connection.

Faults, each marked in the log (``FAULT kill sub0``) before it is applied:

* :meth:`Peer.kill` -- SIGKILL: the kernel closes the peer's TCP connections
  (the "peer crashed" case; the other side sees DISCONNECTED within ms).
* :meth:`Peer.pause` / :meth:`Peer.resume` -- SIGSTOP / SIGCONT: the process
  hangs with its connections open; no FIN, no RST. Only heartbeats notice.
  Events the peer would have sent while paused arrive after resume.
* :meth:`Peer.restart` -- a new process, same kind, options and endpoint
  (a bind peer re-binds the same concrete port).

Children never outlive the Lab (HAZARDS.md, "Child-process peers"): they are
forked from one long-lived spawner thread per Lab and set
``PR_SET_PDEATHSIG = SIGKILL`` (it fires when the *spawning thread* exits, and
kills even a stopped process), check ``getppid()`` against the parent they
were given (closing the race with the parent's death), poll it every 0.1 s,
and exit at end-of-file on stdin. Pipes are close-on-exec and ``close_fds`` is
on, so siblings never hold each other's pipes; stdout and stderr go to a pipe
the parent reads to end-of-file, never to the notebook.

Commands travel the other way as JSON lines on the child's stdin: ``publish``,
``stats``, ``close``; replies come back on its stdout.

Measured (pyzmq 27.3, libzmq 4.3.5, 2 cores, 8 runs): a peer starts in
120-400 ms (Python start-up plus ``import zlab``); kill -> the connecting PUB's
DISCONNECTED 1.2-2.8 ms later, then 9-11 CLOSED retry cycles in 1.5 s; pause
under heartbeat_ivl 100 / heartbeat_timeout 300 ms -> DISCONNECTED 384-399 ms
later; restart -> the original socket's second HANDSHAKE_SUCCEEDED 140-510 ms
after the marker; ``lab.close()`` with two peers and a proxy: 25-40 ms. A
SIGKILLed parent's peers (one of them stopped) are dead within 50 ms.
"""

from __future__ import annotations

import collections
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from .events import Event, event_name
from .options import socket_type, socket_type_name, validate_options
from ._peer_child import _enc, _line

if TYPE_CHECKING:
    from .lab import Lab

__all__ = ["PUBLISH_KINDS", "Peer", "start_peer"]

#: Socket kinds :meth:`Peer.publish` can send from (a REP or ROUTER peer echoes instead).
PUBLISH_KINDS = ("PUB", "XPUB", "PUSH", "DEALER", "PAIR")
#: Longest a bounded publish may run, in ms (count * interval_ms).
MAX_PUBLISH_MS = 600_000
MAX_PUBLISH_COUNT = 1_000_000

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_READY_TIMEOUT_S = 15.0  # python start + import zmq is ~80 ms idle, seconds on a loaded machine

_request_ids = itertools.count()


# ---------------------------------------------------------------------------------------------
# Parent side
class _Job:
    """One fork request handed to the spawner thread."""

    def __init__(self, argv: list[str], kwargs: dict[str, Any]):
        self.argv, self.kwargs = argv, kwargs
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.error: BaseException | None = None
        self.abandoned = False


def _kill_and_reap(proc: subprocess.Popen) -> None:
    """SIGKILL a child nobody will own, wait for it (no zombie) and close its pipes (no fd leak)."""
    proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass


class _Spawner:
    """One long-lived thread that forks every child of a Lab.

    ``PR_SET_PDEATHSIG`` fires when the thread that forked the child exits, not
    the process: forking from short-lived worker threads would kill peers at
    random. This thread lives until the Lab closes, after its peers are gone.
    """

    def __init__(self, label: str):
        self._requests: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"zlab-spawner-{label}", daemon=True)
        self._thread.start()

    def popen(self, argv: list[str], timeout: float = 30.0, **kwargs: Any) -> subprocess.Popen:
        """Fork ``argv`` on the spawner thread; returns the Popen. ``TimeoutError`` if that thread
        is stuck past ``timeout`` s (a child it starts later is killed at once)."""
        job = _Job(argv, kwargs)
        with self._cond:
            if self._closed:
                raise RuntimeError("this Lab's peers are closed; open a new Lab")
            self._requests.append(job)
            self._cond.notify()
        try:
            if not job.done.wait(timeout):
                raise TimeoutError(f"could not start a peer process within {timeout:g} s (machine overloaded?)")
        except BaseException:  # timed out, or interrupted (Ctrl-C): a child started now or later must not stay
            with job.lock:
                job.abandoned = True
                proc = job.proc
            if proc is not None:
                _kill_and_reap(proc)
            raise
        if job.error is not None:
            raise job.error
        assert job.proc is not None
        return job.proc

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._requests and not self._closed:
                    self._cond.wait()
                if not self._requests:
                    return
                job = self._requests.popleft()
            try:
                proc = subprocess.Popen(job.argv, **job.kwargs)
            except BaseException as exc:  # report to the caller, keep serving
                job.error = exc
                job.done.set()
                continue
            with job.lock:
                job.proc = proc
                abandoned = job.abandoned
            if abandoned:
                _kill_and_reap(proc)
            job.done.set()

    def close(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


class PeerManager:
    """The peers of one Lab: their spawner thread, their names, and closing them together.

    Adopted by the Lab as a ``"peer"`` helper, so ``lab.close()`` closes every
    peer (in parallel, about 10-50 ms) after the proxies and before the sockets.
    It never refers to the Lab (only to its log), so a forgotten Lab is still
    garbage-collected and its finalizer still closes the peers.
    """

    _by_lab: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    _lock = threading.Lock()

    def __init__(self, lab: Lab):
        self.log = lab.log  # not the Lab: a helper must not keep its Lab alive
        self.spawner = _Spawner(str(lab.id))
        self.peers: dict[str, Peer] = {}
        self.numbers = itertools.count()  # default names: sub-peer0, pub-peer1...
        self.closed = False
        self.lock = threading.RLock()

    @classmethod
    def of(cls, lab: Lab) -> PeerManager:
        """The Lab's manager, made and adopted on first use."""
        with cls._lock:
            manager = cls._by_lab.get(lab)
            if manager is None or manager.closed:
                manager = cls(lab)
                lab.adopt(manager, "peer")
                cls._by_lab[lab] = manager
            return manager

    def close(self, timeout: float = 1.0) -> None:
        """Close every peer (SIGCONT if paused, ask it to exit, SIGKILL after ``timeout`` s),
        reap every child, then stop the spawner thread. Idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            peers = list(self.peers.values())
        for peer in peers:
            peer._ask_to_exit()
        deadline = time.monotonic() + timeout
        for peer in peers:
            peer._finish(deadline)
        self.spawner.close()

    def __repr__(self) -> str:
        return f"<PeerManager {len(self.peers)} peers{' closed' if self.closed else ''}>"


class _Pending:
    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: dict[str, Any] | None = None


class _Run:
    """One child process of a peer and what its reader thread learnt from it."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.pid = proc.pid
        self.stdout = io.BufferedReader(proc.stdout)  # type: ignore[arg-type]
        self.ready = threading.Event()
        self.info: dict[str, Any] = {}
        self.error: str = ""
        self.tail: collections.deque[str] = collections.deque(maxlen=20)
        self.pending: dict[int, _Pending] = {}
        self.last_stats: dict[str, Any] | None = None
        self.eof = threading.Event()
        self.expected_exit = False
        self.reader: threading.Thread | None = None
        self.write_lock = threading.Lock()


class Peer:
    """A ZeroMQ socket in a child process, with fault controls. Make one with :meth:`Lab.peer`.

    Attributes: ``name`` (its label in the EventLog), ``kind`` (``"SUB"``...),
    ``endpoint`` (the endpoint it bound -- port filled in -- or connected to),
    ``pid`` (of the current child), ``alive``, ``paused``, ``options``.
    Control methods must not be called from several threads at once.
    """

    def __init__(self, manager: PeerManager, kind: str, name: str, *, bind: str | None, connect: str | None,
                 options: dict[str, Any], echo: bool, ready_timeout: float = _READY_TIMEOUT_S):
        self._manager = manager
        self._log = manager.log
        self.kind = kind
        self.name = name
        self.options = dict(options)
        self.echo = echo
        self._bind = bind
        self._connect = connect
        self.endpoint = bind or connect or ""
        self._ready_timeout = ready_timeout
        self._run: _Run | None = None
        self.paused = False
        self.closed = False
        self.restarts = 0
        self._lock = threading.RLock()

    # -- life cycle --------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {
            "v": 1,
            "name": self.name,
            "kind": self.kind,
            "bind": self._bind,
            "connect": self._connect,
            "options": [[k, _enc(v)] for k, v in self.options.items()],
            "echo": self.echo,
            # A concrete port just released (by a restart, or a socket closed a moment ago)
            # may meet EADDRINUSE for a while: retry 1 s at first start (as Lab.bind), 3 s on restart.
            "bind_retry_s": 0.0 if self._bind is None or self._bind.endswith(":*") else 3.0 if self.restarts else 1.0,
        }

    def _start(self) -> None:
        """Spawn the child, send its configuration, wait until its socket is bound/connected."""
        env = dict(os.environ)
        env["PYTHONPATH"] = _PACKAGE_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        argv = [sys.executable, "-m", "zlab._peer_child",
                "--parent", str(os.getpid()), "--name", self.name]
        proc = self._manager.spawner.popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # tracebacks reach the parent, never the notebook
            close_fds=True,
            cwd=_PACKAGE_DIR,  # `-m` puts the cwd first on sys.path: make it ours
            env=env,
            bufsize=0,
        )
        run = _Run(proc)
        run.reader = threading.Thread(target=self._read, args=(run,), name=f"zlab-peer-{self.name}", daemon=True)
        run.reader.start()
        self._run = run
        self.paused = False
        try:
            self._write(run, _line(self._config()))
        except OSError:
            pass  # died at once: reported below
        if not run.ready.wait(self._ready_timeout):
            self._reap(run, time.monotonic())
            raise TimeoutError(
                f"peer {self.name!r} did not report ready within {self._ready_timeout:g} s; "
                f"its output: {' | '.join(run.tail) or 'none'}"
            )
        if not run.info:
            self._reap(run, time.monotonic() + 1.0)
            message = run.error or f"exited with status {proc.returncode}: {' | '.join(run.tail) or 'no output'}"
            if run.error.startswith("cannot bind") or run.error.startswith("cannot connect"):
                raise ValueError(f"peer {self.name!r}: {message}")
            raise RuntimeError(f"peer {self.name!r} failed to start: {message}")
        self.endpoint = run.info["endpoint"]
        if self._bind is not None:
            self._bind = self.endpoint  # a restart re-binds the same concrete port

    def _read(self, run: _Run) -> None:
        """The reader thread: the child's stdout, line by line, to end-of-file."""
        log, name, t0 = self._log, self.name, self._log.t0
        try:
            for raw in run.stdout:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    run.tail.append(raw.decode("utf-8", "replace").rstrip())
                    continue
                if not isinstance(msg, dict):
                    continue
                if "e" in msg:
                    mono, number, value, endpoint = msg["e"]
                    log.append(Event(mono - t0, name, event_name(number), value, endpoint))
                elif "r" in msg:
                    pending = run.pending.pop(msg["r"], None)
                    if pending is not None:
                        pending.reply = msg
                        pending.done.set()
                elif "ready" in msg:
                    run.info = msg["ready"]
                    run.ready.set()
                elif "bye" in msg:
                    run.last_stats = msg["bye"]
                elif "error" in msg:
                    run.error = str(msg["error"])
        except (OSError, ValueError):
            pass
        finally:
            run.eof.set()
            run.ready.set()
            for pending in list(run.pending.values()):
                pending.done.set()
            try:
                run.stdout.close()
            except OSError:
                pass
            if not run.expected_exit and not self.closed and run.info:
                try:  # end-of-file comes a moment before the exit: reap it, then say so
                    code: int | None = run.proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    code = None
                self._log.mark("NOTE", f"peer {name} exited by itself (status {code})", socket=name)

    def _write(self, run: _Run, data: bytes) -> None:
        with run.write_lock:
            stdin = run.proc.stdin
            if stdin is None or stdin.closed:
                raise BrokenPipeError("stdin closed")
            view = memoryview(data)
            while view:
                n = stdin.write(view)
                view = view[n or 0:]

    def _ask_to_exit(self) -> None:
        """First half of a graceful close: SIGCONT if paused, then the close command."""
        run = self._run
        self.closed = True
        if run is None or run.proc.poll() is not None:
            return
        run.expected_exit = True
        if self.paused:
            self._signal(run, signal.SIGCONT)  # a stopped child cannot read its stdin
            self.paused = False
        try:
            self._write(run, _line({"cmd": "close"}))
        except OSError:
            pass

    def _finish(self, deadline: float) -> None:
        """Second half: wait until ``deadline``, SIGKILL what is left, reap, read to EOF."""
        run = self._run
        if run is not None:
            self._reap(run, deadline)
        self._manager.peers.pop(self.name, None)

    def _reap(self, run: _Run, deadline: float) -> None:
        run.expected_exit = True
        proc = run.proc
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._signal(run, signal.SIGCONT)
            proc.kill()
            proc.wait(2.0)  # SIGKILL ends even a stopped process at once
        if run.reader is not None and run.reader is not threading.current_thread():
            run.reader.join(2.0)  # end-of-file follows the exit
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def _signal(self, run: _Run, sig: int) -> None:
        if run.proc.poll() is None:  # not yet reaped: the pid is still ours
            try:
                os.kill(run.pid, sig)
            except ProcessLookupError:
                pass

    # -- state -------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The current child's process id (None before start)."""
        return self._run.pid if self._run else None

    @property
    def alive(self) -> bool:
        """True while the current child process runs (a paused one is alive)."""
        return self._run is not None and self._run.proc.poll() is None

    def _check_running(self, action: str) -> _Run:
        run = self._run
        if self.closed:
            raise RuntimeError(f"peer {self.name!r} is closed; start a new one with lab.peer(...)")
        if run is None or run.proc.poll() is not None:
            raise RuntimeError(f"cannot {action} peer {self.name!r}: it is not running (killed?); call restart() first")
        return run

    def _mark(self, text: str) -> None:
        self._log.mark("FAULT", text, socket=self.name, endpoint=self.endpoint)

    # -- faults ------------------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL the child: the kernel closes its connections, as in a crash.

        Marks ``FAULT kill NAME`` first, then kills and reaps. The other side
        sees DISCONNECTED within a few ms (measured, BRIEF.md). Raises
        ``RuntimeError`` if the peer is not running.
        """
        with self._lock:
            run = self._check_running("kill")
            self._mark(f"kill {self.name}")
            run.expected_exit = True
            run.proc.kill()
            self.paused = False
            self._reap(run, time.monotonic() + 2.0)

    def pause(self) -> None:
        """SIGSTOP the child: it hangs with its connections open (no FIN, no RST).

        Returns once the kernel reports the process stopped (``/proc/PID/stat``
        state ``T``), so a detection time measured from the ``FAULT pause NAME``
        marker starts when the hang did. Only heartbeats reveal it
        (HEARTBEAT_TIMEOUT to TIMEOUT + IVL later, measured); TCP keepalive does
        not on loopback. ``RuntimeError`` if not running or already paused.
        """
        with self._lock:
            run = self._check_running("pause")
            if self.paused:
                raise RuntimeError(f"peer {self.name!r} is already paused; resume() it first")
            self._mark(f"pause {self.name}")
            os.kill(run.pid, signal.SIGSTOP)
            self.paused = True
            deadline = time.monotonic() + 2.0
            while _proc_state(run.pid) not in ("T", "t", "") and time.monotonic() < deadline:
                time.sleep(0.001)

    def resume(self) -> None:
        """SIGCONT a paused child; what it would have done meanwhile happens now. Marks ``FAULT resume NAME``."""
        with self._lock:
            run = self._check_running("resume")
            if not self.paused:
                raise RuntimeError(f"peer {self.name!r} is not paused")
            self._mark(f"resume {self.name}")
            os.kill(run.pid, signal.SIGCONT)
            self.paused = False

    def restart(self) -> None:
        """Start a new child with the same kind, options and endpoint (SIGKILL the old one if alive).

        A bind peer re-binds the same concrete port (EADDRINUSE is retried for
        3 s). Marks ``FAULT restart NAME``. The new process numbers its
        messages from 1 again. Raises ``ValueError`` if the port stays taken.
        """
        with self._lock:
            if self.closed:
                raise RuntimeError(f"peer {self.name!r} is closed; start a new one with lab.peer(...)")
            self._mark(f"restart {self.name}")
            run = self._run
            if run is not None and run.proc.poll() is None:
                run.expected_exit = True
                run.proc.kill()
            if run is not None:
                self._reap(run, time.monotonic() + 2.0)
            self.restarts += 1
            self._start()

    def close(self, timeout: float = 1.0) -> None:
        """Graceful exit: SIGCONT if paused, ask the child to close its socket and exit;
        SIGKILL after ``timeout`` s. Idempotent; ``lab.close()`` closes every peer this way."""
        with self._lock:
            if self.closed and (self._run is None or self._run.eof.is_set()):
                self._manager.peers.pop(self.name, None)
                return
            self._ask_to_exit()
            self._finish(time.monotonic() + timeout)

    # -- traffic -----------------------------------------------------------------------------
    def _request(self, cmd: str, timeout: float, **fields: Any) -> dict[str, Any]:
        run = self._check_running(cmd)
        if self.paused:
            raise RuntimeError(f"peer {self.name!r} is paused (SIGSTOP) and cannot answer; resume() it first")
        pending = _Pending()
        rid = next(_request_ids)
        run.pending[rid] = pending
        try:
            self._write(run, _line({"id": rid, "cmd": cmd, **fields}))
        except OSError:
            run.pending.pop(rid, None)
            raise RuntimeError(f"peer {self.name!r} is gone (its stdin is closed)") from None
        if not pending.done.wait(timeout):
            run.pending.pop(rid, None)
            raise TimeoutError(f"peer {self.name!r} did not answer {cmd!r} within {timeout:g} s")
        reply = pending.reply
        if reply is None:
            raise RuntimeError(f"peer {self.name!r} exited before answering {cmd!r}")
        if not reply.get("ok"):
            raise ValueError(f"peer {self.name!r}: {reply.get('error')}")
        return reply.get("v") or {}

    def publish(self, count: int, interval_ms: float = 0, payload: bytes = b"msg", *,
                wait: bool = False, timeout: float | None = None) -> dict[str, Any]:
        """Send ``count`` messages, one every ``interval_ms`` ms, from the child's socket.

        Each message is one frame ``payload|SEQ`` (SEQ counts from 1 per child
        process), so a receiver can count gaps. Bounded: ``count`` <= 1,000,000
        and ``count * interval_ms`` <= 600,000 ms. Sends never block (NOBLOCK):
        a refused send is counted in ``dropped``. Only for PUB, XPUB, PUSH,
        DEALER, PAIR peers. Returns at once with ``{"queued": count}``; with
        ``wait=True`` returns the stats once every message was handed to libzmq
        (``timeout`` defaults to the schedule plus 5 s).
        """
        if self.kind not in PUBLISH_KINDS:
            raise ValueError(f"a {self.kind} peer cannot publish; publishing kinds are {', '.join(PUBLISH_KINDS)}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PUBLISH_COUNT:
            raise ValueError(f"count must be a whole number in 1..{MAX_PUBLISH_COUNT}; got {count!r}")
        if not isinstance(interval_ms, (int, float)) or interval_ms < 0 or count * interval_ms > MAX_PUBLISH_MS:
            raise ValueError(
                f"interval_ms must be >= 0 ms with count * interval_ms <= {MAX_PUBLISH_MS} ms; got {interval_ms!r}"
            )
        if isinstance(payload, str):
            payload = payload.encode()
        if not isinstance(payload, (bytes, bytearray)):
            raise ValueError(f"payload must be bytes; got {type(payload).__name__}")
        reply = self._request("publish", 2.0, count=count, interval_ms=float(interval_ms), payload=bytes(payload).hex())
        if not wait:
            return reply
        limit = timeout if timeout is not None else count * interval_ms / 1000 + 5.0
        deadline = time.monotonic() + limit
        while True:
            stats = self.stats()
            if stats["publishing"] == 0:
                return stats
            if time.monotonic() >= deadline:
                raise TimeoutError(f"peer {self.name!r} still had {stats['publishing']} messages to send after {limit:g} s")
            time.sleep(min(0.05, max(0.001, interval_ms / 1000)))

    def stats(self, timeout: float = 2.0) -> dict[str, Any]:
        """Counters of the current child: ``received``, ``sent``, ``dropped`` (sends refused),
        ``last_seq`` (sequence number of the last message received, or None),
        ``lost`` (gaps in received sequence numbers), ``publishing`` (messages
        still to send), ``pid``, ``kind``. ``RuntimeError`` if the peer is paused
        or not running; ``TimeoutError`` after ``timeout`` s."""
        return self._request("stats", timeout)

    @property
    def last_stats(self) -> dict[str, Any] | None:
        """The counters the child reported as it closed gracefully (None if killed)."""
        return self._run.last_stats if self._run else None

    @property
    def output(self) -> list[str]:
        """The last lines the child wrote that were not protocol (warnings, tracebacks)."""
        return list(self._run.tail) if self._run else []

    def __repr__(self) -> str:
        state = "closed" if self.closed else "paused" if self.paused else "alive" if self.alive else "dead"
        return f"<zlab.Peer {self.name!r} {self.kind} {self.endpoint} pid={self.pid} {state}>"


def _proc_state(pid: int) -> str:
    """The one-letter state of a process (``R``, ``S``, ``T`` stopped, ``Z``...), ``""`` if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return ""
    return data.rsplit(b")", 1)[1].split()[0].decode()


def start_peer(lab: Lab, kind: str | int, name: str | None = None, *, bind: str | None = None,
               connect: Any = None, subscribe: bytes | str | None = None, echo: bool = True,
               ready_timeout: float = _READY_TIMEOUT_S, **options: Any) -> Peer:
    """Start a peer of ``lab`` (see :meth:`zlab.Lab.peer`); returns once its socket is bound or connected."""
    lab._check_open()
    stype = socket_type(kind)
    kind_name = socket_type_name(stype)
    if (bind is None) == (connect is None):
        raise ValueError("a peer needs exactly one of bind=... (e.g. 'tcp') or connect=ENDPOINT")
    if connect is not None and not isinstance(connect, str):
        connect = getattr(connect, "endpoint", connect)  # a Peer or a Proxy
        if not isinstance(connect, str):
            raise ValueError(f"connect takes an endpoint string, a Peer or a Proxy; got {type(connect).__name__}")
    if bind in ("tcp", "ipc"):
        bind = lab.new_endpoint(bind)
    for endpoint in (bind, connect):
        if endpoint is not None and (endpoint == "inproc" or endpoint.startswith("inproc://")):
            raise ValueError("inproc endpoints live inside one process; a peer needs tcp or ipc")
    opts = validate_options(options)
    opts.setdefault("linger", 0)
    if subscribe is not None and kind_name != "SUB":
        raise ValueError(f"subscribe=... is for SUB peers; this one is {kind_name}")
    if kind_name == "SUB":
        sub = b"" if subscribe is None else subscribe
        opts["subscribe"] = sub.encode() if isinstance(sub, str) else bytes(sub)
    manager = PeerManager.of(lab)
    with manager.lock:
        if name is None:
            while True:
                name = f"{kind_name.lower()}-peer{next(manager.numbers)}"
                if name not in manager.peers and name not in lab.sockets:
                    break
        elif not isinstance(name, str) or not name:
            raise ValueError(f"a peer name must be a non-empty string; got {name!r}")
        elif name in manager.peers or name in lab.sockets:
            raise ValueError(f"the name {name!r} is already used in this Lab; pick another")
        peer = Peer(manager, kind_name, name, bind=bind, connect=connect, options=opts, echo=echo,
                    ready_timeout=ready_timeout)
        manager.peers[name] = peer
    try:
        peer._start()
    except BaseException:  # a failed start, or Ctrl-C while waiting for the child: reap what was started
        peer.closed = True
        manager.peers.pop(name, None)
        if peer._run is not None:
            peer._reap(peer._run, time.monotonic())
        raise
    return peer


