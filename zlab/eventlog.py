"""EventLog: the one data model every renderer draws.

A thread-safe, bounded, append-only record of :class:`~zlab.events.Event`.
The collector thread appends; the application thread reads, filters and waits;
subscribers are called on a dispatcher thread of their own, so a slow
callback never slows capture. Memory is bounded by ``cap``: the oldest events
are discarded and counted (``log.discarded``), the writer never blocks.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .events import MARKER_KINDS, Event, check_event_names

__all__ = ["DEFAULT_CAP", "EventLog", "Subscription"]

#: Events kept before the oldest are discarded (about 20 MB of records).
DEFAULT_CAP = 200_000
#: Events waiting for subscribers before the oldest undelivered are dropped.
_BACKLOG_CAP = 100_000


def _names(event: str | Iterable[str] | None) -> frozenset[str] | None:
    """The event names asked for; ``ValueError`` for a name libzmq does not have (a typo)."""
    if event is None:
        return None
    names = frozenset([event]) if isinstance(event, str) else frozenset(event)
    check_event_names(names)
    return names


def _matcher(socket: str | None, event: str | Iterable[str] | None, since: float | None) -> Callable[[Event], bool]:
    names = _names(event)

    def match(ev: Event) -> bool:
        return (
            (socket is None or ev.socket == socket)
            and (names is None or ev.event in names)
            and (since is None or ev.t >= since)
        )

    return match


class Subscription:
    """A live subscriber; ``close()`` (or leaving its ``with`` block) stops deliveries."""

    def __init__(self, log: EventLog, callback: Callable[[Any], None], match: Callable[[Event], bool], batch: bool):
        self._log = log
        self.callback = callback
        self.match = match
        self.batch = batch
        self.errors = 0
        self.last_error: BaseException | None = None

    def close(self) -> None:
        self._log._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventLog:
    """A thread-safe, bounded log of events, with a clock (seconds since ``t0``).

    ``cap`` is the number of events kept; older ones are discarded and counted in
    :attr:`discarded`, never blocked on. Reads return copies; :meth:`filter`
    sorts by ``t`` because events from child-process peers arrive late.
    """

    def __init__(self, cap: int = DEFAULT_CAP, *, t0: float | None = None):
        if not isinstance(cap, int) or cap < 1:
            raise ValueError(f"cap must be a positive number of events; got {cap!r}")
        self.cap = cap
        self.t0 = time.monotonic() if t0 is None else t0
        self.discarded = 0
        self._events: collections.deque[Event] = collections.deque(maxlen=cap)
        self._total = 0
        self._cond = threading.Condition()
        self._subs: list[Subscription] = []
        self._backlog: collections.deque[Event] = collections.deque()
        self._backlog_cond = threading.Condition()
        self._dispatcher: threading.Thread | None = None
        self._closed = False
        #: Events dropped because subscribers fell more than 100k events behind.
        self.dropped_for_subscribers = 0

    # -- clock and writing -------------------------------------------------
    def now(self) -> float:
        """Seconds since the log's ``t0`` on the ``time.monotonic`` clock."""
        return time.monotonic() - self.t0

    def append(self, event: Event) -> None:
        """Add one event (thread-safe, never blocks on readers)."""
        self.extend((event,))

    def extend(self, events: Iterable[Event]) -> None:
        """Add events in one step (the collector appends a drained batch at once)."""
        batch = events if isinstance(events, (list, tuple)) else list(events)
        if not batch:
            return
        with self._cond:
            overflow = len(self._events) + len(batch) - self.cap
            if overflow > 0:
                self.discarded += overflow
            self._events.extend(batch)
            self._total += len(batch)
            self._cond.notify_all()
        if self._subs:
            with self._backlog_cond:
                self._backlog.extend(batch)
                excess = len(self._backlog) - _BACKLOG_CAP
                for _ in range(max(0, excess)):
                    self._backlog.popleft()
                    self.dropped_for_subscribers += 1
                self._backlog_cond.notify()

    def mark(self, kind: str, text: str, socket: str = "", endpoint: str = "") -> Event:
        """Record a zlab marker (``"FAULT"``, ``"POLICY"`` or ``"NOTE"``) now, e.g. ``mark("FAULT", "kill sub0")``."""
        if kind not in MARKER_KINDS:
            raise ValueError(f"marker kind must be one of {', '.join(MARKER_KINDS)}; got {kind!r}")
        ev = Event(self.now(), socket, kind, 0, endpoint, text)
        self.append(ev)
        return ev

    # -- reading -------------------------------------------------------------
    @property
    def total(self) -> int:
        """Events ever appended, including those the cap discarded."""
        return self._total

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.filter())

    def filter(
        self,
        socket: str | None = None,
        event: str | Iterable[str] | None = None,
        *,
        since: float | None = None,
    ) -> list[Event]:
        """Events matching every given criterion, sorted by ``t``.

        ``event`` is a name or a collection of names; ``since`` is a time in s
        (events with ``t >= since``).
        """
        match = _matcher(socket, event, since)
        with self._cond:
            found = [ev for ev in self._events if match(ev)]
        found.sort(key=lambda ev: ev.t)
        return found

    def counts(self, socket: str | None = None) -> dict[str, int]:
        """How many of each event (markers included) are held, optionally for one socket."""
        with self._cond:
            return dict(collections.Counter(ev.event for ev in self._events if socket is None or ev.socket == socket))

    def sockets(self) -> list[str]:
        """Socket labels seen, in order of first appearance."""
        with self._cond:
            return list(dict.fromkeys(ev.socket for ev in self._events if ev.socket))

    def wait_for(
        self,
        event: str | Iterable[str],
        socket: str | None = None,
        *,
        timeout: float = 5.0,
        since: float | None = None,
        count: int = 1,
    ) -> Event:
        """Return the ``count``-th event matching ``event`` (and ``socket``, and ``t >= since``).

        Looks at events already logged first, then waits for new ones: an event
        that arrived before the call counts. ``timeout`` is in seconds. Raises
        ``TimeoutError`` naming what was awaited and what was seen instead.
        """
        if timeout < 0:
            raise ValueError(f"timeout is in seconds and must be >= 0; got {timeout!r}")
        if count < 1:
            raise ValueError(f"count must be >= 1; got {count!r}")
        match = _matcher(socket, event, since)
        deadline = time.monotonic() + timeout
        matched = 0
        next_index = 0  # position in the stream of all events ever appended
        with self._cond:
            while True:
                first = self._total - len(self._events)
                start = max(next_index, first)
                for ev in itertools.islice(self._events, start - first, None):
                    if match(ev):
                        matched += 1
                        if matched == count:
                            return ev
                next_index = self._total
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._timeout_message(event, socket, since, count, matched, timeout))
                self._cond.wait(remaining)

    def _timeout_message(self, event, socket, since, count, matched, timeout) -> str:
        names = sorted(_names(event) or ())
        what = "/".join(names) + (f" #{count}" if count > 1 else "")
        where = f" on {socket!r}" if socket else ""
        after = f" after t={since:.3f} s" if since is not None else ""
        relevant = [ev for ev in self._events if socket is None or ev.socket == socket]
        seen = collections.Counter(ev.event for ev in relevant)
        summary = ", ".join(f"{name} x{n}" for name, n in seen.most_common(8)) or "no events at all"
        last = f"; last: {relevant[-1].event} at {relevant[-1].t:.3f} s" if relevant else ""
        return (
            f"waited {timeout:g} s for {what}{where}{after}, matched {matched}; "
            f"saw {summary}{last}"
        )

    # -- subscribers -----------------------------------------------------------
    def subscribe(
        self,
        callback: Callable[[Any], None],
        *,
        socket: str | None = None,
        event: str | Iterable[str] | None = None,
        batch: bool = False,
    ) -> Subscription:
        """Call ``callback(event)`` for each new matching event (``batch=True``: ``callback(list)``).

        Callbacks run on the log's dispatcher thread, never the collector's, so a
        slow one delays only itself. If subscribers fall more than 100k events
        behind, the oldest undelivered are dropped and counted in
        :attr:`dropped_for_subscribers`. Exceptions are counted on the
        subscription (``errors``, ``last_error``), not raised.
        """
        sub = Subscription(self, callback, _matcher(socket, event, None), batch)
        with self._backlog_cond:
            if self._closed:
                raise RuntimeError("this EventLog is closed; subscribe before closing the Lab")
            self._subs.append(sub)
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(target=self._dispatch, name="zlab-dispatch", daemon=True)
                self._dispatcher.start()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._backlog_cond:
            if sub in self._subs:
                self._subs.remove(sub)

    def _dispatch(self) -> None:
        while True:
            with self._backlog_cond:
                while not self._backlog and not self._closed:
                    self._backlog_cond.wait()
                if self._closed:
                    return
                batch = list(self._backlog)
                self._backlog.clear()
                subs = list(self._subs)
            for sub in subs:
                chosen = [ev for ev in batch if sub.match(ev)]
                if not chosen:
                    continue
                try:
                    if sub.batch:
                        sub.callback(chosen)
                    else:
                        for ev in chosen:
                            if self._closed or sub not in self._subs:
                                break
                            sub.callback(ev)
                except Exception as exc:  # a subscriber's bug must not stop the others
                    sub.errors += 1
                    sub.last_error = exc

    def close(self, timeout: float = 1.0) -> None:
        """Stop deliveries to subscribers and drop their backlog; the events stay readable."""
        with self._backlog_cond:
            self._closed = True
            self._backlog.clear()
            self._subs.clear()
            self._backlog_cond.notify_all()
            dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not threading.current_thread():
            dispatcher.join(timeout)

    # -- export ----------------------------------------------------------------
    def to_records(self) -> list[dict[str, Any]]:
        """Every held event as a dict (see :meth:`Event.to_record`), sorted by ``t``."""
        return [ev.to_record() for ev in self.filter()]

    def to_jsonl(self, path: str) -> int:
        """Write one JSON object per event to ``path``; returns the number written."""
        import json

        records = self.to_records()
        with open(path, "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record) + "\n")
        return len(records)

    def to_dataframe(self):
        """The events as a pandas DataFrame (needs the ``pandas`` extra: ``pip install 'zlab[pandas]'``)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_dataframe() needs pandas: pip install 'zlab[pandas]'") from exc
        return pd.DataFrame.from_records(
            self.to_records(), columns=["t", "socket", "event", "value", "endpoint", "detail", "meaning"]
        )

    def __repr__(self) -> str:
        return f"<EventLog {len(self)} events (cap {self.cap}, discarded {self.discarded})>"
