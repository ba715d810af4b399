"""A live dashboard for notebooks: change the options, inject faults, watch the events arrive.

``Dashboard()`` builds a small rig in a fresh :class:`~zlab.Lab` -- by default a
PUB in the notebook connected to a SUB in a child process (a peer), and a
second PUB reaching the same SUB through the fault proxy -- and shows:

* inputs for the options the lessons are about (heartbeat_ivl,
  heartbeat_timeout, reconnect_ivl, reconnect_ivl_max, connect_timeout,
  linger, sndhwm); **apply** closes the Lab and builds everything again with
  the new values, because most of them only act on new connections;
* a button per fault (kill, pause, resume, restart, cut, blackhole, heal,
  disconnect); a fault the rig cannot do is greyed out;
* live counters per event, a live event table (latest first, each value with
  its meaning) and a timeline image that refreshes;
* a **stop** button: the same as :meth:`Dashboard.close`.

Threads. Widgets are created and displayed in the caller's (main) thread,
and the buttons run there too (ipykernel handles widget messages on its
main thread), so only the main thread touches the Lab's sockets. The
EventLog calls the subscription on its dispatcher thread; that callback only
appends to a bounded buffer and a counter. One refresher thread -- a daemon
waiting on a ``threading.Event`` with a timeout, like rich's
``_RefreshThread`` -- copies the buffer at ``refresh_hz`` (4 Hz by default),
sets the widgets' values inside ``hold_sync()`` and redraws the timeline at
most once per ``timeline_s`` (longer when drawing takes long: it never uses
more than about a quarter of a core). It never prints or displays (BRIEF,
"Jupyter facts that bite"). :meth:`Dashboard.close` stops it and closes the
Lab it built; creating a dashboard with the ``name`` of an open one closes
the old one first, so re-running a cell leaks nothing.

Without a widget front end (a terminal, nbconvert, nbval), or without
ipywidgets, the dashboard still builds the rig, and showing it gives a static
summary -- counts and the latest events -- instead of widgets. The detection
is injectable (``frontend=``); ``ZLAB_WIDGETS=0`` in the environment forces
the static summary.

ipywidgets and matplotlib are imported here only when a dashboard is built.
"""

from __future__ import annotations

import collections
import html
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import zmq

from .events import Event
from .lab import Lab
from .options import OPTIONS, validate_option
from .render import EventTable
from .topology import Topology

__all__ = [
    "CONTROLS",
    "FAULT_BUTTONS",
    "Control",
    "Dashboard",
    "Rig",
    "Summary",
    "close_all",
    "default_rig",
    "peer_rig",
    "socket_options",
    "socket_rig",
    "widget_frontend_available",
]

#: The fault buttons every dashboard shows, in order; a rig without one greys it out.
FAULT_BUTTONS: tuple[str, ...] = ("kill", "pause", "resume", "restart", "cut", "blackhole", "heal", "disconnect")

_FAULT_HELP = {
    "kill": "SIGKILL the peer process: its kernel closes the TCP connection (a crash)",
    "pause": "SIGSTOP the peer: the connection stays open and silent; only heartbeats notice",
    "resume": "SIGCONT the paused peer",
    "restart": "start a new peer process on the same endpoint",
    "cut": "the proxy drops every connection it relays",
    "blackhole": "the proxy stalls the byte stream, like a network partition",
    "heal": "the proxy relays again",
    "disconnect": "pub.disconnect(endpoint): give up on the peer; no more reconnects",
    "connect": "pub.connect(endpoint) again after a disconnect",
    "close sub": "close the bound SUB socket (its port stops listening)",
    "rebind sub": "a new SUB binds the same endpoint",
}


@dataclass(frozen=True)
class Control:
    """One option input: its range and step (ms unless the option says otherwise), and whether it is a slider."""

    name: str
    minimum: int
    maximum: int
    step: int
    slider: bool


#: The option inputs, in display order (ranges chosen for lessons; the options module has libzmq's).
CONTROLS: tuple[Control, ...] = (
    Control("heartbeat_ivl", 0, 5000, 50, True),
    Control("heartbeat_timeout", -1, 60000, 50, False),
    Control("reconnect_ivl", 1, 5000, 1, True),
    Control("reconnect_ivl_max", 0, 20000, 100, True),
    Control("connect_timeout", 0, 10000, 100, True),
    Control("linger", -1, 10000, 100, False),
    Control("sndhwm", 0, 1_000_000, 100, False),
)
_DEFAULT_VALUES = {c.name: (0 if c.name == "linger" else OPTIONS[c.name].default) for c in CONTROLS}

_OPEN: dict[str, weakref.ref[Dashboard]] = {}
_OPEN_LOCK = threading.Lock()


def socket_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options to set on a socket: those that differ from libzmq's default, and always LINGER.

    Leaving defaults unset matters: libzmq 4.3.5 reads heartbeat_timeout as -1
    ("same as heartbeat_ivl") but refuses to set -1 (EINVAL, measured).
    """
    return {k: v for k, v in values.items() if k == "linger" or v != OPTIONS[k].default}


# -- rigs: what the buttons act on ---------------------------------------------------------------
@dataclass
class Rig:
    """What a dashboard's build function returns: a description and the fault actions.

    ``faults`` maps a button name (``"kill"``, or any other label) to a
    callable run in the main thread when the button is clicked; each action
    marks the log itself (``lab.mark("FAULT", ...)``; peers and proxies do).
    ``sockets`` names the Lab sockets the rig made, for the record.
    """

    description: str = ""
    faults: dict[str, Callable[[], Any]] = field(default_factory=dict)
    sockets: dict[str, zmq.Socket] = field(default_factory=dict)


def _disconnect(lab: Lab, sock: zmq.Socket, name: str, endpoint: str, timeout: float = 0.5) -> None:
    """``sock.disconnect(endpoint)``, then keep using the socket until the connection is gone.

    libzmq finishes a disconnect only when the owning thread next uses the
    socket, and in two steps (the session's pipe termination is acknowledged
    through the socket): one ``getsockopt`` is not always enough. The side
    that disconnects logs no event; its peer logs DISCONNECTED (measured,
    libzmq 4.3.5), so this pumps the socket until that shows (at most
    ``timeout`` s).
    """
    mark = lab.mark("FAULT", f"disconnect {name}", socket=name, endpoint=endpoint)
    sock.disconnect(endpoint)
    deadline = time.monotonic() + timeout
    while True:
        sock.getsockopt(zmq.EVENTS)  # processes the socket's pending commands
        if any(ev.endpoint == endpoint for ev in lab.events(event="DISCONNECTED", since=mark.t)):
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.005)


def _connect(lab: Lab, sock: zmq.Socket, name: str, endpoint: str) -> None:
    lab.mark("NOTE", f"connect {name}", socket=name, endpoint=endpoint)
    sock.connect(endpoint)
    sock.getsockopt(zmq.EVENTS)


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def peer_rig(lab: Lab, options: Mapping[str, Any], *, proxy: bool = True, timeout: float = 10.0) -> Rig:
    """A SUB in a child process (``sub0``), a PUB here connected to it (``pub``), and -- when
    ``proxy`` and zlab.proxy is available -- a second PUB (``pub~proxy``) reaching it through
    the fault proxy (``proxy0``). ``options`` go to the PUBs (the connecting side).

    Buttons: kill / pause / resume / restart act on the peer; cut / blackhole /
    heal on the proxy; disconnect (and connect) on ``pub``. Through the proxy
    a dead SUB shows as CONNECTED then HANDSHAKE_FAILED_NO_DETAIL, not as the
    retry loop: what the monitor sees depends on what stands in between
    (BRIEF). Waits up to ``timeout`` s for the handshakes.
    """
    peer = lab.peer("SUB", "sub0", bind="tcp")
    pub = lab.socket("PUB", "pub", connect=peer.endpoint, **options)
    faults: dict[str, Callable[[], Any]] = {
        "kill": peer.kill, "pause": peer.pause, "resume": peer.resume, "restart": peer.restart,
        "disconnect": lambda: _disconnect(lab, pub, "pub", peer.endpoint),
        "connect": lambda: _connect(lab, pub, "pub", peer.endpoint),
    }
    sockets = {"pub": pub}
    description = f"pub (here) → sub0 (child process, {peer.endpoint})"
    relay = None
    if proxy and hasattr(lab, "proxy") and _has_module("zlab.proxy"):
        relay = lab.proxy(peer.endpoint, name="proxy0")
        pubx = lab.socket("PUB", "pub~proxy", connect=relay.endpoint, **options)
        sockets["pub~proxy"] = pubx
        faults.update(cut=relay.cut, blackhole=relay.blackhole, heal=relay.heal)
        description += "; pub~proxy → proxy0 → sub0"
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", timeout=timeout)
    if relay is not None:
        lab.wait_for("HANDSHAKE_SUCCEEDED", "pub~proxy", timeout=timeout)
    return Rig(description, faults, sockets)


def socket_rig(lab: Lab, options: Mapping[str, Any], *, timeout: float = 5.0) -> Rig:
    """A SUB (``sub0``) bound here and a PUB (``pub``) connected to it, both in this process.

    For machines without child-process peers. Buttons: "close sub" (the SUB
    dies: the PUB sees DISCONNECTED, then the retry loop), "rebind sub" (a new
    SUB binds the same endpoint: the PUB reconnects by itself), disconnect and
    connect on the PUB. ``options`` go to the PUB.
    """
    sub = lab.socket("SUB", "sub0", bind="tcp", subscribe=b"")
    endpoint = lab.endpoint(sub)
    pub = lab.socket("PUB", "pub", connect=endpoint, **options)
    state = {"sub": sub}

    def close_sub() -> None:
        if state["sub"] is None or state["sub"].closed:
            raise RuntimeError("sub0 is already closed; click 'rebind sub' first")
        lab.mark("FAULT", "close sub0", socket="sub0", endpoint=endpoint)
        state["sub"].close()

    def rebind_sub() -> None:
        if state["sub"] is not None and not state["sub"].closed:
            raise RuntimeError("sub0 is still open; click 'close sub' first")
        lab.mark("NOTE", "a new sub0 binds the same endpoint", socket="sub0", endpoint=endpoint)
        new = lab.socket("SUB", "sub0", subscribe=b"")
        state["sub"] = new
        lab.bind(new, endpoint)

    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", timeout=timeout)
    faults = {
        "close sub": close_sub,
        "rebind sub": rebind_sub,
        "disconnect": lambda: _disconnect(lab, pub, "pub", endpoint),
        "connect": lambda: _connect(lab, pub, "pub", endpoint),
    }
    return Rig(f"pub → sub0 ({endpoint}), both in this process", faults, {"pub": pub, "sub0": sub})


def default_rig(lab: Lab, options: Mapping[str, Any]) -> Rig:
    """:func:`peer_rig` where child-process peers are available, else :func:`socket_rig`."""
    if hasattr(lab, "peer") and _has_module("zlab.peer"):
        return peer_rig(lab, options)
    return socket_rig(lab, options)


def _rig_from_topology(lab: Lab, topo: Topology) -> Rig:
    """Buttons for a Topology a build function returned: "close NAME" for each socket that listens
    (its LISTENING event says so), "disconnect" for the first socket that connected."""
    faults: dict[str, Callable[[], Any]] = {}
    for name, sock in topo.sockets.items():
        if sock.closed:
            continue
        listening = lab.events(name, "LISTENING")
        if listening:
            def close(sock: zmq.Socket = sock, name: str = name, endpoint: str = listening[0].endpoint) -> None:
                lab.mark("FAULT", f"close {name}", socket=name, endpoint=endpoint)
                sock.close()

            faults[f"close {name}"] = close
    for name, sock in topo.sockets.items():
        connected = lab.events(name, ("CONNECTED", "CONNECT_DELAYED"))
        if connected and not sock.closed:
            endpoint = connected[0].endpoint
            faults["disconnect"] = lambda s=sock, n=name, e=endpoint: _disconnect(lab, s, n, e)
            break
    return Rig(f"{type(topo).__name__}: {', '.join(topo.sockets)}", faults, dict(topo.sockets))


# -- front-end detection -----------------------------------------------------------------------------
def widget_frontend_available() -> bool:
    """True when widgets can be shown: ipywidgets is importable and we run in a Jupyter kernel.

    A terminal IPython or plain Python has no widget front end. A kernel run by
    nbconvert or nbval cannot tell that nobody renders its widgets: there, the
    dashboard's display also carries the static summary as text, which those
    tools keep; set ``ZLAB_WIDGETS=0`` to skip the widgets altogether.
    """
    if os.environ.get("ZLAB_WIDGETS", "").strip().lower() in ("0", "no", "off", "false", "static"):
        return False
    if not _has_module("ipywidgets"):
        return False
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


# -- the live model ------------------------------------------------------------------------------------
class _Live:
    """What the subscription feeds and the refresher reads: bounded, guarded by one lock."""

    def __init__(self, rows: int):
        self.lock = threading.Lock()
        self.generation = 0
        self.recent: collections.deque[Event] = collections.deque(maxlen=rows)
        self.counts: collections.Counter[str] = collections.Counter()
        self.total = 0
        self.dirty = True

    def reset(self) -> int:
        with self.lock:
            self.generation += 1
            self.recent.clear()
            self.counts.clear()
            self.total = 0
            self.dirty = True
            return self.generation

    def feed(self, generation: int, batch: list[Event]) -> None:
        """The subscription callback (dispatcher thread): append and count, nothing else."""
        with self.lock:
            if generation != self.generation:
                return  # a batch from the Lab before the last rebuild
            self.recent.extend(batch)
            self.counts.update(ev.event for ev in batch)
            self.total += len(batch)
            self.dirty = True

    def snapshot(self, consume: bool = True) -> tuple[list[Event], dict[str, int], int, bool]:
        """A copy of the state; ``consume`` clears the "changed since" flag (the refresher's read)."""
        with self.lock:
            dirty = self.dirty
            if consume:
                self.dirty = False
            return list(self.recent), dict(self.counts), self.total, dirty


class _RefreshThread(threading.Thread):
    """Calls ``tick()`` every ``period`` s until :meth:`stop` (rich's ``_RefreshThread`` pattern)."""

    def __init__(self, tick: Callable[[], None], period: float, name: str):
        super().__init__(name=name, daemon=True)
        self._tick = tick
        self.period = period
        self.done = threading.Event()
        self.ticks = 0
        self.errors = 0
        self.last_error: BaseException | None = None

    def run(self) -> None:
        while not self.done.wait(self.period):
            try:
                self._tick()
                self.ticks += 1
            except Exception as exc:  # never let a drawing bug kill the refresher; shown in the status line
                self.errors += 1
                self.last_error = exc

    def stop(self, timeout: float = 3.0) -> None:
        self.done.set()
        if self is not threading.current_thread():
            self.join(timeout)


# -- rendering (pure: events in, HTML out) ------------------------------------------------------------------
def _family_color(event: str) -> str:
    from .plot import _EVENT_STYLE, _MARKER_STYLE  # the plot's palette (no matplotlib import)

    if event in _MARKER_STYLE:
        return _MARKER_STYLE[event][0]
    style = _EVENT_STYLE.get(event)
    return style[0].color if style else "#555555"


def _event_order(event: str) -> tuple[int, str]:
    from .plot import _EVENT_ORDER

    return (_EVENT_ORDER.get(event, 90 if event not in ("FAULT", "POLICY", "NOTE") else 95), event)


def counts_html(counts: Mapping[str, int]) -> str:
    """Counters per event as coloured badges, in the timeline's family order."""
    if not counts:
        return "<div class='zlab-counts'><i>no events yet</i></div>"
    badges = []
    for name in sorted(counts, key=_event_order):
        color = _family_color(name)
        badges.append(
            f"<span class='zlab-count' data-event='{html.escape(name)}' style='display:inline-block;margin:2px 4px;"
            f"padding:1px 6px;border-radius:8px;border:1px solid {color};color:{color};font-family:monospace'>"
            f"{html.escape(name)} <b>{counts[name]}</b></span>"
        )
    return f"<div class='zlab-counts'>{''.join(badges)}</div>"


def table_html(events: list[Event], rows: int) -> str:
    """The latest ``rows`` events, latest first: t (ms), socket, event, value, meaning."""
    latest = sorted(events, key=lambda ev: ev.t, reverse=True)[:rows]
    esc = html.escape
    body = []
    for ev in latest:
        color = _family_color(ev.event)
        shade = " style='background:#fff3cd'" if ev.is_marker else ""
        value = "" if ev.is_marker else str(ev.value)
        body.append(
            f"<tr{shade}><td style='text-align:right'>{ev.t * 1000:.1f}</td><td>{esc(ev.socket)}</td>"
            f"<td class='zlab-event' style='color:{color};font-weight:bold'>{esc(ev.event)}</td>"
            f"<td style='text-align:right'>{value}</td><td>{esc(ev.meaning)}</td></tr>"
        )
    if not body:
        body.append("<tr><td colspan=5><i>no events yet</i></td></tr>")
    head = "".join(f"<th style='text-align:left;padding-right:8px'>{h}</th>"
                   for h in ("t (ms)", "socket", "event", "value", "meaning"))
    return ("<style>table.zlab-live td, table.zlab-live th {padding: 0 8px 0 0; line-height: 1.35;}</style>"
            f"<table class='zlab-live' style='font-family:monospace;font-size:12px;border-collapse:collapse'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


class Summary:
    """The static view of a dashboard: what it watches, counts per event, the latest events.

    Prints as text and shows as HTML: what a notebook without a widget front
    end (nbconvert, nbval) or a terminal gets instead of the widgets.
    """

    def __init__(self, title: str, description: str, options: Mapping[str, Any], events: list[Event], rows: int,
                 total: int):
        self.title = title
        self.description = description
        self.options = dict(options)
        self.events = sorted(events, key=lambda ev: ev.t, reverse=True)[:rows]
        self.counts = collections.Counter(ev.event for ev in events)
        self.total = total

    def _options_line(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.options.items())

    def __str__(self) -> str:
        table = EventTable(self.events, limit=max(1, len(self.events)), title="latest events first")
        return "\n".join([
            f"{self.title}: {self.description}",
            f"options: {self._options_line()}",
            f"{self.total} events: {self._counts_text() or 'none yet'}",
            str(table),
        ])

    def _counts_text(self) -> str:
        return ", ".join(f"{name} x{n}" for name, n in sorted(self.counts.items(), key=lambda kv: _event_order(kv[0])))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        esc = html.escape
        return (f"<div class='zlab-summary'><b>{esc(self.title)}</b>: {esc(self.description)}<br>"
                f"<small>options: {esc(self._options_line())}</small>"
                f"{counts_html(self.counts)}{table_html(self.events, len(self.events))}</div>")


# -- the dashboard -------------------------------------------------------------------------------------------
class Dashboard:
    """A live view of a Lab, with option inputs and fault buttons. See the module doc.

    ``source``: a build function ``build(lab, options) -> Rig | Topology | None``
    called with a fresh :class:`~zlab.Lab` and the current option values (ms;
    see :data:`CONTROLS`) every time the options are applied -- e.g.
    ``lambda lab, o: lab.pubsub(pub_binds=False, pub_options=o)``; or a
    :class:`~zlab.Lab` to watch as it is (no rebuild, no faults; the dashboard
    does not close it); or None for :func:`default_rig`.

    ``options``: starting values (``ValueError`` for an unknown option or a
    value out of range). ``refresh_hz``: widget updates per second at most
    (0.5-20). ``timeline_s``: least seconds between timeline redraws (None: no
    timeline). ``window_s``: the timeline shows the last ``window_s`` seconds.
    ``rows``: rows of the live table. ``frontend``: True / False / a function
    returning whether widgets can be shown (default
    :func:`widget_frontend_available`). ``name``: an open dashboard with the
    same name is closed first.

    Attributes: ``lab``, ``rig``, ``options`` (dict), ``widget`` (the
    ipywidgets box, None when static), ``closed``. Call from the main thread.
    """

    def __init__(
        self,
        source: Callable[[Lab, dict[str, Any]], Any] | Lab | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        refresh_hz: float = 4.0,
        timeline_s: float | None = 1.0,
        window_s: float | None = 30.0,
        rows: int = 20,
        frontend: bool | Callable[[], bool] | None = None,
        name: str = "dashboard",
    ):
        if isinstance(refresh_hz, bool) or not isinstance(refresh_hz, (int, float)) or not 0.5 <= refresh_hz <= 20:
            raise ValueError(f"refresh_hz is widget updates per second, 0.5 to 20; got {refresh_hz!r}")
        if timeline_s is not None and (not isinstance(timeline_s, (int, float)) or timeline_s <= 0):
            raise ValueError(f"timeline_s is seconds between timeline redraws (> 0), or None for no timeline; "
                             f"got {timeline_s!r}")
        if not isinstance(rows, int) or isinstance(rows, bool) or not 1 <= rows <= 500:
            raise ValueError(f"rows must be a whole number from 1 to 500; got {rows!r}")
        self.options: dict[str, Any] = dict(_DEFAULT_VALUES)
        for key, value in (options or {}).items():
            key = key.lower()
            if key not in self.options:
                raise ValueError(f"the dashboard has no input for {key!r}; its options are: {', '.join(self.options)}")
            self.options[key] = validate_option(key, value)
        if isinstance(source, Lab):
            self._build: Callable[[Lab, dict[str, Any]], Any] | None = None
            self._own_lab = False
        elif source is None or callable(source):
            self._build = source or default_rig
            self._own_lab = True
        else:
            raise TypeError(f"Dashboard takes a build function (lab, options) -> Rig/Topology, a zlab.Lab, "
                            f"or None; got {type(source).__name__}")
        self.name = name
        self.refresh_hz = float(refresh_hz)
        self.timeline_s = timeline_s
        self.window_s = window_s
        self.rows = rows
        self.closed = False
        self.lab: Lab | None = source if isinstance(source, Lab) else None
        self.rig = Rig("watching an existing Lab") if self.lab is not None else Rig()
        self._live = _Live(rows)
        self._subscription = None
        self._thread: _RefreshThread | None = None
        self._last_timeline = 0.0
        self._timeline_cost = 0.0
        self._timeline_total = -1
        self._timelines = 0  # timelines drawn
        self._rate = (time.monotonic(), 0, 0.0)  # (when, total, events/s)
        #: Wall-clock time (time.time()) of the last widget update, also sent to the page as data-wall.
        self.last_update = 0.0
        self.updates = 0
        self.widget = None
        self._w: dict[str, Any] = {}

        detect = widget_frontend_available if frontend is None else frontend
        # Told to show widgets but ipywidgets is missing: degrade to the static summary, never fail.
        self.frontend = bool(detect() if callable(detect) else detect) and _has_module("ipywidgets")
        _replace_open(self)
        try:
            if self._own_lab:
                self._rebuild()
            else:
                self._subscribe()
            if self.frontend:
                self._make_widgets()
                self._thread = _RefreshThread(self._tick, 1.0 / self.refresh_hz, f"zlab-dashboard-{name}")
                self._thread.start()
        except BaseException:
            self.close()
            raise

    # -- building ---------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        """Close the Lab and build the rig again in a new one with the current options."""
        generation = self._live.reset()
        self._rate = (time.monotonic(), 0, 0.0)
        self._timeline_total = -1
        self._unsubscribe()
        if self.lab is not None and self._own_lab:
            self.lab.close()
        self.lab = None
        self.rig = Rig()
        lab = Lab()
        try:
            made = self._build(lab, socket_options(self.options))
        except BaseException:
            lab.close()
            raise
        self.lab = lab
        if isinstance(made, Rig):
            self.rig = made
        elif isinstance(made, Topology):
            self.rig = _rig_from_topology(lab, made)
        else:
            self.rig = Rig(getattr(made, "description", "") or "custom build")
        self._subscribe(generation)

    def _subscribe(self, generation: int | None = None) -> None:
        """Feed the live state with the events logged so far, then with every new batch, each event once.

        Subscribe first, then read the log: an event appended in between is in
        both, so batches are filtered against the events already fed.
        """
        gen = self._live.generation if generation is None else generation
        feed = self._live.feed
        gate = threading.Lock()
        early: list[Event] = []
        known: set[int] = set()
        ready = False

        def on_batch(batch: list[Event]) -> None:  # the EventLog's dispatcher thread
            with gate:
                if not ready:
                    early.extend(batch)
                    return
                if known:
                    fresh = [ev for ev in batch if id(ev) not in known]
                    known.difference_update(id(ev) for ev in batch)
                    batch = fresh
            feed(gen, batch)

        self._subscription = self.lab.log.subscribe(on_batch, batch=True)
        backlog = self.lab.events()
        with gate:
            known.update(id(ev) for ev in backlog)
            fresh = [ev for ev in early if id(ev) not in known]
            known.difference_update(id(ev) for ev in early)
            feed(gen, backlog + fresh)
            ready = True

    def _unsubscribe(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    def apply(self, **options: Any) -> None:
        """Set options (ms; see :data:`CONTROLS`) and rebuild the rig in a new Lab; the old one is closed.

        Raises ``ValueError`` for an unknown option or a value out of range,
        ``RuntimeError`` when watching a Lab the dashboard did not build.
        """
        self._check_open()
        if not self._own_lab:
            raise RuntimeError("this dashboard watches a Lab it did not build; pass a build function to rebuild it")
        for key, value in options.items():
            key = key.lower()
            if key not in self.options:
                raise ValueError(f"the dashboard has no input for {key!r}; its options are: {', '.join(self.options)}")
            self.options[key] = validate_option(key, value)
        self._rebuild()
        if self._w:
            for control in CONTROLS:
                self._w["inputs"][control.name].value = self.options[control.name]
            self._sync_buttons()
            self._w["header"].value = self._header_html()

    def fault(self, name: str) -> None:
        """Run the fault ``name`` (a button's label) now, in this thread. ``ValueError`` lists those available."""
        self._check_open()
        action = self.rig.faults.get(name)
        if action is None:
            raise ValueError(f"this rig has no fault {name!r}; available: {', '.join(self.rig.faults) or 'none'}")
        action()

    def summary(self) -> Summary:
        """The static view: counts and the latest events (what shows without a widget front end)."""
        recent, counts, total, _ = self._live.snapshot(consume=False)
        s = Summary(f"zlab {self.name}", self.rig.description, self.options, recent, self.rows, total)
        s.counts = collections.Counter(counts)
        return s

    # -- widgets (main thread) -------------------------------------------------------------------------
    def _make_widgets(self) -> None:
        import ipywidgets as W

        inputs = {}
        for c in CONTROLS:
            spec = OPTIONS[c.name]
            kind = W.IntSlider if c.slider else W.BoundedIntText
            extra = {"continuous_update": False} if c.slider else {}
            inputs[c.name] = kind(value=self.options[c.name], min=c.minimum, max=c.maximum, step=c.step,
                                  description=c.name, tooltip=f"{spec.doc} ({spec.unit})",
                                  style={"description_width": "130px"}, layout=W.Layout(width="370px"), **extra)
        apply = W.Button(description="apply (rebuild)", button_style="primary",
                         tooltip="close the Lab and build it again with these options")
        stop = W.Button(description="stop", button_style="danger", tooltip="stop live updates and close the Lab")
        buttons: dict[str, Any] = {}
        grid = W.GridBox([], layout=W.Layout(grid_template_columns="repeat(4, 115px)"))
        apply.on_click(lambda _b: self._on_apply())
        stop.on_click(lambda _b: self._on_stop())
        header = W.HTML(self._header_html())
        message = W.HTML("<span class='zlab-message'></span>")
        status = W.HTML("<span class='zlab-status'>starting…</span>")
        counts = W.HTML(counts_html({}))
        table = W.HTML(table_html([], self.rows))
        image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        fault_box = W.VBox([W.HTML("<b>faults</b>"), grid, W.HBox([stop]), message])
        option_box = W.VBox([W.HTML("<b>options</b> (ms; applied by rebuilding)"), *inputs.values(), apply])
        parts = [header, W.HBox([option_box, fault_box]), status, counts, table]
        if self.timeline_s is not None:
            parts.append(image)
        self.widget = W.VBox(parts)
        self._w = {"inputs": inputs, "apply": apply, "stop": stop, "buttons": buttons, "grid": grid, "header": header,
                   "message": message, "status": status, "counts": counts, "table": table, "image": image}
        self._sync_buttons()

    def _header_html(self) -> str:
        return f"<b>zlab {html.escape(self.name)}</b>: {html.escape(self.rig.description)}"

    def _sync_buttons(self) -> None:
        """Enable what the rig can do; add a button for a fault a new rig brought (main thread)."""
        import ipywidgets as W

        buttons = self._w["buttons"]
        names = [n for n in dict.fromkeys((*FAULT_BUTTONS, *self.rig.faults)) if n not in buttons]
        for n in names:
            button = W.Button(description=n, tooltip=_FAULT_HELP.get(n, n), layout=W.Layout(width="110px"))
            button.on_click(lambda _b, n=n: self._on_fault(n))
            buttons[n] = button
        if names:
            self._w["grid"].children = tuple(buttons.values())
        for n, b in self._w["buttons"].items():
            b.disabled = self.closed or n not in self.rig.faults
        self._w["apply"].disabled = self.closed or not self._own_lab
        self._w["stop"].disabled = self.closed
        for w in self._w["inputs"].values():
            w.disabled = self.closed or not self._own_lab

    def _say(self, text: str, error: bool = False) -> None:
        color = "#D55E00" if error else "#333333"
        self._w["message"].value = f"<span class='zlab-message' style='color:{color}'>{html.escape(text)}</span>"

    def _on_fault(self, n: str) -> None:
        started = time.perf_counter()
        try:
            self.fault(n)
        except Exception as exc:  # a button must not raise into the kernel's log: say it
            self._say(f"{n} failed: {exc}", error=True)
        else:
            self._say(f"{n}: done in {(time.perf_counter() - started) * 1000:.0f} ms")

    def _on_apply(self) -> None:
        values = {c.name: self._w["inputs"][c.name].value for c in CONTROLS}
        self._say("rebuilding…")
        try:
            self.apply(**values)
        except Exception as exc:
            self._say(f"apply failed: {exc}", error=True)
        else:
            self._say("rebuilt with " + ", ".join(f"{k}={v}" for k, v in values.items()))

    def _on_stop(self) -> None:
        self.close()
        self._say("stopped: the Lab is closed; make a new Dashboard to start again")

    # -- the refresher thread --------------------------------------------------------------------------
    def _tick(self) -> None:
        """Refresher thread: copy the live state and set widget values; never print or display."""
        recent, counts, total, dirty = self._live.snapshot()
        now = time.monotonic()
        when, last_total, rate = self._rate
        if now - when >= 1.0:
            rate = max(0.0, (total - last_total) / (now - when))
            self._rate = (now, total, rate)
        lab = self.lab
        if dirty:
            w = self._w
            self.last_update = time.time()
            t_lab = lab.now() if lab is not None else 0.0
            problem = f"; refresher errors: {self._thread.errors}" if self._thread and self._thread.errors else ""
            status = (f"<span class='zlab-status' data-wall='{self.last_update:.3f}' data-total='{total}'>"
                      f"live: {total} events, {rate:.0f}/s, lab time {t_lab:.1f} s{problem}</span>")
            with w["table"].hold_sync():
                w["table"].value = table_html(recent, self.rows)
            with w["counts"].hold_sync():
                w["counts"].value = counts_html(counts)
            with w["status"].hold_sync():
                w["status"].value = status
            self.updates += 1
        # The timeline last: it is the slow part (matplotlib), and the table must not wait for it.
        if (self.timeline_s is not None and lab is not None and total != self._timeline_total
                and now - self._last_timeline >= max(self.timeline_s, 4 * self._timeline_cost)):
            self._draw_timeline(lab, total)

    def _draw_timeline(self, lab: Lab, total: int) -> None:
        """Render the timeline of the last ``window_s`` s to PNG and set the image (refresher thread).

        Fixed margins instead of constrained layout, and 72 dpi: a redraw costs
        about 0.15-0.35 s with 30k events on this 2-core machine (measured),
        and redraws are spaced by 4x their cost, so drawing never takes more
        than a quarter of a core from the kernel.
        """
        import io

        from matplotlib.figure import Figure

        from .plot import _lanes, timeline

        started = time.perf_counter()
        since = None if self.window_s is None else max(0.0, lab.now() - self.window_s)
        events = lab.log.filter(since=since)
        lanes = max(1, len(_lanes(events)[0]))
        kinds = len({ev.event for ev in events})  # legend entries, about 0.17 in each
        width, height = 11.0, max(1.0 + 0.75 * lanes, 0.9 + 0.17 * kinds)
        fig = Figure(figsize=(width, height), dpi=80)
        left, right, bottom, top = 2.0, 3.6, 0.55, 0.3  # inches: lane labels, legend, x label, title
        ax = fig.add_axes((left / width, bottom / height, 1 - (left + right) / width, 1 - (bottom + top) / height))
        timeline(events, ax=ax, title=f"last {self.window_s:g} s" if self.window_s else None)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        with self._w["image"].hold_sync():
            self._w["image"].value = buf.getvalue()
        cost = time.perf_counter() - started
        # The first drawing pays for importing matplotlib and loading fonts (~1-2 s): not a fair cost.
        self._timeline_cost = 0.0 if self._timelines == 0 else min(cost, 2.0)
        self._timelines += 1
        self._timeline_total = total
        self._last_timeline = time.monotonic()

    # -- display -------------------------------------------------------------------------------------------
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        summary = self.summary()
        bundle: dict[str, Any] = {"text/plain": str(summary)}
        if self.widget is not None and not self.closed:
            view = self.widget._repr_mimebundle_()
            bundle.update({k: v for k, v in (view or {}).items() if k != "text/plain"})
        else:
            bundle["text/html"] = summary._repr_html_()
        return bundle

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("live" if self.widget is not None else "static")
        return f"<zlab.Dashboard {self.name!r} {state}: {self.rig.description}>"

    # -- closing --------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this dashboard is stopped; make a new Dashboard()")

    def close(self) -> None:
        """Stop the refresher thread, the subscription, and close the Lab the dashboard built.

        Idempotent and bounded (a few seconds at worst, when peers must be
        killed). The widgets stay on the page showing the last state, with
        their buttons disabled. Call from the main thread.
        """
        if self.closed:
            return
        self.closed = True
        if self._thread is not None:
            self._thread.stop()
        self._unsubscribe()
        if self._own_lab and self.lab is not None:
            self.lab.close()
        with _OPEN_LOCK:
            ref = _OPEN.get(self.name)
            if ref is not None and ref() is self:
                del _OPEN[self.name]
        if self._w:
            self._sync_buttons()
            recent, counts, total, _ = self._live.snapshot()
            self._w["status"].value = (f"<span class='zlab-status' data-total='{total}'>stopped: "
                                       f"{total} events</span>")

    def discard_widgets(self) -> None:
        """Close the dashboard's widget models (and their layouts and styles) after :meth:`close`.

        A closed dashboard keeps showing its last state; a re-run cell that replaces it calls
        this, so ipywidgets' registry does not grow by ~100 models per re-run (measured).
        """
        if self.widget is None:
            return
        stack, seen = [self.widget], set()
        for part in self._w.values():  # some (a fault button not on the grid yet) are off the tree
            stack.extend(part.values() if isinstance(part, dict) else [part])
        while stack:
            w = stack.pop()
            if id(w) in seen:
                continue
            seen.add(id(w))
            stack.extend(getattr(w, "children", ()))
            for part in (getattr(w, "layout", None), getattr(w, "style", None)):
                if part is not None and hasattr(part, "close"):
                    part.close()
            w.close()
        self.widget = None

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _replace_open(dashboard: Dashboard) -> None:
    with _OPEN_LOCK:
        ref = _OPEN.get(dashboard.name)
        _OPEN[dashboard.name] = weakref.ref(dashboard)
    old = ref() if ref is not None else None
    if old is not None:
        old.close()
        old.discard_widgets()


def close_all() -> int:
    """Close every open dashboard of this process; returns how many were open."""
    with _OPEN_LOCK:
        boards = [ref() for ref in _OPEN.values()]
        _OPEN.clear()
    open_ones = [b for b in boards if b is not None and not b.closed]
    for board in open_ones:
        board.close()
    return len(open_ones)
