"""Plots of monitor events: a timeline, reconnect intervals, heartbeat detection times.

Every function takes the captured data (a list of :class:`~zlab.events.Event`,
a :class:`~zlab.scenarios.ScenarioResult`, or detection results) and returns a
:class:`Plot` -- a ``(fig, ax)`` named tuple of a matplotlib ``Figure`` and its
``Axes`` -- so a lesson can add to it. The figures are built with the
object-oriented ``matplotlib.figure.Figure`` API, never ``pyplot``: nothing is
left in a global figure registry, and the code runs in any thread and under
any backend (``MPLBACKEND=Agg`` included).

In a notebook a :class:`Plot` shows itself as a PNG (``_repr_png_``); a bare
``fig`` shows too, because the first plot registers a PNG formatter for
``Figure`` with IPython when none is registered (without ``pyplot``, IPython
only prints ``<Figure size ...>``: measured with ipykernel 7.4 / IPython 9).

matplotlib is imported by these functions, not by ``import zlab``.

Styles (colour-blind safe: the Okabe-Ito palette, plus a marker shape per
family so the plot also reads in grey):

========================  ==========================================  =========
family                    events                                      marker
========================  ==========================================  =========
listen / accept           LISTENING, ACCEPTED, BIND_FAILED,           triangle
                          ACCEPT_FAILED
connect attempt           CONNECT_DELAYED, CONNECTED                  circle
ZMTP handshake            HANDSHAKE_SUCCEEDED, HANDSHAKE_FAILED_*     diamond
retry scheduled           CONNECT_RETRIED                             square
close / disconnect        DISCONNECTED, CLOSED, MONITOR_STOPPED,      down
                          CLOSE_FAILED                                triangle
========================  ==========================================  =========

Within a family each event has its own fill (full, hollow, half).
"""

from __future__ import annotations

import io
import math
import os
import sys
import textwrap
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .events import MARKER_KINDS, Event

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FAMILIES",
    "Attempt",
    "DetectionResult",
    "Plot",
    "detection",
    "intervals",
    "plot_result",
    "retry_attempts",
    "save",
    "timeline",
]

#: Above this many events of one kind in one lane, the timeline draws a shaded
#: density band (darker = more events per time bin) instead of single markers.
MAX_MARKERS = 250
#: Time bins of a density band.
DENSITY_BINS = 160
#: Lanes drawn; sockets beyond this are merged into one "other sockets" lane.
MAX_LANES = 30
#: Marker lines (FAULT / POLICY / NOTE) that get a text label; the rest are drawn unlabelled.
MAX_MARKER_LABELS = 12

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
_ORANGE, _SKY, _GREEN, _BLUE, _VERMILLION, _PURPLE = "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7"


@dataclass(frozen=True)
class Family:
    """One event family of the timeline: a title for the legend, a colour, a marker, a row in the lane."""

    key: str
    title: str
    color: str
    marker: str
    offset: float  # vertical position inside a lane (lane height 1; negative = higher up, the y axis is inverted)
    events: tuple[tuple[str, str], ...]  # (event name, fill style)


#: The event families in lane order, top to bottom: how a connection's life reads.
FAMILIES: tuple[Family, ...] = (
    Family("listen", "listen/accept", _GREEN, "^", -0.32,
           (("LISTENING", "full"), ("ACCEPTED", "left"), ("BIND_FAILED", "none"), ("ACCEPT_FAILED", "top"))),
    Family("connect", "connect attempt", _BLUE, "o", -0.16,
           (("CONNECTED", "full"), ("CONNECT_DELAYED", "none"))),
    Family("handshake", "ZMTP handshake", _PURPLE, "D", 0.0,
           (("HANDSHAKE_SUCCEEDED", "full"), ("HANDSHAKE_FAILED_NO_DETAIL", "none"),
            ("HANDSHAKE_FAILED_PROTOCOL", "left"), ("HANDSHAKE_FAILED_AUTH", "right"))),
    Family("retry", "retry scheduled", _ORANGE, "s", 0.16, (("CONNECT_RETRIED", "full"),)),
    Family("close", "close/disconnect", _VERMILLION, "v", 0.32,
           (("DISCONNECTED", "full"), ("CLOSED", "none"), ("MONITOR_STOPPED", "left"), ("CLOSE_FAILED", "top"))),
)
_OTHER = Family("other", "other", "#777777", ".", 0.0, ())
_EVENT_STYLE: dict[str, tuple[Family, str]] = {
    name: (fam, fill) for fam in FAMILIES for name, fill in fam.events
}
_EVENT_ORDER = {name: i for i, name in enumerate(_EVENT_STYLE)}

# How zlab's own markers are drawn: colour, line style, legend text.
_MARKER_STYLE: dict[str, tuple[str, str, str]] = {
    "FAULT": ("#000000", "-", "FAULT: a fault zlab injected"),
    "POLICY": (_SKY, "-.", "POLICY: a policy acted"),
    "NOTE": ("#888888", ":", "NOTE: what the experiment did"),
}

# Events that carry a connection's file descriptor: labelled "fd N" on sparse lanes,
# so the DISCONNECTED of a connection can be matched with its CONNECTED / ACCEPTED.
_FD_LABELLED = ("CONNECTED", "ACCEPTED", "DISCONNECTED")
_FD_LABEL_LIMIT = 24


class Plot(NamedTuple):
    """A drawn figure: ``fig`` (matplotlib ``Figure``) and ``ax`` (its main ``Axes``).

    Unpacks like a tuple (``fig, ax = timeline(events)``); as the last
    expression of a notebook cell it shows as a PNG.
    """

    fig: Figure
    ax: Axes

    def save(self, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
        """Write the figure to ``path`` (see :func:`save`)."""
        return save(self.fig, path, dpi=dpi)

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()


# -- helpers --------------------------------------------------------------------------------
def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    _register_notebook_formatter()
    return Figure(figsize=(width, height), layout="constrained")


def _register_notebook_formatter() -> None:
    """Let a bare ``Figure`` show as PNG in IPython when no formatter exists for it (pyplot not imported)."""
    if "IPython" not in sys.modules:
        return
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - IPython half-installed
        return
    shell = get_ipython()
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters:
        return
    for mime in ("image/png", "image/svg+xml", "image/jpeg", "application/pdf"):
        formatter = formatters.get(mime)
        if formatter is None:
            continue
        try:
            formatter.lookup_by_type(Figure)
            return  # the user (or %matplotlib inline) chose a format already
        except KeyError:
            continue
    from functools import partial

    formatters["image/png"].for_type(Figure, partial(print_figure, fmt="png", base64=True))


def _sorted(events: Iterable[Event]) -> list[Event]:
    evs = list(events)
    for ev in evs[:1]:
        if not isinstance(ev, Event):
            raise TypeError(f"expected zlab Event records (lab.events(), result.events); got {type(ev).__name__}")
    evs.sort(key=lambda ev: ev.t)  # peers' events arrive late: the log is not sorted by t
    return evs


def _short(endpoint: str) -> str:
    """``tcp://127.0.0.1:5555`` -> ``127.0.0.1:5555``; long ipc paths keep their file name."""
    if "://" in endpoint:
        endpoint = endpoint.split("://", 1)[1]
    if len(endpoint) > 28:
        endpoint = "…" + endpoint[-27:]
    return endpoint


def _lanes(events: Sequence[Event], max_lanes: int = MAX_LANES) -> tuple[list[str], dict[tuple[str, str], int]]:
    """Lane labels, and (socket, endpoint) -> lane index.

    One lane per socket; a socket whose events name more than one endpoint
    (a PUB connected to several SUBs) gets one lane per endpoint, labelled
    ``socket → host:port``. Events without an endpoint (MONITOR_STOPPED) go to
    the socket's first lane.
    """
    endpoints: dict[str, list[str]] = {}
    for ev in events:
        if ev.is_marker:
            continue
        eps = endpoints.setdefault(ev.socket, [])
        if ev.endpoint and ev.endpoint not in eps:
            eps.append(ev.endpoint)
    lanes: list[tuple[str, str, str]] = []  # (socket, endpoint or "", label)
    for sock, eps in endpoints.items():
        if len(eps) <= 1:
            lanes.append((sock, "", sock or "(unnamed)"))
        else:
            lanes.extend((sock, ep, f"{sock} → {_short(ep)}") for ep in eps)
    if len(lanes) > max_lanes:
        kept = lanes[: max(1, max_lanes - 1)]
        kept_sockets = {sock for sock, _, _ in kept}
        if lanes[len(kept)][0] in kept_sockets:  # never split one socket's lanes across the cut
            kept = [lane for lane in kept if lane[0] != lanes[len(kept)][0]] or kept[:1]
            kept_sockets = {sock for sock, _, _ in kept}
        rest = [sock for sock in endpoints if sock not in kept_sockets]
        lanes = kept + [(sock, "", f"{len(rest)} other sockets") for sock in rest]
    labels: list[str] = []
    index: dict[tuple[str, str], int] = {}
    for sock, ep, label in lanes:
        if not labels or labels[-1] != label:  # the merged "other sockets" lane repeats its label
            labels.append(label)
        lane = len(labels) - 1
        if ep:
            index[(sock, ep)] = lane
            index.setdefault((sock, ""), lane)
        else:
            index[(sock, "")] = lane
            for other_ep in endpoints[sock]:
                index[(sock, other_ep)] = lane
    return labels, index


def _lane_of(ev: Event, index: Mapping[tuple[str, str], int]) -> int:
    lane = index.get((ev.socket, ev.endpoint))
    return index[(ev.socket, "")] if lane is None else lane


def _timeline_height(lanes: int, evs: Iterable[Event] = ()) -> float:
    """Figure height (inches) for a timeline: its lanes, and room for its longest marker label (drawn
    rotated inside the plot area, at most ~61 characters of 7.5 pt, about 0.055 inch each)."""
    longest = max((min(len(ev.detail or ev.event) + 6, 61) for ev in evs if ev.is_marker), default=0)
    return max(2.6, 1.3 + 0.62 * lanes, 1.1 + 0.055 * longest)


# -- timeline ---------------------------------------------------------------------------------
def timeline(
    events: Iterable[Event],
    ax: Axes | None = None,
    title: str | None = None,
    *,
    max_markers: int = MAX_MARKERS,
    max_lanes: int = MAX_LANES,
) -> Plot:
    """Draw ``events`` as swim lanes: one lane per socket (per endpoint where a socket has several).

    x is time in ms since the Lab started (the ``t`` of each event, as in the
    event tables); each event family has its own row inside a lane, colour and
    marker (see the module doc). FAULT / POLICY / NOTE markers are vertical
    lines across every lane, labelled with their text. CONNECTED, ACCEPTED and
    DISCONNECTED carry their connection's descriptor as ``fd N`` when a lane is
    sparse enough to read, so a DISCONNECTED can be matched with the
    connection it ended.

    A retry storm (CONNECT_RETRIED / CONNECT_DELAYED / CLOSED every few ms)
    would smear thousands of markers into a bar: above ``max_markers`` events of
    one kind in one lane, that kind is drawn as a shaded band instead
    (``DENSITY_BINS`` time bins, darker = more events) annotated with its
    count, so the number of artists stays bounded whatever the number of
    events. Sockets beyond ``max_lanes`` share one "other sockets" lane.

    ``events`` is any iterable of :class:`~zlab.events.Event` (``lab.events()``,
    ``result.events``), in any order. ``ax``: draw into an existing Axes
    (otherwise a new ``Figure`` is made). Returns a :class:`Plot`. Raises
    ``TypeError`` for records that are not Events.
    """
    evs = _sorted(events)
    labels, index = _lanes(evs, max_lanes)
    if ax is None:
        fig = _new_figure(11.0, _timeline_height(len(labels), evs))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    _draw_timeline(ax, evs, labels, index, max_markers)
    n_events = sum(1 for ev in evs if not ev.is_marker)
    if title is None:
        title = f"zlab timeline: {n_events} monitor events on {len(labels)} lane{'s' * (len(labels) != 1)}"
    ax.set_title(title, loc="left", fontsize=11)
    return Plot(fig, ax)


def _draw_timeline(ax: Axes, evs: list[Event], labels: list[str], index: dict, max_markers: int) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax.set_xlabel("time since the Lab started (ms)")
    if not evs:
        ax.text(0.5, 0.5, "no events", transform=ax.transAxes, ha="center", va="center", color="#777777")
        ax.set_yticks([])
        return

    groups: dict[tuple[int, str], list[float]] = defaultdict(list)  # (lane, event) -> times in ms
    fds: dict[tuple[int, str], list[tuple[float, int]]] = defaultdict(list)
    markers: dict[str, list[Event]] = defaultdict(list)
    for ev in evs:
        if ev.is_marker:
            markers[ev.event].append(ev)
            continue
        lane = _lane_of(ev, index)
        groups[(lane, ev.event)].append(ev.t * 1000.0)
        if ev.event in _FD_LABELLED:
            fds[(lane, ev.event)].append((ev.t * 1000.0, ev.value))

    t_all = [ev.t * 1000.0 for ev in evs]
    t_min, t_max = min(t_all), max(t_all)
    span = max(t_max - t_min, 1.0)
    ax.set_xlim(t_min - 0.03 * span, t_max + 0.03 * span)
    ax.set_ylim(max(len(labels), 1) - 0.5, -0.5)  # first lane on top
    ax.set_yticks(range(len(labels)), labels)
    ax.tick_params(axis="y", length=0)
    for i in range(1, len(labels)):
        ax.axhline(i - 0.5, color="#dddddd", linewidth=0.8, zorder=0)
    ax.grid(axis="x", color="#eeeeee", linewidth=0.6, zorder=0)

    handles: dict[str, Any] = {}  # event name -> legend entry
    extra: list[Any] = []  # marker lines and the density key, after the events
    dense_text: dict[int, list[str]] = defaultdict(list)  # lane -> "NAME ×count" of its bands
    any_dense = False
    fd_budget: Counter[int] = Counter()
    for (lane, name), times in sorted(groups.items(), key=lambda kv: (kv[0][0], _EVENT_ORDER.get(kv[0][1], 99))):
        fam, fill = _EVENT_STYLE.get(name, (_OTHER, "full"))
        y = lane + fam.offset
        label = f"{name}  ({fam.title})"
        if len(times) > max_markers:
            any_dense = True
            _density_band(ax, times, y, fam.color, t_min, t_max, gid=f"zlab-density:{lane}:{name}")
            dense_text[lane].append(f"{name} ×{len(times)}")
        else:
            ax.plot(times, [y] * len(times), linestyle="none", marker=fam.marker, fillstyle=fill,
                    color=fam.color, markersize=7 if len(times) < 60 else 5, markeredgewidth=1.2,
                    zorder=3, gid=f"zlab-events:{lane}:{name}")
        if name not in handles:
            handles[name] = Line2D([], [], linestyle="none", marker=fam.marker, fillstyle=fill, color=fam.color,
                                    markersize=7, markeredgewidth=1.2, label=label)
        for t, fd in fds.get((lane, name), ()):
            if len(times) > _FD_LABEL_LIMIT or fd_budget[lane] >= _FD_LABEL_LIMIT:
                break
            fd_budget[lane] += 1
            ax.annotate(f"fd {fd}", (t, y), xytext=(4, -4), textcoords="offset points", fontsize=6.5,
                        color=fam.color, va="top", gid="zlab-fd")
    # One count line per lane, right-aligned at its top edge: storms run on to the right end,
    # so the text covers uniform bands rather than the few markers before the storm.
    for lane, texts in dense_text.items():
        wrapped = textwrap.fill(", ".join(texts) + " events", width=90)
        ax.text(0.995, lane - 0.47, wrapped, transform=ax.get_yaxis_transform(), fontsize=7, ha="right",
                va="top", color="#222222", zorder=4, gid="zlab-density-label",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})

    # zlab's own markers: one collection of vertical lines per kind, the first few labelled.
    for kind in MARKER_KINDS:
        found = markers.get(kind)
        if not found:
            continue
        color, style, legend = _MARKER_STYLE[kind]
        segments = [[(ev.t * 1000.0, 0.0), (ev.t * 1000.0, 1.0)] for ev in found]
        ax.add_collection(LineCollection(segments, colors=color, linestyles=style, linewidths=1.4,
                                         transform=ax.get_xaxis_transform(), zorder=2, gid=f"zlab-marker:{kind}"),
                          autolim=False)
        # FAULT labels sit left of their line, NOTE / POLICY labels right of it, so a fault and the
        # note written at the same moment do not overprint; labels closer than ~1 % of the axis merge.
        side = "right" if kind == "FAULT" else "left"
        labelled: list[tuple[float, list[str]]] = []
        for ev in found:
            t = ev.t * 1000.0
            if labelled and t - labelled[-1][0] < 0.012 * span:
                labelled[-1][1].append(ev.detail or kind)
            elif len(labelled) < MAX_MARKER_LABELS:
                labelled.append((t, [ev.detail or kind]))
        for t, texts in labelled:
            text = texts[0] if len(texts) == 1 else f"{texts[0]} (+{len(texts) - 1})"
            text = text if len(text) <= 60 else text[:59] + "…"
            # A label inside the plot area: clipped to it and left out of the layout, or a long label on
            # a short (one-lane) timeline makes constrained layout collapse the axes to nothing.
            label = ax.text(t, 0.985, f" {text}", transform=ax.get_xaxis_transform(), rotation=90, ha=side,
                            va="top", fontsize=7.5, color=color, gid=f"zlab-marker-label:{kind}", clip_on=True,
                            bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none",
                                  "alpha": 0.7})
            label.set_in_layout(False)
        more = len(found) - sum(len(texts) for _, texts in labelled)
        suffix = f" ({len(found)})" if len(found) > 1 else ""
        extra.append(Line2D([], [], color=color, linestyle=style, linewidth=1.4,
                            label=legend + suffix + (f", {more} unlabelled" if more > 0 else "")))
    if any_dense:
        extra.append(Patch(facecolor="#999999", alpha=0.6,
                           label=f"band: more than {max_markers} events,\ndarker = more per time bin"))
    ordered = [handles[name] for name in sorted(handles, key=lambda n: (_EVENT_ORDER.get(n, 99), n))]
    ax.legend(handles=ordered + extra, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False, title="event (family)", title_fontsize=8, alignment="left")


def _density_band(ax: Axes, times: list[float], y: float, color: str, t_min: float, t_max: float, gid: str) -> None:
    from matplotlib.colors import to_rgba

    bins = DENSITY_BINS
    width = max(t_max - t_min, 1.0) / bins
    counts = [0] * bins
    for t in times:
        counts[min(bins - 1, int((t - t_min) / width))] += 1
    top = max(counts)
    r, g, b, _ = to_rgba(color)
    ranges, colors = [], []
    for i, n in enumerate(counts):
        if n:
            ranges.append((t_min + i * width, width))
            colors.append((r, g, b, 0.25 + 0.75 * n / top))
    ax.broken_barh(ranges, (y - 0.065, 0.13), facecolors=colors, edgecolors="none", zorder=2, gid=gid)


# -- intervals ------------------------------------------------------------------------------------
_ATTEMPT_EVIDENCE = frozenset({"CONNECT_DELAYED", "CONNECTED", "CLOSED"})


@dataclass(frozen=True)
class Attempt:
    """One scheduled reconnect: its number, libzmq's announced wait and the wait observed (ms)."""

    number: int
    t_ms: float
    announced_ms: int
    observed_ms: float | None
    endpoint: str


def retry_attempts(events: Iterable[Event], socket: str | None = None) -> tuple[str, list[Attempt]]:
    """The reconnect attempts of one socket: ``(socket, [Attempt, ...])``.

    ``announced_ms`` is the CONNECT_RETRIED value (the reconnect interval libzmq
    put in force, zmq_socket_monitor(3)); ``observed_ms`` is the time from that
    CONNECT_RETRIED to the next sign of the attempt on the same endpoint --
    CONNECT_DELAYED (tcp), CONNECTED, or CLOSED (ipc, which logs no
    CONNECT_DELAYED; measured with libzmq 4.3.5) -- or None when the run ended
    first. ``socket=None`` picks the socket with the most CONNECT_RETRIED.
    Raises ``ValueError`` when there is no CONNECT_RETRIED to show.
    """
    evs = [ev for ev in _sorted(events) if not ev.is_marker]
    retried = Counter(ev.socket for ev in evs if ev.event == "CONNECT_RETRIED")
    if socket is None:
        if not retried:
            seen = ", ".join(sorted({ev.socket for ev in evs})) or "none"
            raise ValueError(
                "intervals() needs CONNECT_RETRIED events, and none were captured (sockets seen: "
                f"{seen}); make a connecting socket lose its peer, e.g. a PUB connected to a SUB that closes"
            )
        socket = retried.most_common(1)[0][0]
    elif not retried.get(socket):
        have = ", ".join(f"{name} ({n})" for name, n in retried.most_common()) or "no socket"
        raise ValueError(f"socket {socket!r} has no CONNECT_RETRIED events; sockets that retried: {have}")
    mine = [ev for ev in evs if ev.socket == socket]
    attempts: list[Attempt] = []
    pending: dict[str, Attempt] = {}  # endpoint -> attempt waiting for its evidence
    for ev in mine:
        if ev.event == "CONNECT_RETRIED":
            attempt = Attempt(len(attempts) + 1, ev.t * 1000.0, ev.value, None, ev.endpoint)
            attempts.append(attempt)
            pending[ev.endpoint] = attempt
        elif ev.event in _ATTEMPT_EVIDENCE and ev.endpoint in pending:
            attempt = pending.pop(ev.endpoint)
            observed = ev.t * 1000.0 - attempt.t_ms
            attempts[attempt.number - 1] = Attempt(attempt.number, attempt.t_ms, attempt.announced_ms,
                                                   round(observed, 3), attempt.endpoint)
    return socket, attempts


def intervals(
    events: Iterable[Event],
    socket: str | Sequence[str] | None = None,
    *,
    reconnect_ivl: int | None = None,
    reconnect_ivl_max: int | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Plot:
    """Attempt number vs interval (ms): the CONNECT_RETRIED value and the wait actually observed.

    With ``reconnect_ivl_max = 0`` each announced value is ``reconnect_ivl``
    plus jitter, in ``[ivl, 2*ivl)``; with a max set libzmq 4.3.5 doubles up to
    the max (measured, see the BRIEF). Both show at a glance: the announced
    values as a stepped line of circles, the observed waits as crosses (see
    :func:`retry_attempts` for how they are measured). Give
    ``reconnect_ivl`` / ``reconnect_ivl_max`` (the settings of the run) to draw
    them as reference lines (and the jitter band when there is no max). The
    y axis turns logarithmic when the values span more than 8x.

    ``socket``: one socket's name; a list of names to compare several (one
    colour each, e.g. a PUB with a max and one without); None for the socket
    with the most CONNECT_RETRIED. Returns a :class:`Plot`; raises
    ``ValueError`` when a socket has nothing to draw.
    """
    from matplotlib.ticker import MaxNLocator

    evs = _sorted(events)
    names = [socket] if socket is None or isinstance(socket, str) else list(socket)
    if not names:
        raise ValueError("intervals() got an empty list of sockets; name at least one, or pass None")
    series = [retry_attempts(evs, name) for name in names]
    if ax is None:
        fig = _new_figure(9.0, 4.2)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    _draw_intervals(ax, series, reconnect_ivl, reconnect_ivl_max)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title is None:
        if len(series) == 1:
            name, attempts = series[0]
            endpoints = sorted({a.endpoint for a in attempts})
            where = f" → {_short(endpoints[0])}" if len(endpoints) == 1 else f" ({len(endpoints)} endpoints)"
            title = f"reconnect intervals of {name}{where}: {len(attempts)} attempts"
        else:
            title = "reconnect intervals of " + ", ".join(f"{name} ({len(a)})" for name, a in series)
    ax.set_title(title, loc="left", fontsize=11)
    return Plot(fig, ax)


_SERIES_COLORS = (_ORANGE, _BLUE, _GREEN, _VERMILLION, _PURPLE, _SKY)


def _draw_intervals(ax: Axes, series: list[tuple[str, list[Attempt]]], ivl: int | None, ivl_max: int | None) -> None:
    single = len(series) == 1
    all_values: list[float] = []
    steps: set[int] = set()
    for i, (name, attempts) in enumerate(series):
        numbers = [a.number for a in attempts]
        announced = [a.announced_ms for a in attempts]
        observed = [(a.number, a.observed_ms) for a in attempts if a.observed_ms is not None]
        small = len(attempts) > 150
        color = _ORANGE if single else _SERIES_COLORS[i % len(_SERIES_COLORS)]
        seen_color = _BLUE if single else color
        who = "" if single else f"{name}: "
        ax.step(numbers, announced, where="mid", color=color, linewidth=1.0, alpha=0.6, zorder=2)
        ax.plot(numbers, announced, linestyle="none", marker="o", fillstyle="none", color=color,
                markersize=3 if small else 7, markeredgewidth=1.3, zorder=3, gid=f"zlab-announced:{name}",
                label=f"{who}CONNECT_RETRIED value: the wait libzmq announced")
        if observed:
            ax.plot([n for n, _ in observed], [v for _, v in observed], linestyle="none", marker="x",
                    color=seen_color, markersize=3 if small else 7, markeredgewidth=1.3, zorder=4,
                    gid=f"zlab-observed:{name}", label=f"{who}observed: CONNECT_RETRIED → next connect attempt")
        all_values += [v for v in announced if v > 0] + [v for _, v in observed if v > 0]
        steps.update(announced)
    if ivl is not None and ivl > 0:
        ax.axhline(ivl, color="#555555", linestyle="--", linewidth=1, gid="zlab-ref:reconnect_ivl",
                   label=f"reconnect_ivl = {ivl} ms")
        if not ivl_max:
            ax.axhspan(ivl, 2 * ivl, color="#cccccc", alpha=0.35, zorder=0, gid="zlab-ref:jitter",
                       label="no max: jitter range [ivl, 2·ivl)")
    if ivl_max:
        ax.axhline(ivl_max, color="#000000", linestyle=":", linewidth=1.2, gid="zlab-ref:reconnect_ivl_max",
                   label=f"reconnect_ivl_max = {ivl_max} ms (backoff cap)")
    if all_values and max(all_values) / min(all_values) > 8:
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

        ax.set_yscale("log")
        ticks: list[int] = []
        for v in sorted(v for v in steps if v > 0):  # label the values backoff takes (50, 100, 200, 400),
            if not ticks or v >= 1.3 * ticks[-1]:  # skipping jittered neighbours that would overprint
                ticks.append(v)
        if len(ticks) <= 12:
            ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("connect attempt (n-th CONNECT_RETRIED)")
    ax.set_ylabel("wait before the attempt (ms)")
    ax.grid(color="#eeeeee", linewidth=0.6, zorder=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


# -- detection ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectionResult:
    """One measurement of how long a connection took to notice a silent peer.

    ``heartbeat_ivl`` and ``heartbeat_timeout`` are the settings (ms;
    ``heartbeat_timeout`` -1 or None means "same as ivl", libzmq's default);
    ``detected_ms`` is the time from the fault to DISCONNECTED in ms, None
    when no DISCONNECTED came within the run.
    """

    heartbeat_ivl: int
    heartbeat_timeout: int | None
    detected_ms: float | None

    @property
    def effective_timeout(self) -> int:
        """The timeout libzmq applies: ``heartbeat_timeout``, or ``heartbeat_ivl`` when -1/None
        (libzmq 4.3.5 src/stream_engine_base.cpp: ``_heartbeat_timeout == -1`` -> the interval)."""
        if self.heartbeat_timeout is None or self.heartbeat_timeout < 0:
            return self.heartbeat_ivl
        return self.heartbeat_timeout


def _detection_result(item: Any, i: int) -> DetectionResult:
    def get(key: str) -> Any:
        if isinstance(item, Mapping):
            if key not in item:
                raise ValueError(f"detection result #{i} has no {key!r}; each result needs heartbeat_ivl, "
                                 f"heartbeat_timeout and detected_ms (ms, None = not detected); got {dict(item)!r}")
            return item[key]
        if not hasattr(item, key):
            raise ValueError(f"detection result #{i} ({type(item).__name__}) has no attribute {key!r}; each "
                             "result needs heartbeat_ivl, heartbeat_timeout and detected_ms")
        return getattr(item, key)

    ivl, timeout, detected = get("heartbeat_ivl"), get("heartbeat_timeout"), get("detected_ms")
    if isinstance(ivl, bool) or not isinstance(ivl, int) or ivl < 0:
        raise ValueError(f"detection result #{i}: heartbeat_ivl must be a whole number of ms >= 0; got {ivl!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < -1):
        raise ValueError(f"detection result #{i}: heartbeat_timeout must be ms >= 0, or -1/None for "
                         f"'same as heartbeat_ivl'; got {timeout!r}")
    if detected is not None and (isinstance(detected, bool) or not isinstance(detected, (int, float))
                                 or detected < 0 or math.isnan(detected)):
        raise ValueError(f"detection result #{i}: detected_ms must be ms >= 0 or None (not detected); "
                         f"got {detected!r}")
    return DetectionResult(ivl, timeout, None if detected is None else float(detected))


def detection(results: Iterable[Mapping[str, Any] | Any], *, ax: Axes | None = None, title: str | None = None) -> Plot:
    """Heartbeat settings vs time to detect a silent peer, with the timeout as the line you cannot beat.

    ``results``: one item per measurement, a dict (or any object with these
    attributes) with ``heartbeat_ivl`` (ms, 0 = no heartbeats),
    ``heartbeat_timeout`` (ms; -1 or None = same as ivl) and ``detected_ms``
    (ms from the fault -- a SIGSTOPped peer, a blackholed link -- to
    DISCONNECTED; None = not detected in the run). Several results with the
    same settings are drawn side by side.

    One column per (ivl, timeout) pair, sorted by timeout. The solid black bar
    is the timeout: no run can detect sooner. The shaded box is the window
    libzmq should detect in, ``[timeout, timeout + ivl]``: the timer starts at
    the next PING, up to one interval after the peer went silent (measured
    100/300 ms: 311-373 ms; see the BRIEF). Undetected runs are red crosses on
    the top edge. Returns a :class:`Plot`; raises ``ValueError`` naming a
    malformed result.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = [_detection_result(item, i) for i, item in enumerate(results)]
    if not rows:
        raise ValueError("detection() needs at least one result: "
                         "{'heartbeat_ivl': ms, 'heartbeat_timeout': ms, 'detected_ms': ms or None}")
    combos = sorted({(r.heartbeat_ivl, r.effective_timeout) for r in rows}, key=lambda c: (c[0] == 0, c[1], c[0]))
    where = {combo: i for i, combo in enumerate(combos)}
    if ax is None:
        fig = _new_figure(max(7.5, 4.0 + 1.25 * len(combos)), 4.4)
        ax = fig.add_subplot()
    else:
        fig = ax.figure

    detected = [r.detected_ms for r in rows if r.detected_ms is not None]
    bounds = [t + ivl for ivl, t in combos if ivl > 0]
    top = max(detected + bounds + [1.0]) * 1.15
    floors, windows = [], []
    for (ivl, timeout), x in where.items():
        if ivl == 0:
            continue  # heartbeats off: there is no timeout to beat
        floors.append(((x - 0.38, timeout), (x + 0.38, timeout)))
        windows.append((x, timeout, ivl))
    from matplotlib.collections import LineCollection

    if floors:
        ax.add_collection(LineCollection(floors, colors="#000000", linewidths=2.5, zorder=3, gid="zlab-timeout"))
        ax.bar([x for x, _, _ in windows], [ivl for _, _, ivl in windows], bottom=[t for _, t, _ in windows],
               width=0.76, color="#cccccc", alpha=0.5, zorder=1, gid="zlab-window")
    per_combo: Counter[tuple[int, int]] = Counter()
    xs, ys, missed = [], [], []
    for r in rows:
        combo = (r.heartbeat_ivl, r.effective_timeout)
        k = per_combo[combo]
        per_combo[combo] += 1
        x = where[combo] + ((k % 7) - 3) * 0.06  # spread repeats so they do not hide each other
        if r.detected_ms is None:
            missed.append(x)
        else:
            xs.append(x)
            ys.append(r.detected_ms)
    if xs:
        ax.plot(xs, ys, linestyle="none", marker="o", color=_BLUE, markersize=7, zorder=4, gid="zlab-detected")
    if missed:
        ax.plot(missed, [top] * len(missed), linestyle="none", marker="X", color=_VERMILLION, markersize=9,
                clip_on=False, zorder=4, gid="zlab-missed")
    ax.set_xlim(-0.6, len(combos) - 0.4)
    ax.set_ylim(0, top * 1.02)
    ax.set_xticks(range(len(combos)), [_combo_label(ivl, t) for ivl, t in combos], fontsize=8)
    ax.set_xlabel("heartbeat_ivl / heartbeat_timeout (ms)")
    ax.set_ylabel("time to detect a silent peer (ms)")
    ax.grid(axis="y", color="#eeeeee", linewidth=0.6, zorder=0)
    handles = [
        Line2D([], [], color="#000000", linewidth=2.5, label="heartbeat_timeout: no run can detect sooner"),
        Patch(facecolor="#cccccc", alpha=0.5, label="expected window [timeout, timeout + ivl]"),
        Line2D([], [], linestyle="none", marker="o", color=_BLUE, label="measured: fault → DISCONNECTED"),
    ]
    if missed:
        handles.append(Line2D([], [], linestyle="none", marker="X", color=_VERMILLION, markersize=9,
                              label="not detected within the run"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(title or f"time to detect a silent peer: {len(rows)} runs", loc="left", fontsize=11)
    return Plot(fig, ax)


def _combo_label(ivl: int, timeout: int) -> str:
    if ivl == 0:
        return "no heartbeats"
    return f"ivl {ivl}\ntimeout {timeout}"


# -- saving and the command line -------------------------------------------------------------------------
def check_suffix(path: str | os.PathLike[str], supported: Mapping[str, str] | None = None) -> str:
    """The format :func:`save` would write ``path`` in (its suffix, lower case, no dot), checked before
    any drawing (``zlab run --plot`` calls it before running the scenario).

    ``supported`` defaults to the formats matplotlib writes (``FigureCanvasBase.get_supported_filetypes()``:
    png, svg, pdf, eps, jpg...). Raises ``ValueError`` naming the suffix and listing the supported ones.
    """
    if supported is None:
        from matplotlib.backend_bases import FigureCanvasBase

        supported = FigureCanvasBase.get_supported_filetypes()
    target = Path(path)
    suffix = target.suffix.lower().lstrip(".")
    if suffix not in supported:
        raise ValueError(f"cannot save {str(target)!r}: the suffix decides the format and matplotlib writes "
                         f"{', '.join('.' + s for s in sorted(supported))}; got {target.suffix or 'no suffix'!r}")
    return suffix


def save(fig: Figure | Plot, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Write a figure (or a :class:`Plot`) to ``path``; the format follows the suffix (.png, .svg, .pdf...).

    Returns the path written. Raises ``ValueError`` for a suffix matplotlib
    cannot write (listing those it can) and ``FileNotFoundError`` when the
    folder does not exist.
    """
    figure = fig.fig if isinstance(fig, Plot) else fig
    target = Path(path)
    check_suffix(target, figure.canvas.get_supported_filetypes())
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot save {str(target)!r}: folder {str(target.parent)!r} does not exist; "
                                "create it first")
    figure.savefig(target, dpi=dpi, bbox_inches="tight")
    return target


def _detection_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Detection results in a scenario summary: ``summary["detection"]`` as :func:`detection` takes it,
    or the ``heartbeat`` scenario's shape (heartbeat_ivl, heartbeat_timeout, detection_s, and
    ``compare`` with ``hb_default`` -- timeout left at -1 -- and ``keepalive`` -- no heartbeats)."""
    if summary.get("detection"):
        return list(summary["detection"])
    if "detection_s" not in summary or "heartbeat_ivl" not in summary:
        return None

    def ms(seconds: Any) -> float | None:
        return None if seconds is None else float(seconds) * 1000

    ivl = summary["heartbeat_ivl"]
    rows = [{"heartbeat_ivl": ivl, "heartbeat_timeout": summary.get("heartbeat_timeout"),
             "detected_ms": ms(summary["detection_s"])}]
    compare = summary.get("compare") or {}
    if "hb_default" in compare:
        rows.append({"heartbeat_ivl": ivl, "heartbeat_timeout": -1,
                     "detected_ms": ms(compare["hb_default"]["detection_s"])})
    if "keepalive" in compare:
        rows.append({"heartbeat_ivl": 0, "heartbeat_timeout": None,
                     "detected_ms": ms(compare["keepalive"]["detection_s"])})
    return rows


#: Scenarios whose story is the reconnect interval: plot_result adds the intervals panel for them.
INTERVAL_SCENARIOS = frozenset({"backoff", "retry-loop", "retry-storm", "jitter"})


def plot_result(result: Any, path: str | os.PathLike[str] | None = None, *, kind: str = "auto") -> Plot:
    """The figure for a scenario result (what ``zlab run NAME --plot FILE`` writes), saved to ``path`` if given.

    ``result`` is a :class:`~zlab.scenarios.ScenarioResult` (anything with
    ``scenario``, ``settings``, ``events`` and ``summary``). ``kind``:

    * ``"timeline"``: the timeline of every event only;
    * ``"intervals"``: the reconnect intervals only;
    * ``"detection"``: detection times, from ``result.summary["detection"]`` (a
      list of results as :func:`detection` takes them) or a summary shaped like
      the ``heartbeat`` scenario's;
    * ``"auto"`` (default): the timeline, with an intervals panel below it when
      the scenario is about reconnect intervals (``backoff``, ``retry-loop``...)
      or a socket retried at least 3 times, and a detection panel when the
      summary carries detection results.

    Returns a :class:`Plot` whose ``ax`` is the first panel (all in ``fig.axes``).
    Raises ``ValueError`` for an unknown ``kind`` or a panel with nothing to draw.
    """
    kinds = ("auto", "timeline", "intervals", "detection")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {', '.join(kinds)}; got {kind!r}")
    events = _sorted(getattr(result, "events", None) or [])
    settings = dict(getattr(result, "settings", None) or {})
    summary = getattr(result, "summary", None) or {}
    name = str(getattr(result, "scenario", "") or "")
    det = _detection_rows(summary) if isinstance(summary, Mapping) else None

    panels: list[str] = []
    retries = Counter(ev.socket for ev in events if ev.event == "CONNECT_RETRIED")
    if kind == "auto":
        panels.append("timeline")
        if retries and (name in INTERVAL_SCENARIOS or max(retries.values()) >= 3):
            panels.append("intervals")
        if det:
            panels.append("detection")
    else:
        panels.append(kind)
    if "detection" in panels and not det:
        raise ValueError(f"scenario {name!r} has no detection results (summary['detection']); "
                         "use kind='timeline' or 'intervals'")

    labels, _ = _lanes(events)
    heights = {"timeline": _timeline_height(len(labels), events), "intervals": 3.8, "detection": 4.0}
    fig = _new_figure(11.0, sum(heights[p] for p in panels))
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=[heights[p] for p in panels])[:, 0]
    for panel, ax in zip(panels, axes):
        if panel == "timeline":
            timeline(events, ax=ax, title=f"{name}: timeline of {len(events)} events" if name else None)
        elif panel == "intervals":
            ranked = [name for name, n in retries.most_common(len(_SERIES_COLORS)) if n >= 3] or None
            one = ranked is None or len(ranked) == 1  # the settings describe the run's one retrying socket
            intervals(events, ranked, ax=ax, reconnect_ivl=settings.get("reconnect_ivl") if one else None,
                      reconnect_ivl_max=settings.get("reconnect_ivl_max") if one else None)
        else:
            detection(det, ax=ax)
    plot = Plot(fig, axes[0])
    if path is not None:
        save(fig, path)
    return plot
