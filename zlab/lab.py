"""The Lab: owns a zmq Context, an EventLog, a Collector and everything made through it.

Open one per experiment (``with zlab.Lab() as lab:``). Every socket it makes is
monitored from birth, LINGER 0 unless told otherwise, and closed by
``lab.close()``, which also stops the monitors of sockets the user only asked it
to watch (they stay open and usable), the collector thread, and every helper
(peers, proxies, policies) registered with it. ``close()`` is idempotent and
bounded (about a second at worst).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import zmq

from .capture import Collector, Watch
from .eventlog import DEFAULT_CAP, EventLog
from .events import Event
from .options import apply_options, socket_type, socket_type_name, validate_options

__all__ = ["Lab", "versions"]

_lab_ids = itertools.count()


def versions() -> dict[str, Any]:
    """The library versions an observation depends on: ``pyzmq``, ``libzmq``, ``draft``, ``python``."""
    import platform

    from . import __version__

    return {
        "zlab": __version__,
        "pyzmq": zmq.pyzmq_version(),
        "libzmq": zmq.zmq_version(),
        "draft": bool(zmq.has("draft")),
        "python": platform.python_version(),
    }


_TRANSPORTS = ("tcp", "ipc", "inproc", "pgm", "epgm", "ws", "wss", "tipc", "vmci", "norm")


def _check_endpoint(endpoint: str) -> None:
    """``ValueError`` for an endpoint that is not ``transport://address``."""
    transport, sep, address = endpoint.partition("://") if isinstance(endpoint, str) else ("", "", "")
    if not sep or not address or transport not in _TRANSPORTS:
        raise ValueError(
            f"malformed endpoint {endpoint!r}; use tcp://127.0.0.1:PORT, ipc://PATH or inproc://NAME "
            "(or 'tcp', 'ipc', 'inproc' to bind a fresh one)"
        )


class _Closeable(Protocol):
    def close(self) -> Any: ...


# Order in which helpers are closed (HAZARDS.md): proxies, then peers, then
# policies and admin endpoints, then the Lab's sockets, then the collector.
CLOSE_ORDER = {"proxy": 0, "peer": 1, "policy": 2, "admin": 2, "other": 3}


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives during the block and raise it once the block is done.

    A ``close()`` cut short by KeyboardInterrupt (a second Ctrl-C, or one that lands just as a
    scenario ends) would leave child processes, threads and sockets behind for good: the Lab is
    already marked closed. Closing is bounded (about a second at worst), so the interrupt is only
    delayed. Only the main thread receives signals; elsewhere, or when SIGINT has no Python
    handler, this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGINT)
    except ValueError:
        previous = None
    if not callable(previous):
        yield
        return
    held: list[tuple[int, Any]] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            previous(*held[0])  # the handler that was there: by default raises KeyboardInterrupt


class _LabState:
    """Everything a Lab must release; kept apart so a garbage-collected Lab still closes."""

    def __init__(self, log: EventLog):
        self.context = zmq.Context()
        self.collector = Collector(log)
        self.log = log
        self.sockets: dict[str, zmq.Socket] = {}
        self.owned: set[int] = set()  # ids of sockets the Lab made (closed by it)
        self.watches: dict[int, Watch] = {}  # id(socket) -> Watch
        self.helpers: list[tuple[int, int, _Closeable]] = []
        self.helper_order = itertools.count()
        self.ipc_dir: str | None = None
        self.closed = False
        self.lock = threading.RLock()

    def close(self) -> None:
        with _interrupts_deferred():
            self._close()

    def _close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        helpers = sorted(self.helpers, key=lambda item: (item[0], item[1]))
        self.helpers.clear()
        errors: list[BaseException] = []
        for _, _, helper in helpers:
            try:
                helper.close()
            except Exception as exc:  # keep closing the rest; report after
                errors.append(exc)
        watches = list(self.watches.values())
        for sock in self.sockets.values():
            if id(sock) in self.owned and not sock.closed:
                sock.close(linger=0)  # its monitor sends MONITOR_STOPPED by itself
        self.collector.request_stop(watches)  # user sockets: disable_monitor()
        self.collector.wait_stopped(watches, 1.0)
        self.collector.close(0.5)
        self.log.close()
        self.context.destroy(linger=0)
        if self.ipc_dir:
            import shutil  # only Labs that used ipc pay for it

            shutil.rmtree(self.ipc_dir, ignore_errors=True)
        if errors:
            raise errors[0]


class Lab:
    """A ZeroMQ laboratory: sockets, their monitor events, and the faults applied to them.

    ``cap`` bounds the EventLog (events kept; older ones are discarded and
    counted). Use as a context manager, or call :meth:`close`. Every method
    that touches a socket must be called from the thread that uses that socket
    (ZeroMQ sockets are not thread-safe).
    """

    def __init__(self, *, cap: int = DEFAULT_CAP):
        self.id = next(_lab_ids)
        self.log = EventLog(cap)
        self._state = _LabState(self.log)
        self._names = itertools.count()
        self._finalizer = weakref.finalize(self, self._state.close)

    # -- properties ------------------------------------------------------------
    @property
    def context(self) -> zmq.Context:
        """The Lab's zmq Context (sockets made on it directly are closed by :meth:`close`)."""
        return self._state.context

    @property
    def closed(self) -> bool:
        return self._state.closed

    @property
    def sockets(self) -> dict[str, zmq.Socket]:
        """Label -> socket, for every socket made or watched and still open."""
        return {name: s for name, s in self._state.sockets.items() if not s.closed}

    @property
    def collector(self) -> Collector:
        return self._state.collector

    def versions(self) -> dict[str, Any]:
        """pyzmq, libzmq and draft flag of this run (see :func:`versions`)."""
        return versions()

    # -- sockets ---------------------------------------------------------------
    def socket(
        self,
        kind: str | int,
        name: str | None = None,
        *,
        bind: str | None = None,
        connect: str | Iterable[str] | None = None,
        watch: bool = True,
        **options: Any,
    ) -> zmq.Socket:
        """Make a real pyzmq socket, monitored from birth, and optionally bind / connect it.

        ``kind`` is a socket type (``"PUB"``, ``"sub"``, ``zmq.DEALER``); ``name``
        its label in the EventLog (default ``pub0``, ``sub1``...). ``bind`` is an
        endpoint, or ``"tcp"`` / ``"ipc"`` / ``"inproc"`` for a fresh loopback one
        (read it back with :meth:`endpoint`). Options are validated by
        :mod:`zlab.options` (``ValueError`` on a bad one); LINGER is 0 unless given.
        """
        self._check_open()
        stype = socket_type(kind)
        opts = validate_options(options)
        opts.setdefault("linger", 0)
        label = self._label(name, socket_type_name(stype))
        # Serialised so that policy threads (RetryLimiter, admin) can act on it safely: zlab.policies.
        from .serialized import SerializedSocket  # loaded with the first socket, not at import

        sock = self.context.socket(stype, socket_class=SerializedSocket)
        try:
            apply_options(sock, opts)
            self._state.owned.add(id(sock))
            self._state.sockets[label] = sock
            if watch:
                self._attach(sock, label)
            if bind is not None:
                self.bind(sock, bind)
            if connect is not None:
                for endpoint in [connect] if isinstance(connect, str) else connect:
                    self.connect(sock, endpoint)
        except BaseException:
            self._forget(label, sock)
            sock.close(linger=0)
            raise
        return sock

    def watch(self, sock: zmq.Socket, name: str) -> zmq.Socket:
        """Capture the monitor events of a socket the user made, under the label ``name``.

        The socket stays the user's: :meth:`close` stops its monitor but leaves it
        open and usable. Call from the thread that uses ``sock``. Raises
        ``ValueError`` if ``name`` is taken or the socket is already watched.
        """
        self._check_open()
        if id(sock) in self._state.watches and not self._state.watches[id(sock)].stopped.is_set():
            raise ValueError(f"this socket is already watched as {self._state.watches[id(sock)].label!r}")
        label = self._label(name, "")
        self._state.sockets[label] = sock
        self._attach(sock, label)
        return sock

    def unwatch(self, sock: zmq.Socket, timeout: float = 1.0) -> None:
        """Stop capturing ``sock``'s events (its monitor is stopped safely); the socket stays open."""
        watch = self._state.watches.pop(id(sock), None)
        if watch is not None:
            self.collector.detach(watch, timeout)

    def _attach(self, sock: zmq.Socket, label: str) -> None:
        self._state.watches[id(sock)] = self.collector.attach(sock, label)

    def _label(self, name: str | None, prefix: str) -> str:
        if name is None:
            while True:
                candidate = f"{prefix.lower()}{next(self._names)}"
                if candidate not in self.sockets:
                    return candidate
        if not isinstance(name, str) or not name:
            raise ValueError(f"a socket name must be a non-empty string; got {name!r}")
        if name in self.sockets:
            raise ValueError(f"a socket named {name!r} is already open in this Lab; close it or pick another name")
        return name

    def _forget(self, label: str, sock: zmq.Socket) -> None:
        self._state.sockets.pop(label, None)
        self._state.owned.discard(id(sock))
        watch = self._state.watches.pop(id(sock), None)
        if watch is not None:
            self.collector.request_stop([watch])

    def _check_open(self) -> None:
        if self._state.closed:
            raise RuntimeError("this Lab is closed; open a new one with zlab.Lab()")

    # -- endpoints ---------------------------------------------------------------
    def new_endpoint(self, transport: str = "tcp") -> str:
        """A fresh endpoint on this machine: ``tcp`` (127.0.0.1, port chosen at bind),
        ``ipc`` (a file in the Lab's private 0700 directory) or ``inproc``."""
        if transport == "tcp":
            return "tcp://127.0.0.1:*"
        if transport == "ipc":
            if self._state.ipc_dir is None:
                import tempfile

                self._state.ipc_dir = tempfile.mkdtemp(prefix="zlab-")  # mode 0700
            return f"ipc://{self._state.ipc_dir}/{next(self._names)}.ipc"
        if transport == "inproc":
            return f"inproc://zlab-{os.getpid()}-{self.id}-{next(self._names)}"
        raise ValueError(f"unknown transport {transport!r}; use 'tcp', 'ipc' or 'inproc'")

    def bind(self, sock: zmq.Socket, endpoint: str = "tcp", *, retry_for: float = 1.0) -> str:
        """Bind ``sock`` and return the real endpoint (the port filled in).

        ``endpoint`` may be ``"tcp"``, ``"ipc"`` or ``"inproc"`` for a fresh one.
        Re-binding a port just released is retried for ``retry_for`` seconds
        (libzmq closes listeners asynchronously). A port in use raises
        ``ValueError`` saying so.
        """
        if endpoint in ("tcp", "ipc", "inproc"):
            endpoint = self.new_endpoint(endpoint)
        _check_endpoint(endpoint)
        deadline = time.monotonic() + retry_for
        pause = 0.01
        while True:
            try:
                sock.bind(endpoint)
                return sock.last_endpoint.decode()
            except zmq.ZMQError as exc:
                if exc.errno == errno.EADDRINUSE and time.monotonic() < deadline:
                    time.sleep(pause)  # backing off: each failed try logs BIND_FAILED + CLOSED
                    pause = min(pause * 2, 0.2)
                    continue
                if exc.errno == errno.EADDRINUSE:
                    raise ValueError(
                        f"cannot bind {endpoint}: address already in use; pick another port "
                        "or bind 'tcp' for a free one"
                    ) from None
                raise ValueError(f"cannot bind {endpoint}: {exc.strerror}") from None

    def connect(self, sock: zmq.Socket, endpoint: str) -> str:
        """Connect ``sock`` to ``endpoint``; a malformed endpoint raises ``ValueError``."""
        _check_endpoint(endpoint)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            raise ValueError(f"cannot connect to {endpoint!r}: {exc.strerror}") from None
        return endpoint

    def endpoint(self, sock_or_name: zmq.Socket | str) -> str:
        """The last endpoint a socket bound or connected to (``tcp://127.0.0.1:PORT``)."""
        sock = self._state.sockets[sock_or_name] if isinstance(sock_or_name, str) else sock_or_name
        return sock.last_endpoint.decode()

    # -- events ------------------------------------------------------------------
    def events(self, socket: str | None = None, event: str | Iterable[str] | None = None, *,
               since: float | None = None) -> list[Event]:
        """Captured events, sorted by time (see :meth:`EventLog.filter`)."""
        return self.log.filter(socket, event, since=since)

    def wait_for(self, event: str | Iterable[str], socket: str | None = None, *, timeout: float = 5.0,
                 since: float | None = None, count: int = 1) -> Event:
        """Wait for an event (see :meth:`EventLog.wait_for`); ``TimeoutError`` says what was seen."""
        return self.log.wait_for(event, socket, timeout=timeout, since=since, count=count)

    def now(self) -> float:
        """Seconds since the Lab started (the clock of every event's ``t``)."""
        return self.log.now()

    def mark(self, kind: str, text: str, socket: str = "", endpoint: str = "") -> Event:
        """Record a FAULT / POLICY / NOTE marker now (see :meth:`EventLog.mark`)."""
        return self.log.mark(kind, text, socket, endpoint)

    # -- helpers (peers, proxies, policies) ------------------------------------------
    def adopt(self, helper: _Closeable, kind: str = "other") -> Any:
        """Make the Lab close ``helper`` on :meth:`close`, in the safe order
        (proxies, peers, policies, then sockets). Returns ``helper``."""
        self._check_open()
        self._state.helpers.append((CLOSE_ORDER.get(kind, 3), next(self._state.helper_order), helper))
        return helper

    def release(self, helper: _Closeable) -> None:
        """Forget a helper that was closed on its own."""
        self._state.helpers[:] = [item for item in self._state.helpers if item[2] is not helper]

    # -- topology builders (see zlab.topology) -------------------------------------------
    def pubsub(self, **kwargs: Any):
        """Build a PUB/SUB topology in this Lab: see :func:`zlab.topology.pubsub`."""
        from .topology import pubsub

        return pubsub(self, **kwargs)

    def reqrep(self, **kwargs: Any):
        """Build a REQ/REP pair in this Lab: see :func:`zlab.topology.reqrep`."""
        from .topology import reqrep

        return reqrep(self, **kwargs)

    def pushpull(self, **kwargs: Any):
        """Build a PUSH/PULL topology in this Lab: see :func:`zlab.topology.pushpull`."""
        from .topology import pushpull

        return pushpull(self, **kwargs)

    def dealer_router(self, **kwargs: Any):
        """Build a DEALER/ROUTER pair in this Lab: see :func:`zlab.topology.dealer_router`."""
        from .topology import dealer_router

        return dealer_router(self, **kwargs)

    # -- faults (see zlab.peer, zlab.proxy) ---------------------------------------------------
    def peer(self, kind: str | int, name: str | None = None, **kwargs: Any):
        """Start a ZeroMQ socket in a child process (``bind=`` or ``connect=``, options as for
        :meth:`socket`); its events join this log under ``name``. See :func:`zlab.peer.start_peer`."""
        from .peer import start_peer

        return start_peer(self, kind, name, **kwargs)

    def proxy(self, target: Any, name: str | None = None, **kwargs: Any):
        """Start a fault proxy (a TCP relay) in front of ``target``; connect to its ``.endpoint``
        instead. Closed before peers and sockets. See :class:`zlab.proxy.Proxy`."""
        from .proxy import Proxy

        self._check_open()
        return self.adopt(Proxy(self, target, name, **kwargs), "proxy")

    # -- policies and operator control (see zlab.connections, zlab.policies, zlab.admin) ------
    def connections(self, *, silent_after_s: float = 1.0, socket: str | None = None):
        """The connection table now: one :class:`zlab.connections.ConnectionState` per (socket,
        endpoint), derived from the logged monitor events; see :mod:`zlab.connections`."""
        from .connections import connection_table

        return connection_table(self.log.filter(), self.now(), silent_after_s=silent_after_s, socket=socket)

    def limit_retries(self, socket: str, max_attempts: int | None = 5, give_up_after_s: float | None = None,
                      on_give_up: Any = None):
        """Attach a :class:`zlab.policies.RetryLimiter` to the socket named ``socket`` (closed by :meth:`close`)."""
        from .policies import RetryLimiter

        return RetryLimiter(self, socket, max_attempts, give_up_after_s, on_give_up)

    def serve_admin(self, endpoint: str = "tcp://127.0.0.1:*"):
        """Serve the operator commands on a REP socket (``zlab admin``); see :class:`zlab.admin.AdminEndpoint`."""
        from .admin import AdminEndpoint

        self._check_open()
        return AdminEndpoint(self, endpoint)

    # -- closing ---------------------------------------------------------------------
    def close(self) -> None:
        """Close helpers, sockets, monitors, the collector and the context. Idempotent, bounded."""
        self._finalizer()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.sockets)} sockets"
        return f"<zlab.Lab #{self.id} {state}, {len(self.log)} events>"
