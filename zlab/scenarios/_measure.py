"""Small measurements shared by scenarios: retry cycles, gaps, rates, counts.

Pure functions over lists of :class:`~zlab.events.Event`: testable without a
socket, and the only place a cycle or a gap is defined.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..events import Event

__all__ = ["Cycle", "after", "attempt_gaps", "first", "ms", "retry_cycles"]


@dataclass(frozen=True)
class Cycle:
    """One failed reconnect attempt: CONNECT_RETRIED, then CONNECT_DELAYED, then CLOSED (tcp).

    ``interval_ms`` is the CONNECT_RETRIED value (the wait before the attempt);
    ``closed_fd`` the attempt's own descriptor, carried by its CLOSED.
    """

    retried: Event
    delayed: Event | None
    closed: Event

    @property
    def interval_ms(self) -> int:
        return self.retried.value

    @property
    def closed_fd(self) -> int:
        return self.closed.value


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded to 0.1 ms for reports."""
    return round(seconds * 1000.0, 1)


def after(events: Iterable[Event], t: float, until: float | None = None) -> list[Event]:
    """Events with ``t <= ev.t`` (and ``ev.t <= until`` when given)."""
    return [ev for ev in events if ev.t >= t and (until is None or ev.t <= until)]


def first(events: Iterable[Event], name: str, since: float | None = None) -> Event | None:
    """The first event called ``name`` (at or after ``since``), or None."""
    for ev in events:
        if ev.event == name and (since is None or ev.t >= since):
            return ev
    return None


def retry_cycles(events: Sequence[Event], *, need_delayed: bool = True) -> list[Cycle]:
    """Full reconnect cycles in one socket's events, in order.

    A cycle is a CONNECT_RETRIED followed by that attempt's CONNECT_DELAYED and
    CLOSED (tcp; ipc has no CONNECT_DELAYED: pass ``need_delayed=False``). A
    CONNECT_RETRIED whose attempt has not finished yet is not counted. Any other
    event (CONNECTED, DISCONNECTED...) breaks a cycle in progress.
    """
    cycles: list[Cycle] = []
    retried: Event | None = None
    delayed: Event | None = None
    for ev in events:
        if ev.is_marker:
            continue
        if ev.event == "CONNECT_RETRIED":
            retried, delayed = ev, None
        elif ev.event == "CONNECT_DELAYED" and retried is not None:
            delayed = ev
        elif ev.event == "CLOSED" and retried is not None and (delayed is not None or not need_delayed):
            cycles.append(Cycle(retried, delayed, ev))
            retried, delayed = None, None
        else:
            retried, delayed = None, None
    return cycles


def attempt_gaps(events: Sequence[Event]) -> list[tuple[int, float]]:
    """For each CONNECT_RETRIED: ``(announced ms, observed ms until the next attempt started)``.

    The next attempt starts with its CONNECT_DELAYED (tcp) -- or, failing that,
    its CLOSED or CONNECTED. CONNECT_RETRIED events whose attempt is not in
    ``events`` are left out.
    """
    out: list[tuple[int, float]] = []
    pending: Event | None = None
    for ev in events:
        if ev.is_marker:
            continue
        if ev.event == "CONNECT_RETRIED":
            pending = ev
        elif pending is not None and ev.event in ("CONNECT_DELAYED", "CONNECTED", "CLOSED"):
            out.append((pending.value, ms(ev.t - pending.t)))
            pending = None
    return out
