"""Connection state: one row per (socket, endpoint), derived only from monitor events.

libzmq reports connections, not sockets: a DISCONNECTED ends one TCP
connection (its value is that connection's descriptor) and the ZeroMQ socket
reconnects by itself, so one socket can have one endpoint retrying while two
others are alive. This module turns a socket's event stream into a small state
machine per endpoint, with the time spent in each state:

============  ================================================================
state         entered on (connecting side)
============  ================================================================
connecting    the first CONNECT_DELAYED (a connect in progress, nothing failed)
connected     CONNECTED: TCP is up, the ZMTP handshake is not done. **Not proof
              of life**: a frozen (SIGSTOPped) peer's kernel still accepts.
handshaken    HANDSHAKE_SUCCEEDED: the only state that means "alive".
retrying      CONNECT_RETRIED, DISCONNECTED or HANDSHAKE_FAILED_*: libzmq will
              try again by itself (the manual's "the socket will be closed" is
              wrong; measured, libzmq 4.3.5). ``attempts`` counts CONNECT_RETRIED
              since the last handshake.
silent-       ``connected`` for longer than ``silent_after_s`` without a
suspected     handshake: the peer's kernel answers, the peer does not (a hung
              process; a heartbeat-caused DISCONNECTED leads here too, because
              the reconnect to a hung peer stops at CONNECTED).
given-up      a RetryLimiter's POLICY marker ``gave up on ENDPOINT ...``.
paused        a POLICY marker ``paused retrying on ENDPOINT ...`` (operator).
closed        an operator's ``disconnected ENDPOINT ...`` marker, or
              MONITOR_STOPPED (the socket was closed or is no longer watched).
============  ================================================================

A bound endpoint has one row in state ``listening`` (``peers`` counts accepted
connections not yet DISCONNECTED) until its listener's CLOSED or MONITOR_STOPPED.
Its HANDSHAKE_SUCCEEDED events carry no descriptor, so they cannot be tied to
one accepted connection: the bound side is summarised, not itemised. (Closing
a bound socket logs its listener's CLOSED and MONITOR_STOPPED, and no
DISCONNECTED for the connections it had accepted: measured, libzmq 4.3.5.)

Why markers? ``disconnect()`` emits no monitor event at all on the socket that
calls it (measured, libzmq 4.3.5: neither DISCONNECTED nor CLOSED), so the only
record that an endpoint was dropped on purpose is the POLICY marker written by
whoever dropped it. Once given up, paused or closed, an endpoint ignores late
CONNECT_RETRIED / CONNECT_DELAYED / CLOSED / DISCONNECTED events (already in
flight when the disconnect happened); CONNECTED, HANDSHAKE_SUCCEEDED or a
``reconnected`` / ``resumed retrying on`` / ``reset retry count of`` marker
re-opens it.

The machine is pure: :class:`ConnectionTracker` is fed :class:`~zlab.events.Event`
records and asked for :meth:`~ConnectionTracker.rows` at a time ``now``, so its
bookkeeping can be tested with a fake clock; ``lab.connections()`` feeds it the
Lab's log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .events import Event

__all__ = [
    "POLICY_PREFIXES",
    "STATES",
    "ConnectionState",
    "ConnectionTracker",
    "connection_table",
    "format_table",
]

#: Every state a row can be in (see the module docstring).
STATES = (
    "connecting",
    "connected",
    "handshaken",
    "retrying",
    "silent-suspected",
    "given-up",
    "paused",
    "closed",
    "listening",
)

#: States in which libzmq no longer tries the endpoint because zlab or an operator stopped it.
PARKED = frozenset({"given-up", "paused", "closed"})

#: POLICY marker text prefixes and the state each one puts its endpoint in.
#: RetryLimiter and the admin endpoint write these; the tracker reads them.
POLICY_PREFIXES: dict[str, str] = {
    "gave up on ": "given-up",
    "paused retrying on ": "paused",
    "disconnected ": "closed",
    "reconnected ": "connecting",
    "resumed retrying on ": "connecting",
    "reset retry count of ": "connecting",
}

_CONNECT_SIDE = frozenset({"CONNECT_DELAYED", "CONNECT_RETRIED", "CONNECTED"})
_BIND_SIDE = frozenset({"LISTENING", "BIND_FAILED", "ACCEPTED", "ACCEPT_FAILED"})
_HANDSHAKE_FAILED = frozenset({"HANDSHAKE_FAILED_NO_DETAIL", "HANDSHAKE_FAILED_PROTOCOL", "HANDSHAKE_FAILED_AUTH"})
# Late events of an attempt that was already in flight when the endpoint was dropped.
_STALE_WHEN_PARKED = frozenset({"CONNECT_DELAYED", "CONNECT_RETRIED", "CLOSED", "DISCONNECTED"}) | _HANDSHAKE_FAILED


@dataclass(frozen=True)
class ConnectionState:
    """One row of the connection table.

    ``since`` is when the current state began and ``time_in_state`` how long ago
    that was (both in s, on the Lab clock); ``time_in`` is the total time spent
    in each state so far (s). ``role`` is ``"connect"`` or ``"bind"``.
    ``attempts`` counts CONNECT_RETRIED since the last HANDSHAKE_SUCCEEDED;
    ``waiting_since`` is when the endpoint last stopped being handshaken (or was
    first seen), ``None`` while handshaken. ``fd`` is the descriptor of the
    current connection (or listener) when an event told it; ``peers`` counts a
    bound endpoint's accepted connections not yet DISCONNECTED.
    """

    socket: str
    endpoint: str
    state: str
    since: float
    time_in_state: float
    role: str = "connect"
    attempts: int = 0
    waiting_since: float | None = None
    fd: int | None = None
    peers: int = 0
    last_event: str = ""
    time_in: Mapping[str, float] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        """True only when handshaken: CONNECTED alone is not proof of life."""
        return self.state == "handshaken"

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict (times rounded to 0.1 ms)."""
        return {
            "socket": self.socket,
            "endpoint": self.endpoint,
            "state": self.state,
            "since": round(self.since, 4),
            "time_in_state": round(self.time_in_state, 4),
            "role": self.role,
            "attempts": self.attempts,
            "waiting_since": None if self.waiting_since is None else round(self.waiting_since, 4),
            "fd": self.fd,
            "peers": self.peers,
            "last_event": self.last_event,
            "time_in": {k: round(v, 4) for k, v in self.time_in.items()},
        }


class _Row:
    __slots__ = ("socket", "endpoint", "role", "state", "since", "attempts", "waiting_since", "fd", "peers",
                 "last_event", "time_in", "listener_fd")

    def __init__(self, socket: str, endpoint: str, role: str, state: str, t: float):
        self.socket = socket
        self.endpoint = endpoint
        self.role = role
        self.state = state
        self.since = t
        self.attempts = 0
        self.waiting_since: float | None = t if role == "connect" else None
        self.fd: int | None = None
        self.peers = 0
        self.last_event = ""
        self.time_in: dict[str, float] = {}
        self.listener_fd: int | None = None

    def move(self, state: str, t: float) -> None:
        if state == self.state:
            return
        self.time_in[self.state] = self.time_in.get(self.state, 0.0) + max(0.0, t - self.since)
        self.state = state
        self.since = max(t, self.since)


class ConnectionTracker:
    """The per-endpoint state machine; pure bookkeeping, fed events in time order.

    ``silent_after_s`` (s, > 0) is how long an endpoint may stay ``connected``
    without HANDSHAKE_SUCCEEDED before it is ``silent-suspected``; a ZMTP
    handshake takes about a millisecond on loopback (measured), so the default
    1 s leaves room for a slow network.
    """

    def __init__(self, *, silent_after_s: float = 1.0):
        if not isinstance(silent_after_s, (int, float)) or isinstance(silent_after_s, bool) or silent_after_s <= 0:
            raise ValueError(f"silent_after_s is in seconds and must be > 0; got {silent_after_s!r}")
        self.silent_after_s = float(silent_after_s)
        self._rows: dict[tuple[str, str], _Row] = {}

    # -- feeding -------------------------------------------------------------------
    def extend(self, events: Iterable[Event]) -> None:
        """Feed many events (see :meth:`feed`)."""
        for ev in events:
            self.feed(ev)

    def feed(self, ev: Event) -> None:
        """Advance the machine by one event (monitor event or POLICY marker); others are ignored."""
        if ev.event == "MONITOR_STOPPED":
            for row in self._rows.values():
                if row.socket == ev.socket and row.state != "closed":
                    self._advance(row, ev.t)
                    row.move("closed", ev.t)
                    row.last_event = ev.event
            return
        if ev.event == "POLICY":
            self._feed_policy(ev)
            return
        if ev.is_marker or not ev.endpoint:
            return
        key = (ev.socket, ev.endpoint)
        row = self._rows.get(key)
        if row is None or (row.state == "closed" and row.last_event == "MONITOR_STOPPED"):
            # A new row (or a new socket reusing a closed socket's label): only an
            # event that says which side it is can start one.
            if ev.event in _CONNECT_SIDE:
                row = _Row(ev.socket, ev.endpoint, "connect", "connecting", ev.t)
            elif ev.event in _BIND_SIDE:
                row = _Row(ev.socket, ev.endpoint, "bind", "listening", ev.t)
            else:
                return
            self._rows[key] = row
        self._advance(row, ev.t)
        if row.role == "connect":
            self._feed_connect(row, ev)
        else:
            self._feed_bind(row, ev)

    def _feed_connect(self, row: _Row, ev: Event) -> None:
        name, t = ev.event, ev.t
        if row.state in PARKED and name in _STALE_WHEN_PARKED:
            return  # an attempt already in flight when the endpoint was dropped
        row.last_event = name
        if name == "HANDSHAKE_SUCCEEDED":
            row.attempts = 0
            row.waiting_since = None
            row.move("handshaken", t)
            return
        if row.waiting_since is None:
            row.waiting_since = t
        if name == "CONNECTED":
            row.fd = ev.value
            row.move("connected", t)
        elif name == "CONNECT_DELAYED":
            row.move("retrying" if row.attempts else "connecting", t)
        elif name == "CONNECT_RETRIED":
            row.attempts += 1
            row.move("retrying", t)
        elif name == "DISCONNECTED" or name in _HANDSHAKE_FAILED:
            row.move("retrying", t)
        # CLOSED on the connecting side is a failed attempt's own descriptor: no change.

    def _feed_bind(self, row: _Row, ev: Event) -> None:
        name = ev.event
        row.last_event = name
        if name == "LISTENING":
            row.listener_fd = row.fd = ev.value
            row.peers = 0
            row.move("listening", ev.t)
        elif name == "BIND_FAILED":
            row.move("closed", ev.t)
        elif name == "ACCEPTED":
            row.peers += 1
        elif name == "DISCONNECTED":
            row.peers = max(0, row.peers - 1)
        elif name == "CLOSED" and ev.value == row.listener_fd:
            row.peers = 0
            row.move("closed", ev.t)

    def _feed_policy(self, ev: Event) -> None:
        if not ev.endpoint or not ev.socket:
            return
        for prefix, state in POLICY_PREFIXES.items():
            if ev.detail.startswith(prefix):
                break
        else:
            return
        key = (ev.socket, ev.endpoint)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _Row(ev.socket, ev.endpoint, "connect", state, ev.t)
        if row.role != "connect":
            return
        self._advance(row, ev.t)
        row.last_event = "POLICY"
        if state == "connecting":  # reconnected / resumed / reset: count afresh
            row.attempts = 0
            row.waiting_since = ev.t
            if row.state in PARKED or not ev.detail.startswith("reset "):
                row.move("connecting", ev.t)  # a reset leaves a live retry loop retrying
        else:
            row.move(state, ev.t)

    def _advance(self, row: _Row, t: float) -> None:
        """Apply the one time-driven transition: connected too long -> silent-suspected."""
        if row.state == "connected" and t - row.since >= self.silent_after_s:
            row.move("silent-suspected", row.since + self.silent_after_s)

    # -- reading -------------------------------------------------------------------
    def rows(self, now: float, socket: str | None = None) -> list[ConnectionState]:
        """The table at time ``now`` (s, Lab clock), optionally for one socket; sorted by socket, endpoint."""
        out = []
        for (sock, endpoint), row in sorted(self._rows.items()):
            if socket is not None and sock != socket:
                continue
            state, since = row.state, row.since
            time_in = dict(row.time_in)
            if state == "connected" and now - since >= self.silent_after_s:
                switch = since + self.silent_after_s
                time_in["connected"] = time_in.get("connected", 0.0) + self.silent_after_s
                state, since = "silent-suspected", switch
            time_in[state] = time_in.get(state, 0.0) + max(0.0, now - since)
            out.append(ConnectionState(
                socket=sock, endpoint=endpoint, state=state, since=since, time_in_state=max(0.0, now - since),
                role=row.role, attempts=row.attempts, waiting_since=row.waiting_since, fd=row.fd,
                peers=row.peers, last_event=row.last_event, time_in=time_in,
            ))
        return out

    def __len__(self) -> int:
        return len(self._rows)


def connection_table(events: Iterable[Event], now: float, *, silent_after_s: float = 1.0,
                     socket: str | None = None) -> list[ConnectionState]:
    """Run the state machine over ``events`` (sorted by ``t``) and return the table at ``now`` (s)."""
    tracker = ConnectionTracker(silent_after_s=silent_after_s)
    tracker.extend(events)
    return tracker.rows(now, socket)


def format_table(rows: Iterable[ConnectionState | Mapping[str, Any]]) -> str:
    """A plain-text table of connection rows (``ConnectionState`` or their ``to_record()`` dicts)."""
    records = [r.to_record() if isinstance(r, ConnectionState) else dict(r) for r in rows]
    if not records:
        return "no connections seen yet"
    lines = [f"{'socket':<10} {'endpoint':<28} {'role':<7} {'state':<16} {'for':>9} {'attempts':>8} {'peers':>5}"]
    for r in records:
        peers = str(r.get("peers", 0)) if r.get("role") == "bind" else "-"
        lines.append(
            f"{r['socket']:<10} {r['endpoint']:<28} {r.get('role', ''):<7} {r['state']:<16} "
            f"{r['time_in_state']:>7.2f} s {r.get('attempts', 0):>8} {peers:>5}"
        )
    return "\n".join(lines)
