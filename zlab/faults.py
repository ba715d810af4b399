"""Faults that need no peer process: a non-ZMTP client, a port in use, a security mismatch.

Each function injects one fault into a Lab with real sockets, marks it in the
log (``FAULT ...``), waits a bounded time for libzmq's reaction and returns a
small result a lesson can print. What libzmq reports was measured with pyzmq
27.3 / libzmq 4.3.5 on loopback:

* :func:`send_garbage` -- text that is not ZMTP (an HTTP request): the bound
  socket answers with its own greeting and then waits; nothing is reported
  until the client gives up, then HANDSHAKE_FAILED_NO_DETAIL (EPIPE) and
  DISCONNECTED. A broken ZMTP greeting (:data:`BAD_GREETING`) fails at once:
  HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH.
* :func:`bind_conflict` -- a second bind on a port in use raises EADDRINUSE,
  and the monitor reports CLOSED (the attempt's descriptor) then BIND_FAILED
  (value 98, EADDRINUSE).
* :func:`mechanism_mismatch` -- a PLAIN (or CURVE) server and a NULL client:
  both sides report HANDSHAKE_FAILED_PROTOCOL with
  ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH (0x11000002), then DISCONNECTED;
  the client does not retry the handshake in a loop.
"""

from __future__ import annotations

import socket as _socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zmq

from .events import PROTOCOL_ERRORS, Event

if TYPE_CHECKING:
    from .lab import Lab

__all__ = [
    "BAD_GREETING",
    "HTTP_REQUEST",
    "BindConflict",
    "Garbage",
    "MechanismMismatch",
    "bind_conflict",
    "mechanism_mismatch",
    "own_reaction",
    "refused_ports",
    "send_garbage",
]

#: A plain-text client on a ZeroMQ port: what a load balancer's HTTP health check sends.
HTTP_REQUEST = b"GET /health HTTP/1.1\r\nHost: zlab\r\nUser-Agent: zlab-faults\r\n\r\n"
#: A ZMTP 3.0 greeting (signature, version 3.0) naming a mechanism that does not exist.
BAD_GREETING = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"GARBAGE".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def refused_ports(count: int) -> list[int]:
    """``count`` distinct ports on 127.0.0.1 that nobody listens on: a connect there is refused.

    Each was bound by the kernel's choice, then released. Used to make retry storms
    without a peer. A port can be taken again by someone else later, as any free port.
    """
    held = []
    for _ in range(count):
        s = _socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


_HANDSHAKE_END = ("HANDSHAKE_FAILED_NO_DETAIL", "HANDSHAKE_FAILED_PROTOCOL", "HANDSHAKE_FAILED_AUTH",
                  "DISCONNECTED", "HANDSHAKE_SUCCEEDED")


@dataclass
class Garbage:
    """What :func:`send_garbage` did and what the bound socket reported.

    ``reply`` is what the socket sent back (its ZMTP greeting, 10 bytes or
    more); ``closed_by_server`` says whether it hung up on us (else we closed
    after ``hold`` s); ``events`` are the target's events from the fault on;
    ``accepted`` is the target's ACCEPTED for our connection (value: its fd);
    ``reaction`` is our connection's handshake end (see :func:`own_reaction`).
    """

    socket: str
    endpoint: str
    sent: bytes
    reply: bytes
    closed_by_server: bool
    events: list[Event] = field(default_factory=list)
    accepted: Event | None = None

    @property
    def reaction(self) -> Event | None:
        return own_reaction(self.events, self.accepted)

    def __str__(self) -> str:
        r = self.reaction
        said = f"{r.event} ({r.meaning})" if r else "nothing"
        who = "the socket hung up" if self.closed_by_server else "we hung up"
        return f"sent {len(self.sent)} non-ZMTP bytes to {self.socket} ({self.endpoint}); {who}; it reported {said}"


@dataclass
class BindConflict:
    """A second bind on a port in use: the ``error`` (a ValueError) and the BIND_FAILED event, if any."""

    socket: str
    endpoint: str
    error: ValueError
    event: Event | None
    events: list[Event] = field(default_factory=list)

    def __str__(self) -> str:
        seen = f"{self.event.event} ({self.event.meaning})" if self.event else "no BIND_FAILED event"
        return f"bind {self.endpoint} from {self.socket}: {self.error}; the monitor reported {seen}"


@dataclass
class MechanismMismatch:
    """A security-mechanism mismatch: what each side reported, and the protocol-error code."""

    mechanism: str
    server: str
    client: str
    endpoint: str
    server_event: Event | None
    client_event: Event | None
    events: list[Event] = field(default_factory=list)

    @property
    def code(self) -> int | None:
        ev = self.server_event or self.client_event
        return ev.value if ev is not None else None

    @property
    def code_name(self) -> str:
        return PROTOCOL_ERRORS.get(self.code, "") if self.code is not None else ""

    def __str__(self) -> str:
        return (f"{self.mechanism} server {self.server} vs NULL client {self.client}: "
                f"server {self.server_event.event if self.server_event else 'nothing'}, "
                f"client {self.client_event.event if self.client_event else 'nothing'}"
                + (f", {self.code_name} (0x{self.code:08x})" if self.code is not None else ""))


_HANDSHAKE_DONE = tuple(name for name in _HANDSHAKE_END if name != "DISCONNECTED")


def own_reaction(events: list[Event], accepted: Event | None) -> Event | None:
    """The handshake end of the connection ``accepted`` announced, in one bound socket's ``events``.

    A late DISCONNECTED (or handshake failure) of an *earlier* connection can be
    logged after a new fault's mark, so the first handshake-end event is not
    necessarily ours. libzmq's I/O thread (one per Lab context) emits ACCEPTED,
    then for that connection a HANDSHAKE_* event immediately followed by its
    DISCONNECTED (value: the fd) -- ``stream_engine_base_t::error`` in libzmq
    4.3.5. So: only events after ``accepted`` count; a DISCONNECTED of another
    fd, and the handshake event just before it, belong to another connection.
    Returns our HANDSHAKE_* event, else our DISCONNECTED, else None.
    ``accepted`` None (a target outside the Lab): None.
    """
    if accepted is None:
        return None
    later = [ev for ev in events if not ev.is_marker]
    try:
        later = later[later.index(accepted) + 1:]
    except ValueError:
        later = [ev for ev in later if ev.t > accepted.t]
    pending: Event | None = None  # a handshake end whose DISCONNECTED is not seen yet
    for ev in later:
        if ev.event in _HANDSHAKE_DONE:
            pending = ev
        elif ev.event == "DISCONNECTED":
            if ev.value == accepted.value:
                return pending or ev
            pending = None  # that handshake end (if any) was another connection's
    return pending


def _await_own_end(lab: Lab, label: str, mark: Event, timeout: float) -> Event | None:
    """Wait (up to ``timeout`` s) for our connection's ACCEPTED, then its DISCONNECTED; return the ACCEPTED."""
    deadline = time.monotonic() + timeout
    try:
        accepted = lab.wait_for("ACCEPTED", label, since=mark.t, timeout=timeout)
    except TimeoutError:
        return None
    n = 1
    while (left := deadline - time.monotonic()) > 0:
        try:
            ev = lab.wait_for("DISCONNECTED", label, since=accepted.t, count=n, timeout=left)
        except TimeoutError:
            break
        if ev.value == accepted.value:
            break
        n += 1
    return accepted


def _free_name(lab: Lab, base: str) -> str:
    if base not in lab.sockets:
        return base
    n = 1
    while f"{base}{n}" in lab.sockets:
        n += 1
    return f"{base}{n}"


def _resolve(lab: Lab, target: Any) -> tuple[str, str]:
    """(label in the log, concrete tcp endpoint) of a socket name, a socket, a Peer or an endpoint."""
    if isinstance(target, zmq.Socket):
        for label, sock in lab.sockets.items():
            if sock is target:
                return label, lab.endpoint(sock)
        raise ValueError("that socket is not in this Lab; pass its name or its endpoint")
    if isinstance(target, str):
        if target in lab.sockets:
            return target, lab.endpoint(target)
        for label, sock in lab.sockets.items():
            if sock.last_endpoint.decode() == target:
                return label, target
        return "", target
    name, endpoint = getattr(target, "name", None), getattr(target, "endpoint", None)
    if isinstance(name, str) and isinstance(endpoint, str):  # a Peer
        return name, endpoint
    raise ValueError(f"expected a socket name, a socket, a Peer or a 'tcp://HOST:PORT' endpoint; got {target!r}")


def _host_port(endpoint: str) -> tuple[str, int]:
    if not endpoint.startswith("tcp://"):
        raise ValueError(f"this fault needs a bound tcp endpoint ('tcp://127.0.0.1:PORT'); got {endpoint!r}")
    host, _, port = endpoint[6:].rpartition(":")
    if not port.isdigit():
        raise ValueError(f"the endpoint needs a concrete port (bind first); got {endpoint!r}")
    host = host.strip("[]")
    return ("127.0.0.1" if host in ("*", "0.0.0.0", "localhost") else host), int(port)


def send_garbage(lab: Lab, target: Any, data: bytes = HTTP_REQUEST, *, hold: float = 0.3,
                 timeout: float = 2.0) -> Garbage:
    """Connect a raw TCP client to a bound socket, send ``data`` (not ZMTP), and report the reaction.

    ``target`` is the bound socket's name, the socket, a bind Peer, or its
    endpoint. The client reads what the socket sends back for ``hold``
    seconds (or until it hangs up), closes, then waits up to ``timeout`` s for
    the target's ACCEPTED of this connection and the DISCONNECTED carrying its
    fd, so a late event of an earlier connection is never taken for the
    reaction (see :func:`own_reaction`). Marks ``FAULT garbage
    -> NAME``. Measured (libzmq 4.3.5): :data:`HTTP_REQUEST` gives
    HANDSHAKE_FAILED_NO_DETAIL (EPIPE) + DISCONNECTED once we close;
    :data:`BAD_GREETING` gives HANDSHAKE_FAILED_PROTOCOL (mechanism mismatch)
    at once and the socket hangs up. Raises ``ValueError`` for a target that
    is not a bound tcp endpoint, ``ConnectionRefusedError`` if nothing listens.
    """
    label, endpoint = _resolve(lab, target)
    host, port = _host_port(endpoint)
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise ValueError(f"data must be non-empty bytes; got {data!r:.60}")
    mark = lab.mark("FAULT", f"garbage -> {label or endpoint}", socket=label, endpoint=endpoint)
    reply = b""
    closed_by_server = False
    with _socket.create_connection((host, port), timeout=timeout) as client:
        client.sendall(bytes(data))
        deadline = time.monotonic() + hold
        while (left := deadline - time.monotonic()) > 0:
            client.settimeout(left)
            try:
                chunk = client.recv(4096)
            except TimeoutError:
                break
            except OSError:  # reset by the socket
                closed_by_server = True
                break
            if not chunk:
                closed_by_server = True
                break
            reply += chunk
    events: list[Event] = []
    accepted: Event | None = None
    if label:
        accepted = _await_own_end(lab, label, mark, timeout)
        events = lab.events(label, since=mark.t)
    return Garbage(label, endpoint, bytes(data), reply, closed_by_server, events, accepted)


def bind_conflict(lab: Lab, target: Any, *, kind: str = "PUB", name: str | None = None,
                  timeout: float = 1.0) -> BindConflict:
    """Bind a new socket of ``kind`` on the endpoint ``target`` already holds; report the failure.

    ``target``: a bound socket's name, the socket, a bind Peer or a
    ``tcp://127.0.0.1:PORT`` endpoint. The new socket (named ``name``,
    default ``conflict``) is monitored from birth, so the BIND_FAILED event
    (value EADDRINUSE) is captured; it is closed afterwards. Returns the
    :class:`ValueError` the bind raised (not raised here) and the event. Marks
    ``FAULT bind conflict on ENDPOINT``. Raises ``ValueError`` if the port
    was in fact free.
    """
    _, endpoint = _resolve(lab, target)
    _host_port(endpoint)
    label = _free_name(lab, name or "conflict")
    sock = lab.socket(kind, label)
    try:
        mark = lab.mark("FAULT", f"bind conflict on {endpoint}", socket=label, endpoint=endpoint)
        try:
            lab.bind(sock, endpoint, retry_for=0)
        except ValueError as exc:
            error = exc
        else:
            raise ValueError(f"{endpoint} was free: nothing was bound there; pass an endpoint a socket holds")
        try:
            event: Event | None = lab.wait_for("BIND_FAILED", label, since=mark.t, timeout=timeout)
        except TimeoutError:
            event = None
        events = lab.events(label, since=mark.t)
    finally:
        sock.close()
    return BindConflict(label, endpoint, error, event, events)


def mechanism_mismatch(lab: Lab, mechanism: str = "PLAIN", *, timeout: float = 2.0,
                       keep: bool = False) -> MechanismMismatch:
    """A ``mechanism`` (``"PLAIN"`` or ``"CURVE"``) server ROUTER and a NULL client DEALER.

    Both are Lab sockets on 127.0.0.1; waits up to ``timeout`` s for
    HANDSHAKE_FAILED_PROTOCOL on each side. Measured (libzmq 4.3.5): both
    report ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, then DISCONNECTED, and
    the client does not loop. Marks ``FAULT mechanism mismatch``. The sockets
    are closed afterwards unless ``keep``. ``ValueError`` for another
    mechanism, or CURVE on a libzmq built without it.
    """
    mech = str(mechanism).upper()
    if mech == "PLAIN":
        server_opts: dict[str, Any] = {"plain_server": 1}
    elif mech == "CURVE":
        if not zmq.has("curve"):
            raise ValueError("this libzmq has no CURVE support (zmq.has('curve') is False); use 'PLAIN'")
        server_opts = {"curve_server": 1, "curve_secretkey": zmq.curve_keypair()[1]}
    else:
        raise ValueError(f"mechanism must be 'PLAIN' or 'CURVE' (the client uses NULL); got {mechanism!r}")
    server = lab.socket("ROUTER", _free_name(lab, f"{mech.lower()}_server"), bind="tcp", **server_opts)
    server_name = next(label for label, s in lab.sockets.items() if s is server)
    endpoint = lab.endpoint(server)
    client_name = _free_name(lab, "null_client")
    mark = lab.mark("FAULT", f"mechanism mismatch: {mech} server, NULL client", socket=client_name, endpoint=endpoint)
    client = lab.socket("DEALER", client_name, connect=endpoint)
    try:
        found: dict[str, Event | None] = {}
        for label in (server_name, client_name):
            try:
                found[label] = lab.wait_for("HANDSHAKE_FAILED_PROTOCOL", label, since=mark.t, timeout=timeout)
            except TimeoutError:
                found[label] = None
        events = [ev for ev in lab.events(since=mark.t) if ev.socket in (server_name, client_name)]
    finally:
        if not keep:
            client.close()
            server.close()
    return MechanismMismatch(mech, server_name, client_name, endpoint, found[server_name], found[client_name], events)
