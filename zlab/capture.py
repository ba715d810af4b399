"""Capture: drain the monitors of many sockets on one background thread, losslessly.

libzmq never drops a monitor event; it sends each one blocking. Once about
1000 events (its side) plus the reader's RCVHWM wait unread, the thread that
emits the next one -- usually the context's I/O thread -- blocks, and every
socket of that context stops (measured, see the BRIEF). So:

* each reader sets ``RCVHWM = 0`` before connecting: its queue never fills;
* each reader connects right after ``monitor()`` binds, to an endpoint
  unique to this collector and socket (connecting first, which inproc
  allows, was measured to hold the last events of a burst back);
* the reader lives in the watched socket's own context (inproc endpoints
  belong to one context; a sync shadow for ``zmq.asyncio`` sockets);
* detaching stops the monitor first and closes the reader only after
  MONITOR_STOPPED has been read: closing the reader first can leave libzmq's
  reaper stuck.

The collector thread touches only the reader sockets it owns; ``attach`` and
``detach`` touch the watched socket and so run in the caller's thread, which
must be the thread that uses that socket.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time

import zmq

from .eventlog import EventLog
from .events import Event, decode, event_name

__all__ = ["Collector", "Watch"]

_MONITOR_STOPPED = 0x0400
_POLL_MS = 20  # how often the thread looks for attach / detach requests
_BATCH = 4096  # events drained from one reader before the next reader's turn


class Watch:
    """One watched socket: its label, its monitor reader and its state."""

    def __init__(self, sock: zmq.Socket, label: str, reader: zmq.Socket, address: str):
        self.socket = sock
        self.label = label
        self.reader = reader
        self.address = address
        #: Set once MONITOR_STOPPED was read and the reader closed.
        self.stopped = threading.Event()
        self.events = 0
        self.endpoints: dict[str, str] = {}

    def __repr__(self) -> str:
        state = "stopped" if self.stopped.is_set() else "live"
        return f"<Watch {self.label!r} {state}, {self.events} events>"


class Collector:
    """Drains every attached monitor into one :class:`EventLog` on one daemon thread.

    ``attach(sock, label)`` starts monitoring (from the socket's thread);
    ``detach(watch)`` stops it safely; ``close()`` detaches what is left and
    stops the thread. Each is bounded by a timeout; nothing here blocks forever.
    """

    _ids = itertools.count()

    def __init__(self, log: EventLog, *, start: bool = True):
        self.log = log
        self._prefix = f"inproc://zlab-monitor-{os.getpid()}-{next(self._ids)}"
        self._counter = itertools.count()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._watches: dict[zmq.Socket, Watch] = {}  # by reader; the thread's own
        self._attached: list[Watch] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"zlab-collector-{self._prefix.rsplit('-', 1)[1]}",
                                        daemon=True)
        if start:
            self._thread.start()
        #: Malformed monitor messages seen (kept out of the log, counted here).
        self.malformed = 0

    # -- called from the application thread -------------------------------------
    def attach(self, sock: zmq.Socket, label: str) -> Watch:
        """Monitor ``sock`` (every event) into the log under ``label``; returns its :class:`Watch`.

        Must run in the thread that uses ``sock``. Raises ``RuntimeError`` after
        :meth:`close`, ``ValueError`` for a closed socket.
        """
        if self._stopping.is_set():
            raise RuntimeError("this collector is closed; open a new Lab")
        if sock.closed:
            raise ValueError(f"cannot watch {label!r}: the socket is already closed")
        address = f"{self._prefix}-{next(self._counter)}"
        # The reader must be in the watched socket's context (inproc is per context);
        # a shadow gives a plain sync Context for zmq.asyncio and other subclasses too.
        reader_ctx = zmq.Context.shadow(sock.context.underlying)
        reader = reader_ctx.socket(zmq.PAIR)
        reader.setsockopt(zmq.RCVHWM, 0)  # never let the monitor queue fill: see module doc
        reader.setsockopt(zmq.LINGER, 0)
        try:
            sock.monitor(address, zmq.EVENT_ALL)
        except zmq.ZMQError:
            reader.close()
            raise
        # Connect after monitor() binds. Connecting first (inproc allows it) was measured to
        # hold the last few events of a burst back until the watched socket closes.
        reader.connect(address)
        watch = Watch(sock, label, reader, address)
        self._attached.append(watch)
        self._requests.put(("add", watch))
        return watch

    def detach(self, watch: Watch, timeout: float = 1.0) -> bool:
        """Stop monitoring: ``disable_monitor()`` (if the socket is open), then wait for the
        collector to read MONITOR_STOPPED and close the reader. ``timeout`` in seconds.

        Returns True when MONITOR_STOPPED arrived in time; False if the reader
        had to be closed without it. Must run in the thread that uses the socket.
        """
        self.request_stop([watch])
        return self.wait_stopped([watch], timeout)

    def request_stop(self, watches: list[Watch]) -> None:
        """Stop the monitors of ``watches`` without waiting (see :meth:`detach`)."""
        for watch in watches:
            if watch.stopped.is_set():
                continue
            if not watch.socket.closed:
                try:
                    watch.socket.disable_monitor()
                except zmq.ZMQError:  # closed meanwhile (ENOTSOCK): MONITOR_STOPPED comes anyway
                    pass

    def wait_stopped(self, watches: list[Watch], timeout: float = 1.0) -> bool:
        """Wait until every watch has seen MONITOR_STOPPED; past ``timeout`` (s) close the rest."""
        deadline = time.monotonic() + timeout
        for watch in watches:
            if not watch.stopped.wait(max(0.0, deadline - time.monotonic())):
                self._requests.put(("drop", watch))
        late = [w for w in watches if not w.stopped.is_set()]
        for watch in late:
            watch.stopped.wait(0.5)
        return not late

    @property
    def watches(self) -> list[Watch]:
        """The watches still live (not yet stopped)."""
        self._attached = [w for w in self._attached if not w.stopped.is_set()]
        return list(self._attached)

    def close(self, timeout: float = 1.0) -> None:
        """Detach every live watch and stop the thread; bounded by ``timeout`` seconds."""
        if self._stopping.is_set() and not self._thread.is_alive():
            return
        live = self.watches
        self.request_stop(live)
        self.wait_stopped(live, timeout)
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout + 1.0)

    def start(self) -> None:
        """Start draining (only needed with ``start=False``, e.g. to measure a drain ceiling)."""
        if not self._thread.is_alive() and not self._stopping.is_set():
            self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the collector thread ------------------------------------------------------
    def _run(self) -> None:
        poller = zmq.Poller()
        watches = self._watches
        try:
            while True:
                self._apply_requests(poller, watches)
                if self._stopping.is_set():
                    break
                ready = poller.poll(_POLL_MS) if watches else (time.sleep(_POLL_MS / 1000) or [])
                for reader, _ in ready:
                    watch = watches.get(reader)
                    if watch is not None:
                        self._drain(watch, poller)
        finally:
            self._apply_requests(poller, watches)
            for watch in list(watches.values()):
                self._close_reader(watch, poller)

    def _apply_requests(self, poller: zmq.Poller, watches: dict) -> None:
        while True:
            try:
                op, watch = self._requests.get_nowait()
            except queue.Empty:
                return
            if op == "add":
                watches[watch.reader] = watch
                poller.register(watch.reader, zmq.POLLIN)
            elif op == "drop":
                if watch.reader in watches:
                    self._drain(watch, poller)
                self._close_reader(watch, poller)

    def _drain(self, watch: Watch, poller: zmq.Poller) -> None:
        reader, label, log = watch.reader, watch.label, self.log
        recv, now, NOBLOCK = reader.recv, log.now, zmq.NOBLOCK
        batch: list[Event] = []
        endpoints = watch.endpoints
        stopped = False
        try:
            for _ in range(_BATCH):
                head = recv(NOBLOCK)
                endpoint = recv(NOBLOCK)  # a monitor message is always two frames, sent atomically
                try:
                    number, value, ep = decode([head, endpoint])
                except ValueError:
                    self.malformed += 1
                    continue
                ep = endpoints.setdefault(ep, ep)  # one str per endpoint: a storm repeats them
                if len(endpoints) > 1024:  # bounded: a socket flapping over fresh ports
                    endpoints.clear()
                batch.append(Event(now(), label, event_name(number), value, ep))
                if number == _MONITOR_STOPPED:
                    stopped = True
                    break
        except zmq.Again:
            pass
        if batch:
            watch.events += len(batch)
            log.extend(batch)
        if stopped:
            self._close_reader(watch, poller)

    def _close_reader(self, watch: Watch, poller: zmq.Poller) -> None:
        if self._watches.pop(watch.reader, None) is not None:
            poller.unregister(watch.reader)
        if not watch.reader.closed:
            watch.reader.close(linger=0)
        watch.stopped.set()
