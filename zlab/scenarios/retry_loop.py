"""``retry-loop`` and ``direction``: who loops when a peer dies, and how fast.

retry-loop: a PUB connects to a bound SUB; the SUB dies. The PUB's monitor
shows DISCONNECTED (the fd of the TCP connection that ended), then the cycle
CONNECT_RETRIED (the wait in ms) -> CONNECT_DELAYED (115, EINPROGRESS) ->
CLOSED (the failed attempt's own fd) once per reconnect interval, for as long
as nobody listens. Only the connecting side loops. With reconnect_ivl 0 or -1
there is no loop at all: libzmq 4.3.5 does not reconnect (measured).

direction: the same failure twice, side by side -- PUB binding with a
connecting SUB (the PUB sees one DISCONNECTED and is quiet), and PUB
connecting to a bound SUB (the PUB loops).
"""

from __future__ import annotations

import threading
from typing import Any

from ..lab import Lab
from ..traffic import deliver
from ._base import scenario
from ._measure import after, ms, retry_cycles


def _collect(seconds: float) -> None:
    """A measurement window: let the sockets run for ``seconds`` (nothing is awaited here)."""
    threading.Event().wait(seconds)


def _loop_figures(events: list, duration: float) -> dict[str, Any]:
    cycles = retry_cycles(events)
    names = [ev.event for ev in events if not ev.is_marker]
    return {
        "cycles": len(cycles),
        "cycles_per_s": round(len(cycles) / duration, 2),
        "connect_retried": names.count("CONNECT_RETRIED"),
        "connect_delayed": names.count("CONNECT_DELAYED"),
        "closed": names.count("CLOSED"),
        "retry_intervals_ms": [c.interval_ms for c in cycles][:20],
        "connect_delayed_values": sorted({ev.value for ev in events if ev.event == "CONNECT_DELAYED"}),
        "closed_fds": sorted({c.closed_fd for c in cycles}),
    }


def _loop_findings(figures: dict[str, Any], ivl: int, duration: float, events: list) -> list[str]:
    """What the connecting PUB did after DISCONNECTED, stated only as far as ``figures`` show it."""
    if figures["cycles"] == 0:
        seen = [ev.event for ev in events if not ev.is_marker and ev.event != "DISCONNECTED"]
        why = (f" reconnect_ivl={ivl}: libzmq 4.3.5 does not reconnect at all with 0 or -1 (measured; the manual "
               "documents only -1)." if ivl <= 0 else "")
        return [f"Then no CONNECT_RETRIED -> CONNECT_DELAYED -> CLOSED cycle in {duration:g} s; after DISCONNECTED "
                f"the PUB logged {', '.join(seen) or 'nothing'}.{why}"]
    ivls = figures["retry_intervals_ms"]
    delayed = figures["connect_delayed_values"]
    in_jitter = all(ivl <= v < 2 * ivl for v in ivls)
    return [
        f"Then {figures['cycles']} full CONNECT_RETRIED -> CONNECT_DELAYED -> CLOSED cycles in {duration:g} s "
        f"({figures['cycles_per_s']:g} per second) with nobody listening.",
        f"Each failed attempt logged its own CLOSED: {figures['closed']} CLOSED for {figures['connect_delayed']} "
        f"attempts, fds {figures['closed_fds']} (each attempt's new descriptor; a number repeats when it is "
        "freed before the next attempt).",
        f"CONNECT_RETRIED values (the wait before the next attempt, ms): {ivls[:8]}"
        + (" -- reconnect_ivl plus random jitter, below 2 x reconnect_ivl." if in_jitter else "."),
        (f"CONNECT_DELAYED's value was always {delayed[0]} (EINPROGRESS); the manual says 'unspecified'."
         if delayed == [115] else f"CONNECT_DELAYED's values: {delayed}; the manual says 'unspecified'."),
    ]


@scenario(
    "retry-loop",
    "a PUB connects, its bound SUB dies: the endless CONNECT_RETRIED / CONNECT_DELAYED / CLOSED cycle, measured",
    reconnect_ivl=100,
    duration=2.0,
    timeout_s=5.0,
)
def retry_loop(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    timeout = s["timeout_s"]
    sub = lab.socket("SUB", "sub", bind="tcp", subscribe=b"")
    endpoint = lab.endpoint(sub)
    pub = lab.socket("PUB", "pub", connect=endpoint, reconnect_ivl=s["reconnect_ivl"])
    connected = lab.wait_for("CONNECTED", "pub", timeout=timeout)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "sub", timeout=timeout)
    deliver(pub, sub, b"hello", timeout=timeout)

    fault = lab.mark("FAULT", "the bound SUB dies (close)", socket="sub", endpoint=endpoint)
    sub.close()
    disconnected = lab.wait_for("DISCONNECTED", "pub", since=fault.t, timeout=timeout)
    _collect(s["duration"])
    end = disconnected.t + s["duration"]
    lab.mark("NOTE", f"end of the {s['duration']:g} s window", socket="pub")

    pub_events = after(lab.events("pub"), disconnected.t, end)
    figures = _loop_figures(pub_events, s["duration"])
    sub_after = [ev.event for ev in lab.events("sub", since=fault.t) if not ev.is_marker]
    bound_retries = sum(1 for name in sub_after if name in ("CONNECT_RETRIED", "CONNECT_DELAYED"))
    summary = {
        "duration_s": s["duration"],
        "reconnect_ivl": s["reconnect_ivl"],
        "connected_fd": connected.value,
        "disconnected_fd": disconnected.value,
        "disconnected_after_fault_ms": ms(disconnected.t - fault.t),
        **figures,
        "closed_per_attempt": round(figures["closed"] / max(1, figures["connect_delayed"]), 2),
        "bound_side_events": sub_after,
        "bound_side_retries": bound_retries,
    }
    findings = [
        f"DISCONNECTED on the PUB {summary['disconnected_after_fault_ms']:.1f} ms after the SUB died, value "
        f"{disconnected.value}: the fd of the TCP connection that ended (CONNECTED had reported fd "
        f"{connected.value}). pub.closed is {pub.closed}.",
        *_loop_findings(figures, s["reconnect_ivl"], s["duration"], pub_events),
        f"The bound side logged {', '.join(sub_after) or 'nothing'}"
        + (" and no retry events." if bound_retries == 0 else f", {bound_retries} of them retry events.")
        + (" Only the connecting side loops." if bound_retries == 0 and figures["cycles"] else ""),
    ]
    return summary, findings


@scenario(
    "direction",
    "the same SUB failure with the PUB binding vs the PUB connecting: only a connecting PUB loops",
    reconnect_ivl=100,
    duration=1.5,
    timeout_s=5.0,
)
def direction(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    timeout = s["timeout_s"]
    # PUB binds, SUB connects (the recommended direction)
    bpub = lab.socket("PUB", "bind_pub", bind="tcp", reconnect_ivl=s["reconnect_ivl"])
    bsub = lab.socket("SUB", "bind_sub", connect=lab.endpoint(bpub), subscribe=b"",
                      reconnect_ivl=s["reconnect_ivl"])
    # SUB binds, PUB connects
    csub = lab.socket("SUB", "conn_sub", bind="tcp", subscribe=b"")
    cpub = lab.socket("PUB", "conn_pub", connect=lab.endpoint(csub), reconnect_ivl=s["reconnect_ivl"])
    for name in ("bind_pub", "bind_sub", "conn_pub", "conn_sub"):
        lab.wait_for("HANDSHAKE_SUCCEEDED", name, timeout=timeout)
    deliver(bpub, bsub, b"hello", timeout=timeout)
    deliver(cpub, csub, b"hello", timeout=timeout)

    fault = lab.mark("FAULT", "both SUBs die (close)")
    bsub.close()
    csub.close()
    lab.wait_for("DISCONNECTED", "bind_pub", since=fault.t, timeout=timeout)
    lab.wait_for("DISCONNECTED", "conn_pub", since=fault.t, timeout=timeout)
    _collect(s["duration"])
    end = fault.t + s["duration"]

    sides: dict[str, dict[str, Any]] = {}
    for label, role in (("bind_pub", "PUB binds, SUB connects"), ("conn_pub", "PUB connects, SUB binds")):
        events = [ev for ev in after(lab.events(label), fault.t, end) if not ev.is_marker]
        names = [ev.event for ev in events]
        sides[label] = {
            "role": role,
            "events_after_fault": len(events),
            "counts": {name: names.count(name) for name in dict.fromkeys(names)},
            **{k: v for k, v in _loop_figures(events, s["duration"]).items()
               if k in ("cycles", "cycles_per_s")},
        }
    b, c = sides["bind_pub"], sides["conn_pub"]
    summary = {"duration_s": s["duration"], "sides": sides}
    quiet = b["counts"] == {"DISCONNECTED": 1}
    findings = [
        f"PUB binding: after its SUB died it logged {b['counts'] or 'nothing'} in {s['duration']:g} s"
        + (" -- one DISCONNECTED, then silence; reconnecting is the SUB's job." if quiet else "."),
        f"PUB connecting: {c['counts']} in the same {s['duration']:g} s -- "
        + (f"{c['cycles']} retry cycles ({c['cycles_per_s']:g}/s), and it goes on for as long as the SUB stays away."
           if c["cycles"] else
           "no retry cycle" + (f" (reconnect_ivl={s['reconnect_ivl']}: libzmq 4.3.5 does not reconnect with 0 or -1)."
                               if s["reconnect_ivl"] <= 0 else ".")),
    ]
    if quiet and c["cycles"]:
        findings.append("With many SUBs, each one that dies adds its own endless loop to a connecting PUB: "
                        "PUB binds, SUB connects.")
    return summary, findings
