"""Best practices as code: a retry cap that gives up on a dead endpoint, and recommended options.

The design question
-------------------
A ZeroMQ socket is not thread-safe, and ``disconnect()`` does not finish when
it returns: libzmq terminates the endpoint's pipe with a handshake between the
socket and its session in the I/O thread, and the socket's half of that
handshake (processing ``pipe_term_ack``) runs only when *the socket's* thread
next calls into libzmq. Measured here (libzmq 4.3.5): a PUB retrying a dead
endpoint keeps emitting CONNECT_RETRIED every 100-200 ms (reconnect_ivl plus
jitter) after ``disconnect()`` returned, for as long as nobody uses the socket
again -- even when ``getsockopt(EVENTS)`` was called right after it, too early;
one ``getsockopt(EVENTS)`` once the acknowledgement arrived (~0.15 ms later)
stops the cycle. (libzmq source: ``socket_base_t::term_endpoint``,
``session_base_t::process_term``, ``pipe_t::process_pipe_term_ack``.)

A :class:`RetryLimiter` learns of retries on the EventLog's dispatcher thread,
while the user's thread may be asleep, in another cell, or blocked in
``recv()``. It must still disconnect promptly, and must never use the socket
at the same moment as that thread. zlab's answer:

1. **Serialise, don't delegate.** Sockets a :class:`~zlab.Lab` makes are
   :class:`SerializedSocket` s: every pyzmq call that reaches libzmq (send,
   recv, options, bind/connect/disconnect, monitor, close) holds a per-socket
   ``RLock``. A lock is the "full memory barrier" zmq(7) asks for when a socket
   migrates between threads, so a policy thread that holds it may use the socket.
2. **Never hold the lock while blocking.** A blocking ``recv``/``send``/``poll``
   is done as non-blocking attempts under the lock, with the waiting done
   *outside* it on the socket's ZMQ_FD (checked at least every 50 ms, and up to
   RCVTIMEO/SNDTIMEO as usual). So the lock is only ever held for microseconds,
   and a limiter can act while the user's thread waits for a message.
3. **Message boundaries.** Taking a pipe away between two frames of a
   multipart message aborts the process: ``Assertion failed: !_more
   (src/fq.cpp:80)`` (measured: a PULL that read frame one, then disconnect()):
   ``recv_multipart``/``send_multipart`` hold the lock for the whole message,
   and a policy waits (:meth:`SerializedSocket.exclusive`) until a frame-by-frame
   reader or writer has finished its message.
4. **Finish the disconnect.** After ``disconnect()`` the policy thread waits on
   the socket's ZMQ_FD (libzmq signals it when a command arrives) and, under the
   lock, calls ``getsockopt(EVENTS)`` so the socket processes the
   acknowledgement (:meth:`SerializedSocket.settle`). If a late retry event
   still shows up for a dropped endpoint, it settles again. Measured: the
   limiter calls ``disconnect()`` 0.2 ms (median; max 2 ms in 15 runs) after
   the 5th CONNECT_RETRIED is logged, and no CONNECT_RETRIED follows.
5. **A user's own socket** (``lab.watch(sock)``) carries no lock: the limiter
   only *requests* the disconnect (POLICY marker, callback) and the user must
   call :meth:`RetryLimiter.apply` from the socket's thread, or use a Lab socket.

Not covered by the lock: ``zmq.Poller``/``zmq.proxy`` given a Lab socket call
libzmq directly; use ``sock.poll()`` or hold ``sock.zlab_lock`` around them
(briefly) when a policy is attached. ``Socket.shadow()`` of a Lab socket has no lock.

Compared with libzmq's own ZMQ_RECONNECT_STOP (option 109, documented as draft
but honoured by the released 4.3.5 wheels): CONN_REFUSED (1) stops after the
first refused connect, HANDSHAKE_FAILED (2) after a failed handshake,
AFTER_DISCONNECT (4) stops ipc connecters refused after a ``disconnect()``.
It has no attempt count, no time limit, does not act on a frozen peer (whose
kernel accepts) and emits no event saying it gave up. The limiter counts,
times, says so in a POLICY event, and calls back.
"""

from __future__ import annotations

import concurrent.futures
import errno
import queue
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import zmq

from .connections import PARKED, ConnectionState, ConnectionTracker
from .events import Event
from .options import OPTIONS, validate_option
from .serialized import SerializedSocket, connect_endpoint, disconnect_endpoint  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from .lab import Lab

__all__ = [
    "ROLES",
    "GiveUp",
    "Recommendation",
    "Recommendations",
    "RetryLimiter",
    "limiter_for",
    "limiters",
    "recommended_options",
]

# -- the retry limiter -----------------------------------------------------------------
@dataclass(frozen=True)
class GiveUp:
    """A limiter's decision: when (``t``, s, Lab clock), which endpoint, after how many
    CONNECT_RETRIED (``attempts``), why (``"attempts"``, ``"deadline"`` or ``"paused"``)
    and what was done (``"disconnected"``, ``"requested"``, ``"was not connected"``...)."""

    t: float
    socket: str
    endpoint: str
    attempts: int
    reason: str
    action: str
    text: str


_LIMITERS: weakref.WeakKeyDictionary[Any, dict[str, RetryLimiter]] = weakref.WeakKeyDictionary()
_LIMITERS_LOCK = threading.Lock()


def limiter_for(lab: Lab, socket_name: str) -> RetryLimiter | None:
    """The open RetryLimiter watching ``socket_name`` in ``lab``, if any."""
    with _LIMITERS_LOCK:
        return _LIMITERS.get(lab, {}).get(socket_name)


def limiters(lab: Lab) -> dict[str, RetryLimiter]:
    """Every open RetryLimiter of ``lab``, by socket name."""
    with _LIMITERS_LOCK:
        return dict(_LIMITERS.get(lab, {}))


class RetryLimiter:
    """Give up on an endpoint that keeps failing: disconnect it, say so, call back.

    Watches the CONNECT_RETRIED events of one socket of ``lab``, per endpoint.
    After ``max_attempts`` of them without a HANDSHAKE_SUCCEEDED in between, or
    ``give_up_after_s`` seconds without one, it disconnects that endpoint (a Lab
    socket: at once, from the limiter's own thread, see the module docstring; a
    socket the user only watches: on :meth:`apply`), records
    ``POLICY "gave up on ENDPOINT after N attempts ..."`` naming the socket and
    endpoint, and calls ``on_give_up(GiveUp)`` on the limiter's thread. A
    successful handshake resets the count. ``max_attempts=None`` and
    ``give_up_after_s=None`` leave only operator control (:meth:`pause`).

    The limiter owns one daemon thread; the Lab closes it (kind ``"policy"``)
    before its sockets. One limiter per socket: a second raises ``ValueError``.
    Events logged before the limiter started count too (it replays the log).
    """

    def __init__(self, lab: Lab, socket_name: str, max_attempts: int | None = 5,
                 give_up_after_s: float | None = None, on_give_up: Callable[[GiveUp], Any] | None = None,
                 *, silent_after_s: float = 1.0):
        if max_attempts is not None and (isinstance(max_attempts, bool) or not isinstance(max_attempts, int)
                                         or max_attempts < 1):
            raise ValueError(f"max_attempts must be a whole number >= 1 (or None for no cap); got {max_attempts!r}")
        if give_up_after_s is not None and (isinstance(give_up_after_s, bool)
                                            or not isinstance(give_up_after_s, (int, float)) or give_up_after_s <= 0):
            raise ValueError(f"give_up_after_s is in seconds and must be > 0 (or None); got {give_up_after_s!r}")
        if on_give_up is not None and not callable(on_give_up):
            raise ValueError(f"on_give_up must be callable (it receives a GiveUp record); got {on_give_up!r}")
        sockets = lab.sockets
        if socket_name not in sockets:
            raise ValueError(f"no open socket named {socket_name!r} in this Lab; open sockets: "
                             f"{', '.join(sorted(sockets)) or 'none'}")
        # Weak: the Lab owns the limiter (adopt), never the other way round, so a Lab that is
        # garbage-collected without close() still gets closed by its finalizer.
        self._lab_ref = weakref.ref(lab)
        self._log = lab.log
        self.socket_name = socket_name
        self.max_attempts = max_attempts
        self.give_up_after_s = None if give_up_after_s is None else float(give_up_after_s)
        self.on_give_up = on_give_up
        self._sock = sockets[socket_name]
        #: True when the limiter can disconnect by itself (a Lab-made socket).
        self.serialized = isinstance(self._sock, SerializedSocket)
        #: Every decision taken, in order.
        self.gave_up: list[GiveUp] = []
        #: Errors raised by ``on_give_up`` or by an action (counted, not raised).
        self.errors: list[BaseException] = []
        self.paused = False
        self._paused_eps: list[str] = []
        self._pending: list[tuple[str, str]] = []  # (action, endpoint) for apply()
        self._pending_lock = threading.Lock()
        self._tracker = ConnectionTracker(silent_after_s=silent_after_s)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._closed = False
        self._last_fed_t = float("-inf")  # t of the latest event the limiter has taken into account
        with _LIMITERS_LOCK:
            per_lab = _LIMITERS.setdefault(lab, {})
            if socket_name in per_lab:
                raise ValueError(f"a RetryLimiter already watches {socket_name!r}; close it first "
                                 "(zlab.policies.limiter_for(lab, name).close())")
            per_lab[socket_name] = self
        self._thread: threading.Thread | None = None
        self._subscription = None
        try:
            # Subscribe first, then read the history: an event can be in both, never in neither.
            self._subscription = lab.log.subscribe(self._queue.put, socket=socket_name, batch=True)
            history = lab.events(socket_name)
            self._history = {id(ev): ev for ev in history}
            self._history_end = history[-1].t if history else float("-inf")
            lab.adopt(self, "policy")
        except BaseException:
            if self._subscription is not None:
                self._subscription.close()
            with _LIMITERS_LOCK:
                _LIMITERS.get(lab, {}).pop(socket_name, None)
            raise
        self._thread = threading.Thread(target=self._run, name=f"zlab-limiter-{socket_name}", daemon=True)
        self._thread.start()

    # -- public control (any thread) -------------------------------------------------------
    def pause(self, timeout: float = 5.0) -> list[str]:
        """Stop retrying: disconnect every endpoint now retrying, and any that starts to, until
        :meth:`resume`. Returns the endpoints paused now. Records ``POLICY "paused retrying on ..."``."""
        return self._call("pause", timeout)

    def resume(self, timeout: float = 5.0) -> list[str]:
        """Reconnect the endpoints :meth:`pause` disconnected (``POLICY "resumed retrying on ..."``),
        counting afresh. Returns them."""
        return self._call("resume", timeout)

    def reset(self, endpoint: str, timeout: float = 5.0) -> None:
        """Forget ``endpoint``'s count (``POLICY "reset retry count of ..."``): call it after you
        connected a given-up endpoint again yourself, so the limiter watches it again."""
        self._call("reset", timeout, endpoint)

    def states(self) -> list[ConnectionState]:
        """The limiter's view of its socket's endpoints (see :mod:`zlab.connections`)."""
        return self._call("states", 5.0)

    def apply(self) -> list[str]:
        """Carry out requested disconnects / reconnects on a socket the user watches (not a Lab socket).

        Call from the thread that uses the socket; returns ``["disconnect tcp://...", ...]``.
        Harmless (returns ``[]``) for a Lab socket, whose actions the limiter performs itself.
        """
        with self._pending_lock:
            pending, self._pending = self._pending, []
        done = []
        sock = self._sock
        for action, endpoint in pending:
            if sock.closed:
                break
            try:
                if action == "disconnect":
                    sock.disconnect(endpoint)
                    _settle_own(sock)
                else:
                    sock.connect(endpoint)
            except zmq.ZMQError as exc:
                if exc.errno != errno.ENOENT:
                    raise
            done.append(f"{action} {endpoint}")
        return done

    @property
    def pending(self) -> list[str]:
        """Actions waiting for :meth:`apply` (a watched user socket only)."""
        with self._pending_lock:
            return [f"{action} {endpoint}" for action, endpoint in self._pending]

    def close(self, timeout: float = 2.0) -> None:
        """Stop watching and stop the limiter's thread (bounded by ``timeout`` s). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._subscription is not None:
            self._subscription.close()
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with _LIMITERS_LOCK:
            lab = self._lab_ref()
            per_lab = _LIMITERS.get(lab) if lab is not None else None
            if per_lab is not None and per_lab.get(self.socket_name) is self:
                del per_lab[self.socket_name]
        if lab is not None and not lab.closed:
            lab.release(self)

    @property
    def lab(self) -> Lab | None:
        """The Lab this limiter belongs to (None once it was garbage-collected)."""
        return self._lab_ref()

    def __enter__(self) -> RetryLimiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        cap = f"{self.max_attempts} attempts" if self.max_attempts else "no count cap"
        limit = f", {self.give_up_after_s:g} s" if self.give_up_after_s else ""
        return f"<RetryLimiter {self.socket_name!r} {cap}{limit}, gave up {len(self.gave_up)}x>"

    # -- the limiter's thread ------------------------------------------------------------------
    def _call(self, name: str, timeout: float, *args: Any) -> Any:
        if self._closed:
            raise RuntimeError("this RetryLimiter is closed")
        future: concurrent.futures.Future = concurrent.futures.Future()
        logged = self._log.filter(self.socket_name)
        # Act on everything logged so far: the dispatcher may not have handed it over yet.
        sync_to = logged[-1].t if logged else float("-inf")
        self._queue.put((name, args, future, sync_to, time.monotonic() + min(1.0, timeout / 2)))
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the limiter of {self.socket_name!r} did not answer {name} within {timeout:g} s") from None

    def _run(self) -> None:
        history = sorted(self._history.values(), key=lambda ev: ev.t)
        self._tracker.extend(history)
        self._last_fed_t = max(self._last_fed_t, self._history_end)
        self._evaluate()
        tick = 0.25 if self.give_up_after_s is None else min(0.05, self.give_up_after_s / 4)
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=tick)
            except queue.Empty:
                item = ()
            items = [item]
            while True:  # take whatever else is waiting in one go
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for item in items:
                if self._stop.is_set():
                    return
                if item is None or item == ():
                    continue
                if isinstance(item, list):
                    self._feed(item)
                else:
                    self._command(*item)
            try:
                self._evaluate()
            except Exception as exc:  # keep watching; the error is kept for inspection
                self.errors.append(exc)

    def _feed(self, batch: list[Event]) -> None:
        stale = False
        for ev in batch:
            if self._history and self._history.get(id(ev)) is ev:
                continue  # logged before the limiter started, already replayed
            row = self._row(ev.endpoint) if ev.endpoint else None
            if (row is not None and row.state in PARKED and ev.event in ("CONNECT_RETRIED", "CONNECT_DELAYED")
                    and any(g.endpoint == ev.endpoint for g in self.gave_up)):
                stale = True  # our disconnect has not completed yet: help it along
            self._tracker.feed(ev)
            self._last_fed_t = max(self._last_fed_t, ev.t)
        if self._history and batch and batch[0].t > self._history_end:
            self._history = {}  # past the replayed part of the log
        if stale and self.serialized and not self._sock.closed:
            self._sock.settle()

    def _row(self, endpoint: str) -> ConnectionState | None:
        for row in self._tracker.rows(self._log.now(), self.socket_name):
            if row.endpoint == endpoint:
                return row
        return None

    def _command(self, name: str, args: tuple, future: concurrent.futures.Future, sync_to: float,
                 sync_deadline: float) -> None:
        if self._last_fed_t < sync_to and time.monotonic() < sync_deadline:
            time.sleep(0.001)
            self._queue.put((name, args, future, sync_to, sync_deadline))  # after the events still coming
            return
        try:
            if name == "pause":
                self.paused = True
                result = [g.endpoint for g in self._evaluate() if g.reason == "paused"]
            elif name == "resume":
                self.paused = False
                result = []
                for endpoint in self._paused_eps:
                    self._act("connect", endpoint)
                    self._mark(f"resumed retrying on {endpoint}", endpoint)
                    result.append(endpoint)
                self._paused_eps = []
            elif name == "reset":
                self._mark(f"reset retry count of {args[0]}", args[0])
                result = None
            elif name == "states":
                result = self._tracker.rows(self._log.now(), self.socket_name)
            else:  # pragma: no cover - internal
                raise ValueError(name)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _evaluate(self) -> list[GiveUp]:
        now = self._log.now()
        decisions = []
        for row in self._tracker.rows(now, self.socket_name):
            if row.role != "connect" or row.state in PARKED or row.state == "handshaken":
                continue
            if self.paused and row.state == "retrying":
                reason = "paused"
            elif self.max_attempts is not None and row.attempts >= self.max_attempts:
                reason = "attempts"
            elif (self.give_up_after_s is not None and row.waiting_since is not None
                  and now - row.waiting_since >= self.give_up_after_s):
                reason = "deadline"
            else:
                continue
            decisions.append(self._give_up(row, reason))
        return decisions

    def _give_up(self, row: ConnectionState, reason: str) -> GiveUp:
        endpoint, attempts = row.endpoint, row.attempts
        action = self._act("disconnect", endpoint, settle=False)
        if reason == "paused":
            text = f"paused retrying on {endpoint} after {attempts} attempts: {action}"
            self._paused_eps.append(endpoint)
        elif reason == "attempts":
            text = f"gave up on {endpoint} after {attempts} attempts (max_attempts={self.max_attempts}): {action}"
        else:
            text = (f"gave up on {endpoint} after {attempts} attempts: no HANDSHAKE_SUCCEEDED for "
                    f"{self.give_up_after_s:g} s: {action}")
        marker = Event(self._log.now(), self.socket_name, "POLICY", 0, endpoint, text)
        record = GiveUp(marker.t, self.socket_name, endpoint, attempts, reason, action, text)
        self.gave_up.append(record)  # before the marker is logged: whoever waits for it finds the record
        self._log_marker(marker)
        if action == "disconnected":
            self._sock.settle()  # the disconnect completes here (or, late, on the next stale event)
        if self.on_give_up is not None:
            try:
                self.on_give_up(record)
            except Exception as exc:  # a callback's bug must not stop the limiter
                self.errors.append(exc)
        return record

    def _act(self, action: str, endpoint: str, settle: bool = True) -> str:
        if not self.serialized:
            with self._pending_lock:
                self._pending.append((action, endpoint))
            return f"{action} requested: call limiter.apply() from the socket's thread"
        try:
            if action == "disconnect":
                return disconnect_endpoint(self._sock, endpoint, settle=settle)
            return connect_endpoint(self._sock, endpoint)
        except (TimeoutError, ValueError, zmq.ZMQError) as exc:
            self.errors.append(exc)
            return f"{action} failed: {exc}"

    def _mark(self, text: str, endpoint: str) -> Event:
        return self._log_marker(Event(self._log.now(), self.socket_name, "POLICY", 0, endpoint, text))

    def _log_marker(self, marker: Event) -> Event:
        self._log.append(marker)  # what lab.mark("POLICY", ...) does
        self._tracker.feed(marker)  # at once: its echo from the log is idempotent
        self._last_fed_t = max(self._last_fed_t, marker.t)
        return marker


def _settle_own(sock: zmq.Socket, first_wait_s: float = 0.05, quiet_s: float = 0.02) -> None:
    """:meth:`SerializedSocket.settle` for a plain socket, from its own thread."""
    if isinstance(sock, SerializedSocket):
        sock.settle(first_wait_s, quiet_s)
        return
    fd = sock.getsockopt(zmq.FD)
    sock.getsockopt(zmq.EVENTS)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    wait = first_wait_s
    for _ in range(20):
        if not poller.poll(wait * 1000):
            return
        sock.getsockopt(zmq.EVENTS)
        wait = quiet_s


# -- recommended options ------------------------------------------------------------------
@dataclass(frozen=True)
class Recommendation:
    """One recommended setting: ``option`` (pyzmq's lower-case name), ``value`` in ``unit``, and why."""

    option: str
    value: int
    unit: str
    reason: str


@dataclass(frozen=True)
class Recommendations:
    """The kit's recommended options for a ``role``: pass ``.options`` to ``lab.socket(...)``."""

    role: str
    pattern: str
    items: tuple[Recommendation, ...]

    @property
    def options(self) -> dict[str, int]:
        """``{option: value}``, ready for ``lab.socket(kind, **rec.options)``."""
        return {r.option: r.value for r in self.items}

    @property
    def reasons(self) -> dict[str, str]:
        """``{option: one-line reason}``."""
        return {r.option: r.reason for r in self.items}

    def __iter__(self) -> Iterator[Recommendation]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __str__(self) -> str:
        lines = [f"{self.role}: {self.pattern}"]
        for r in self.items:
            lines.append(f"  {r.option:<18} {r.value:>6} {r.unit:<9} {r.reason}")
        return "\n".join(lines)


_HB = [
    ("heartbeat_ivl", 1000, "send a ZMTP PING every 1 s: a hung (SIGSTOPped) peer is detected only with "
                            "heartbeats, never without (measured)"),
    ("heartbeat_timeout", 3000, "drop a connection 3 s after a PING with no traffic back: survives two lost "
                                "PINGs; detection lands between timeout and timeout + ivl (measured)"),
]
_TTL = ("heartbeat_ttl", 3000, "ask the peer to drop us after 3 s of silence even if its own heartbeats are off")
_BACKOFF = [
    ("reconnect_ivl", 100, "first retry after 100 ms: a restarted peer is found fast"),
    ("reconnect_ivl_max", 5000, "back off exponentially (100, 200, 400 ... 5000 ms; exact doubling in libzmq "
                                "4.3.5) so a dead peer costs one attempt per 5 s, not ~7 per s: no retry storm on a "
                                "direct connection. Through a TCP relay or load balancer each accepted connect "
                                "resets the backoff, so waits stay at reconnect_ivl: cap retries there (measured)"),
    ("connect_timeout", 2000, "give up a TCP connect after 2 s when the host does not answer (firewall, "
                              "partition) instead of the kernel's ~2 min of SYN retries"),
    ("handshake_ivl", 3000, "drop a TCP connection that never completes ZMTP after 3 s (a frozen peer's kernel "
                            "still accepts) so it is retried, not held for the default 30 s"),
    ("reconnect_stop", 0, "leave it off: each stop condition ends reconnecting for good and silently -- a "
                          "restarting peer refuses for a moment (1), a hang, partition or relay drops a "
                          "connection mid-handshake (2, measured in lesson 07). Cap with a RetryLimiter"),
]

_ROLES: dict[str, tuple[str, list[tuple[str, int, str]]]] = {
    "publisher": ("PUB (or XPUB), binds: the stable side binds, subscribers come and go", [
        *_HB,
        ("sndhwm", 10000, "bounded memory per subscriber; beyond it PUB drops silently and no monitor event "
                          "says so: number your messages to see the gaps"),
        ("linger", 0, "queued messages are for whoever listens now: never let close()/term() wait for them "
                      "(the default -1 can hang term() forever)"),
    ]),
    "subscriber": ("SUB (or XSUB), connects to a bound publisher", [
        *_HB, _TTL, *_BACKOFF,
        ("rcvhwm", 10000, "bounded memory when the application reads slower than the publisher sends"),
        ("linger", 0, "a subscriber has nothing worth flushing at close: never let term() wait"),
    ]),
    "client": ("REQ or DEALER, connects to a bound server", [
        *_HB, _TTL, *_BACKOFF,
        ("sndhwm", 1000, "a bounded queue turns a dead server into send() blocking / EAGAIN that code can see, "
                         "instead of memory growth"),
        ("rcvhwm", 1000, "bounded memory for replies the application has not read"),
        ("linger", 1000, "give queued requests up to 1 s to leave at close, then drop them: the default -1 "
                         "hangs term() when the server is gone (measured)"),
    ]),
    "server": ("REP or ROUTER, binds: clients connect to it", [
        *_HB,
        ("sndhwm", 1000, "bounded memory per client for replies it has not read"),
        ("rcvhwm", 1000, "bounded memory per client for requests not yet handled"),
        ("linger", 1000, "replies in flight get up to 1 s at shutdown, then are dropped: term() never hangs"),
    ]),
}

#: The roles :func:`recommended_options` knows.
ROLES = tuple(_ROLES)


def recommended_options(role: str) -> Recommendations:
    """The kit's recommended socket options for ``role``, each with a one-line reason.

    ``role`` is one of ``"publisher"``, ``"subscriber"``, ``"client"``,
    ``"server"`` (``ValueError`` lists them otherwise). Covers heartbeats,
    reconnect backoff, connect and handshake timeouts, LINGER, high-water marks
    and ZMQ_RECONNECT_STOP. Every value passes :func:`zlab.options.validate_option`.
    Values suit a LAN or loopback; the reasons say what to scale for a WAN.
    """
    if not isinstance(role, str) or role.lower() not in _ROLES:
        raise ValueError(f"unknown role {role!r}; valid roles: {', '.join(ROLES)}")
    key = role.lower()
    pattern, specs = _ROLES[key]
    items = tuple(Recommendation(name, validate_option(name, value), OPTIONS[name].unit, reason)
                  for name, value, reason in specs)
    return Recommendations(key, pattern, items)
