"""The fault proxy: an in-process TCP relay whose network can be broken on demand.

A connecting socket is pointed at ``proxy.endpoint`` instead of the real peer;
the proxy forwards bytes to the target until told otherwise. Modes, switchable
at any time, each recorded as a ``FAULT`` marker in the Lab's log:

* ``pass`` -- forward both ways (:meth:`Proxy.heal` / :meth:`Proxy.pass_`).
* ``blackhole`` -- a silent partition: every connection stays open, nothing
  moves, new connections wait in the kernel's accept queue (so the connecting
  side still sees CONNECTED: its kernel handshake succeeds). Bytes are kept,
  not dropped -- in the proxy's buffers and the kernels' -- and delivered after
  :meth:`heal`, as TCP does when a partition heals in time.
* ``cut`` -- reset (RST) both sides of every live connection now; with
  ``keep=True`` keep resetting every new connection until healed.
* ``refuse`` -- close the listener: new connects get ECONNREFUSED, the
  connecting side loops CONNECT_RETRIED / CONNECT_DELAYED / CLOSED. By default
  live connections are reset too (the "peer gone" case).
* ``delay(ms)`` -- add latency to every byte read from now on.

What the monitor sees through a relay is not what it sees direct: with the
target gone the connecting side shows CONNECTED, HANDSHAKE_FAILED_NO_DETAIL
(ECONNRESET), DISCONNECTED on every attempt, not the retry cycle (BRIEF.md;
measured here too). Lessons that use the proxy say so.

Measured (pyzmq 27.3, libzmq 4.3.5, loopback, 8 runs): blackhole under a PUB
with heartbeat_ivl 100 / heartbeat_timeout 300 ms -> DISCONNECTED 380-384 ms
later; refuse -> 9-10 CLOSED retry cycles in 1.5 s at default reconnect_ivl;
heal -> CONNECTED 3-120 ms later (the next retry); cut -> DISCONNECTED on
both sides within 1 ms.

One thread per proxy serves the listener and every connection with
``select.poll``. Buffers are bounded (``buffer_bytes`` per direction and
connection; a full buffer stops reading, so TCP flow control pushes back).
Mode changes are applied synchronously: the call returns when the relay thread
has switched, so a detection time measured from the marker starts when the
fault did. ``poll()`` reports POLLHUP/POLLERR even for an empty interest set,
so a broken connection that cannot be serviced (blackhole) is unregistered
rather than polled at 100 % CPU.

The listener binds 127.0.0.1 on a random port *below* the kernel's ephemeral
range when it can: a connect retry can then never be a TCP self-connect on the
proxy's own port (a freed ephemeral port can be taken that way on loopback),
and re-binding it after ``refuse`` is retried for a bounded time.
"""

from __future__ import annotations

import collections
import errno
import itertools
import os
import queue
import random
import select
import socket
import struct
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .lab import Lab

__all__ = ["MODES", "Proxy"]

#: The modes a proxy can be in.
MODES = ("pass", "blackhole", "cut", "refuse", "delay")
#: Default bound on bytes buffered per connection and direction.
BUFFER_BYTES = 256 * 1024
_RECV = 65536
_REBIND_S = 2.0  # how long heal() retries re-binding the port after refuse
_COMMAND_TIMEOUT_S = 5.0
_POLLIN, _POLLOUT = select.POLLIN, select.POLLOUT
_BROKEN = select.POLLHUP | select.POLLERR | select.POLLNVAL
_numbers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _parse_target(target: Any) -> tuple[str, int, str]:
    endpoint = target if isinstance(target, str) else getattr(target, "endpoint", None)
    if not isinstance(endpoint, str):
        raise ValueError(f"a proxy target is a 'tcp://HOST:PORT' endpoint, a Peer or a Proxy; got {target!r}")
    if not endpoint.startswith("tcp://") or endpoint.rfind(":") <= len("tcp://"):
        raise ValueError(f"the proxy relays TCP only: expected 'tcp://HOST:PORT'; got {endpoint!r}")
    host, _, port_text = endpoint[len("tcp://"):].rpartition(":")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"the target needs a concrete port (bind first, then read it back); got {endpoint!r}")
    host = host.strip("[]")
    if host in ("*", "0.0.0.0", "", "localhost"):
        host = "127.0.0.1"
    return host, int(port_text), endpoint


def _ephemeral_low() -> int | None:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # re-bind past TIME_WAIT
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _new_listener(port: int | None) -> socket.socket:
    """Bind the listener: ``port`` if given, else a random free port below the ephemeral range."""
    if port is not None:
        return _bind_retrying(port, 1.0)
    low = _ephemeral_low()
    if low is not None and low > 4096:
        rng = random.Random()
        for _ in range(64):
            try:
                return _listener(rng.randrange(max(1024, low - 16384), low))
            except OSError as exc:
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
    return _listener(0)


def _bind_retrying(port: int, retry_for: float) -> socket.socket:
    deadline = time.monotonic() + retry_for
    while True:
        try:
            return _listener(port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            if time.monotonic() >= deadline:
                raise OSError(
                    errno.EADDRINUSE,
                    f"the proxy could not re-bind 127.0.0.1:{port} within {retry_for:g} s: the port is in use "
                    "(another program took it); close this proxy and start a new one",
                ) from None
            time.sleep(0.02)


def _abort(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the other end sees ECONNRESET, no TIME_WAIT is left."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Side:
    """One TCP connection of a relayed pair and the bytes waiting to be written to it."""

    __slots__ = ("sock", "fd", "other", "out", "out_bytes", "eof_in", "shut_out", "broken", "connecting")

    def __init__(self, sock: socket.socket, connecting: bool = False):
        self.sock = sock
        self.fd = sock.fileno()
        self.other: _Side = self
        self.out: collections.deque[list[Any]] = collections.deque()  # [due, bytes | None (EOF)]
        self.out_bytes = 0
        self.eof_in = False  # the far end sent FIN (read returned b"")
        self.shut_out = False  # we sent FIN (shutdown SHUT_WR)
        self.broken = False  # POLLHUP/POLLERR seen
        self.connecting = connecting


class _Pair:
    __slots__ = ("client", "upstream")

    def __init__(self, client: _Side, upstream: _Side):
        self.client, self.upstream = client, upstream
        client.other, upstream.other = upstream, client


class Proxy:
    """A TCP relay on ``127.0.0.1`` in front of ``target``, with switchable faults.

    ``target`` is a ``tcp://HOST:PORT`` endpoint (or anything with an
    ``.endpoint``: a Peer, another Proxy). ``name`` labels its markers
    (default ``proxy0``, ``proxy1``... per Lab). ``port`` pins the listener's
    port (default: random, below the ephemeral range). ``buffer_bytes`` bounds
    each connection's buffer per direction. Make one with :meth:`Lab.proxy`;
    the Lab closes it first, before peers and sockets.
    """

    def __init__(self, lab: Lab, target: Any, name: str | None = None, *, port: int | None = None,
                 buffer_bytes: int = BUFFER_BYTES):
        host, target_port, self.target = _parse_target(target)
        if not isinstance(buffer_bytes, int) or buffer_bytes < 1024:
            raise ValueError(f"buffer_bytes must be a whole number >= 1024; got {buffer_bytes!r}")
        if name is None:
            counter = _numbers.setdefault(lab, itertools.count())
            name = f"proxy{next(counter)}"
        elif not isinstance(name, str) or not name:
            raise ValueError(f"a proxy name must be a non-empty string; got {name!r}")
        self.name = name
        self._log = lab.log  # not the Lab: a helper must not keep its Lab alive
        self._target_addr = (host, target_port)
        self._cap = buffer_bytes
        self._listener: socket.socket | None = _new_listener(port)
        self.port: int = self._listener.getsockname()[1]
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self._mode = "pass"
        self._delay_s = 0.0
        self._cut_new = False
        self._pairs: list[_Pair] = []
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC) if hasattr(os, "pipe2") else os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._closed = False
        self._lock = threading.Lock()
        #: Counters: connections accepted, reset by cut, refused by the target; bytes each way.
        self.counters = {"accepted": 0, "cut": 0, "target_refused": 0, "bytes_to_target": 0, "bytes_from_target": 0}
        self._thread = threading.Thread(target=self._run, name=f"zlab-{name}", daemon=True)
        self._thread.start()

    # -- state ---------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``"pass"``, ``"blackhole"``, ``"cut"`` (resetting new connections), ``"refuse"`` or ``"delay"``."""
        return self._mode

    @property
    def delay_ms(self) -> float:
        """Latency added in ``delay`` mode, in ms (0 otherwise)."""
        return self._delay_s * 1000

    @property
    def connections(self) -> int:
        """Live relayed connections (client-target pairs)."""
        return len(self._pairs)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def thread(self) -> threading.Thread:
        """The relay thread (stopped by :meth:`close`)."""
        return self._thread

    def stats(self) -> dict[str, Any]:
        """Mode, live connections and the counters (accepted, cut, target_refused, bytes each way)."""
        return {"mode": self._mode, "delay_ms": self.delay_ms, "connections": len(self._pairs), **self.counters}

    # -- faults --------------------------------------------------------------------------------
    def heal(self) -> None:
        """Back to ``pass``: re-open the listener (same port; EADDRINUSE retried 2 s) if it was
        refused, stop cutting, drop the delay for new bytes, deliver what blackhole held.
        Marks ``FAULT heal NAME``. ``OSError`` if the port stays taken."""
        listener = self._reopen()
        self._mark(f"heal {self.name}")
        self._command("mode", mode="pass", delay=0.0, cut_new=False, listener=listener)

    def pass_(self) -> None:
        """The same as :meth:`heal` (``pass`` is a Python keyword)."""
        self.heal()

    def blackhole(self) -> None:
        """Forward nothing, keep every connection open, accept nobody: a silent partition.

        Marks ``FAULT blackhole NAME``. A socket with heartbeats drops the
        connection after HEARTBEAT_TIMEOUT (to TIMEOUT + IVL); without them it
        never notices. Held bytes are delivered after :meth:`heal`.
        """
        listener = self._reopen()  # after refuse: connects are accepted by the kernel again, then stall
        self._mark(f"blackhole {self.name}")
        self._command("mode", mode="blackhole", listener=listener)

    def cut(self, keep: bool = False) -> int:
        """Reset (RST) both sides of every live connection now; returns how many were cut.

        With ``keep=True`` every new connection is reset too (mode ``cut``)
        until :meth:`heal`; otherwise the mode stays as it was. Marks
        ``FAULT cut NAME``.
        """
        listener = self._reopen() if keep else None
        self._mark(f"cut {self.name}" + (" (and every new connection)" if keep else ""))
        return self._command("cut", keep=keep, listener=listener)

    def refuse(self, cut: bool = True) -> None:
        """Close the listener: new connects get ECONNREFUSED; with ``cut`` (default) reset the live
        connections too, as when the target process is gone. Marks ``FAULT refuse NAME``."""
        self._mark(f"refuse {self.name}")
        self._command("refuse", cut=cut)

    def delay(self, ms: float) -> None:
        """Add ``ms`` milliseconds of latency (0..60000) to every byte read from now on; ``delay(0)``
        is pass. Marks ``FAULT delay NAME ms``."""
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms <= 60000:
            raise ValueError(f"delay is in ms, 0..60000; got {ms!r}")
        listener = self._reopen()
        self._mark(f"delay {self.name} {ms:g} ms")
        self._command("mode", mode="delay" if ms else "pass", delay=ms / 1000, cut_new=False, listener=listener)

    def close(self, timeout: float = 2.0) -> None:
        """Reset every connection, close the listener and stop the relay thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._thread.is_alive():
            self._commands.put(("stop", {}, None))
            self._wake()
            self._thread.join(timeout)
        if not self._thread.is_alive():
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        extra = f" {self.delay_ms:g} ms" if self._mode == "delay" else ""
        return f"<zlab.Proxy {self.name!r} {self.endpoint} -> {self.target} {self._mode}{extra}, {self.connections} connections>"

    # -- plumbing --------------------------------------------------------------------------------
    def _mark(self, text: str) -> None:
        if self._closed:
            raise RuntimeError(f"proxy {self.name!r} is closed; start a new one with lab.proxy(...)")
        self._log.mark("FAULT", text, socket=self.name, endpoint=self.endpoint)

    def _reopen(self) -> socket.socket | None:
        """After ``refuse``: a new listener on the same port (EADDRINUSE retried 2 s), else None.

        Bound here, in the caller's thread, so the relay thread never sleeps in a retry loop.
        """
        if self._closed:
            raise RuntimeError(f"proxy {self.name!r} is closed; start a new one with lab.proxy(...)")
        if self._listener is not None:  # only the relay thread changes it, while a caller waits
            return None
        return _bind_retrying(self.port, _REBIND_S)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:  # pipe full: the thread is awake anyway
            pass

    def _command(self, op: str, **kwargs: Any) -> Any:
        """Hand a change to the relay thread and wait until it is in force."""
        if self._closed or not self._thread.is_alive():
            listener = kwargs.get("listener")
            if listener is not None:
                listener.close()
            raise RuntimeError(f"proxy {self.name!r} is closed; start a new one with lab.proxy(...)")
        slot: list[Any] = []
        done = threading.Event()
        self._commands.put((op, kwargs, (done, slot)))
        self._wake()
        if not done.wait(_COMMAND_TIMEOUT_S):
            raise TimeoutError(f"proxy {self.name!r} did not apply {op!r} within {_COMMAND_TIMEOUT_S:g} s")
        result = slot[0] if slot else None
        if isinstance(result, Exception):
            raise result
        return result

    # -- the relay thread ----------------------------------------------------------------------------
    def _apply(self, op: str, kw: dict[str, Any]) -> Any:
        if kw.get("listener") is not None:
            if self._listener is not None:
                self._listener.close()
            self._listener = kw["listener"]
        if op == "mode":
            self._mode = kw["mode"]
            if "delay" in kw:
                self._delay_s = kw["delay"]
            if "cut_new" in kw:
                self._cut_new = kw["cut_new"]
            return None
        if op == "cut":
            n = self._cut_all()
            if kw["keep"]:
                self._mode, self._cut_new, self._delay_s = "cut", True, 0.0
            return n
        if op == "refuse":
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._mode = "refuse"
            return self._cut_all() if kw["cut"] else 0
        raise ValueError(op)

    def _cut_all(self) -> int:
        n = len(self._pairs)
        for pair in list(self._pairs):
            self._drop(pair)
        self.counters["cut"] += n
        return n

    def _drop(self, pair: _Pair, reset: bool = True) -> None:
        if pair in self._pairs:
            self._pairs.remove(pair)
        for side in (pair.client, pair.upstream):
            if reset:
                _abort(side.sock)
            else:
                side.sock.close()

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        for _ in range(64):
            try:
                client, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.counters["accepted"] += 1
            if self._cut_new:
                self.counters["cut"] += 1
                _abort(client)
                continue
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setblocking(False)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = upstream.connect_ex(self._target_addr)
            if code not in (0, errno.EINPROGRESS):
                self.counters["target_refused"] += 1
                _abort(upstream)
                _abort(client)
                continue
            self._pairs.append(_Pair(_Side(client), _Side(upstream, connecting=code != 0)))

    def _interest(self, side: _Side, now: float, relaying: bool) -> tuple[int, float | None]:
        """The poll mask a side needs now, and when its next delayed bytes fall due."""
        if not relaying:
            return 0, None  # blackhole: only hang-ups and errors are reported
        if side.connecting:
            return _POLLOUT, None
        mask = 0
        if not side.eof_in and side.other.out_bytes < self._cap:
            mask |= _POLLIN
        due = None
        if side.out:
            head = side.out[0][0]
            if head <= now:
                mask |= _POLLOUT
            else:
                due = head
        return mask, due

    def _write(self, side: _Side, now: float) -> bool:
        """Write ``side``'s due bytes; False if the pair must be reset."""
        while side.out and side.out[0][0] <= now:
            item = side.out[0]
            data = item[1]
            if data is None:
                try:
                    side.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    return False
                side.shut_out = True
                side.out.popleft()
                continue
            try:
                n = side.sock.send(data)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            side.out_bytes -= n
            if n < len(data):
                item[1] = data[n:]
                return True
            side.out.popleft()
        return True

    def _run(self) -> None:
        poller = select.poll()
        registered: dict[int, int] = {}
        try:
            while True:
                stop = self._drain_commands()
                if stop:
                    return
                now = time.monotonic()
                relaying = self._mode != "blackhole"
                wanted: dict[int, int] = {self._wake_r: _POLLIN}
                sides: dict[int, _Side] = {}
                pairs: dict[int, _Pair] = {}
                next_due: float | None = None
                if self._listener is not None and relaying:
                    wanted[self._listener.fileno()] = _POLLIN
                for pair in self._pairs:
                    for side in (pair.client, pair.upstream):
                        mask, due = self._interest(side, now, relaying)
                        if due is not None and (next_due is None or due < next_due):
                            next_due = due
                        if side.broken and not mask & (_POLLIN | _POLLOUT):
                            continue  # nothing here would consume the hang-up: do not poll it (no spin)
                        wanted[side.fd] = mask
                        sides[side.fd] = side
                        pairs[side.fd] = pair
                for fd in [fd for fd in registered if fd not in wanted]:
                    poller.unregister(fd)
                    del registered[fd]
                for fd, mask in wanted.items():
                    if registered.get(fd) != mask:
                        poller.register(fd, mask)
                        registered[fd] = mask
                timeout_ms = 1000 if next_due is None else max(0, min(1000, int((next_due - now) * 1000) + 1))
                ready = poller.poll(timeout_ms)
                now = time.monotonic()
                doomed: list[_Pair] = []
                for fd, ev in ready:
                    if fd == self._wake_r:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except OSError:
                            pass
                        continue
                    if self._listener is not None and fd == self._listener.fileno():
                        self._accept()
                        continue
                    side = sides.get(fd)
                    if side is None:
                        continue
                    pair = pairs[fd]
                    if pair in doomed:
                        continue
                    if ev & _BROKEN:
                        side.broken = True
                    if not relaying:
                        continue  # blackhole: remember the hang-up, touch nothing until heal
                    if side.connecting:
                        code = side.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if code or ev & _BROKEN and not ev & _POLLOUT:
                            self.counters["target_refused"] += 1
                            doomed.append(pair)
                        else:
                            side.connecting = False
                        continue
                    ok = True
                    if ev & (_POLLIN | _BROKEN) and registered.get(fd, 0) & _POLLIN:
                        ok = self._read_side(pair, side, now)
                    if ok and ev & (_POLLOUT | _BROKEN) and registered.get(fd, 0) & _POLLOUT:
                        ok = self._write(side, now)
                    if not ok or (ev & select.POLLERR):
                        doomed.append(pair)
                for pair in doomed:
                    self._drop(pair)
                self._finish_closed_pairs()
        finally:
            for pair in list(self._pairs):
                self._drop(pair)
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._drain_commands()

    def _read_side(self, pair: _Pair, side: _Side, now: float) -> bool:
        try:
            data = side.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        dest = side.other
        if not data:
            side.eof_in = True
            dest.out.append([now + self._delay_s, None])
            return True
        dest.out.append([now + self._delay_s, data])
        dest.out_bytes += len(data)
        self.counters["bytes_to_target" if side is pair.client else "bytes_from_target"] += len(data)
        return True

    def _finish_closed_pairs(self) -> None:
        """Close pairs whose both directions ended (FIN read and FIN forwarded each way)."""
        for pair in list(self._pairs):
            c, u = pair.client, pair.upstream
            if c.eof_in and u.eof_in and c.shut_out and u.shut_out:
                self._drop(pair, reset=False)

    def _drain_commands(self) -> bool:
        stop = False
        while True:
            try:
                op, kw, reply = self._commands.get_nowait()
            except queue.Empty:
                return stop
            if op == "stop":
                stop = True
                continue
            try:
                result = None if stop else self._apply(op, kw)
            except Exception as exc:  # report, never kill the relay thread
                result = exc
            if reply is not None:
                done, slot = reply
                slot.append(result)
                done.set()
