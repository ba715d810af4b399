"""Text and HTML renderers of events: the CLI prints lines, notebooks show tables.

The EventLog is the data; these functions only draw it. Columns: time in ms
since the Lab started, socket label, event, value with its meaning, endpoint.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Sequence

from .events import Event

__all__ = ["EventTable", "counts_line", "format_event", "HEADER"]

HEADER = f"{'t (ms)':>9}  {'socket':<10} {'event':<26} {'value: meaning':<44} endpoint"


def format_event(ev: Event) -> str:
    """One fixed-width line: ``t (ms)  socket  event  value: meaning  endpoint``."""
    if ev.is_marker:
        return f"{ev.t * 1000:9.1f}  {ev.socket:<10} {ev.event:<26} {ev.detail:<44} {ev.endpoint}"
    value = f"{ev.value}: {ev.meaning}" if ev.meaning not in ("-", str(ev.value)) else str(ev.value)
    return f"{ev.t * 1000:9.1f}  {ev.socket:<10} {ev.event:<26} {value:<44} {ev.endpoint}"


def counts_line(events: Iterable[Event]) -> str:
    """``CONNECTED x2, CLOSED x14, ...`` in order of first appearance."""
    counts = Counter(ev.event for ev in events)
    return ", ".join(f"{name} x{n}" for name, n in counts.items()) or "no events"


class EventTable:
    """A table of events that prints as text and shows as HTML in Jupyter.

    ``limit`` keeps the first N rows (a retry storm has thousands); the rest
    are counted in a last line.
    """

    def __init__(self, events: Sequence[Event], limit: int = 60, title: str = ""):
        self.events = list(events)
        self.limit = limit
        self.title = title

    def _rows(self) -> tuple[list[Event], int]:
        shown = self.events[: self.limit]
        return shown, len(self.events) - len(shown)

    def __str__(self) -> str:
        shown, hidden = self._rows()
        lines = ([self.title] if self.title else []) + [HEADER] + [format_event(ev) for ev in shown]
        if hidden:
            lines.append(f"... and {hidden} more events ({counts_line(self.events[self.limit:])})")
        if not self.events:
            lines.append("(no events)")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        shown, hidden = self._rows()
        esc = html.escape
        rows = []
        for ev in shown:
            style = ' style="background:#fff3cd"' if ev.is_marker else ""
            value = "" if ev.is_marker else str(ev.value)
            rows.append(
                f"<tr{style}><td style='text-align:right'>{ev.t * 1000:.1f}</td><td>{esc(ev.socket)}</td>"
                f"<td><b>{esc(ev.event)}</b></td><td style='text-align:right'>{value}</td>"
                f"<td>{esc(ev.meaning)}</td><td>{esc(ev.endpoint)}</td></tr>"
            )
        if hidden:
            rows.append(f"<tr><td colspan=6><i>... and {hidden} more events "
                        f"({esc(counts_line(self.events[self.limit:]))})</i></td></tr>")
        if not self.events:
            rows.append("<tr><td colspan=6><i>no events</i></td></tr>")
        caption = f"<caption>{esc(self.title)}</caption>" if self.title else ""
        head = "".join(f"<th>{h}</th>" for h in ("t (ms)", "socket", "event", "value", "meaning", "endpoint"))
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
