"""``monitor-freeze`` and ``context-freeze``: the two ways a ZeroMQ context stops, each in a child process.

monitor-freeze: libzmq sends every monitor event blocking (socket_base.cpp
``monitor_event``: ``zmq_msg_send`` without ZMQ_DONTWAIT). When nobody reads
the monitor, the queue fills (about 1000 on libzmq's side plus the reader's
RCVHWM) and the thread emitting the next event -- the context's I/O thread --
blocks: every socket of that context stops moving data. With no reader at all
the very first event blocks. A reader with RCVHWM 0 never fills.

context-freeze: with a message queued for a dead peer, zmq_ctx_term(3) blocks
until the socket's linger period expires, and the default LINGER is -1
(zmq_setsockopt(3)): forever. LINGER 0 returns at once, LINGER N after ~N ms.

Both lessons hang by design, so they run in a child (``_child.py``) that the
parent kills after ``timeout_s``; the parent measures from outside.
"""

from __future__ import annotations

import time
from typing import Any

from ..events import Event
from ..lab import Lab
from ._base import Choice, Range, scenario
from ._measure import ms
from ._proc import ChildProgram

_START_TIMEOUT = 10.0  # a child's interpreter start on a loaded 2-core machine


def _child_event(lab: Lab, record: dict[str, Any], socket: str, kind: str, text: str) -> Event:
    """A zlab marker at the child's own time (same monotonic clock on Linux)."""
    ev = Event(record["t"] - lab.log.t0, socket, kind, 0, "", text)
    lab.log.append(ev)
    return ev


@scenario(
    "monitor-freeze",
    "a monitor nobody reads stalls its whole context: another socket's traffic drops to zero (child process)",
    reader=Choice("unread", "none", "rcvhwm0"),
    storm_endpoints=Range(20, 1, 200),
    interval_ms=Range(5, 1, 1000),
    baseline_s=0.5,
    duration=2.0,
    timeout_s=1.5,
)
def monitor_freeze(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    max_messages = int((s["baseline_s"] + s["duration"]) * 1000 / s["interval_ms"]) + 10
    child = lab.adopt(ChildProgram("monitor-freeze", {
        "reader": s["reader"], "storm_endpoints": s["storm_endpoints"], "interval_ms": s["interval_ms"],
        "baseline_s": s["baseline_s"], "duration": s["duration"], "max_messages": max_messages,
    }, name="frozen"), "peer")
    endpoint = child.expect("endpoint", _START_TIMEOUT)["endpoint"]
    observer = lab.socket("SUB", "observer", connect=endpoint, subscribe=b"")
    lab.wait_for("HANDSHAKE_SUCCEEDED", "observer", timeout=5.0)
    lab.mark("NOTE", f"child pid {child.pid}: its PUB publishes a sequence number every {s['interval_ms']} ms",
             socket="frozen", endpoint=endpoint)
    child.send("go")
    arrivals: list[float] = []
    deadline = time.monotonic() + s["baseline_s"] + s["duration"] + 0.2
    while (remaining := deadline - time.monotonic()) > 0:
        if observer.poll(int(min(remaining, 0.05) * 1000) + 1):
            observer.recv()
            arrivals.append(lab.now())
    fault = child.expect("fault", 2.0)  # written long ago: already queued
    fault_t = _child_event(lab, fault, "frozen", "FAULT", fault["fault"]).t
    term = child.expect("term", 2.0)
    _child_event(lab, term, "frozen", "NOTE", "child closes its sockets and calls ctx.term()")
    try:
        done = child.expect("term_ms", s["timeout_s"])
        term_ms: float | None = done["term_ms"]
        _child_event(lab, done, "frozen", "NOTE", f"ctx.term() returned after {term_ms} ms")
    except TimeoutError:
        term_ms = None
    child.close(0.0)
    if term_ms is None:
        lab.mark("NOTE", f"ctx.term() still blocked after {s['timeout_s']:g} s: child killed", socket="frozen")
    end_t = term["t"] - lab.log.t0
    before = [t for t in arrivals if fault_t - s["baseline_s"] <= t < fault_t]
    after = [t for t in arrivals if fault_t <= t < end_t]
    settle = min(0.5, s["duration"] / 2)
    late = [t for t in arrivals if fault_t + settle <= t < end_t]
    released = [t for t in arrivals if t >= end_t]  # after the child closed its sockets
    late_span = max(1e-9, end_t - fault_t - settle)
    sent = [r["sent"] for r in child.records if "sent" in r]
    sent_after = (sent[-1] - fault["sent"]) if sent else 0
    frozen = not late and sent_after > 0
    summary = {
        "reader": s["reader"],
        "received_per_s_before": round(len(before) / s["baseline_s"], 1),
        "received_per_s_after_settle": round(len(late) / late_span, 1),
        "received_after_fault": len(after),
        "last_message_after_fault_ms": ms(after[-1] - fault_t) if after else 0.0,
        "child_sent_after_fault": sent_after,
        "received_after_close": len(released),
        "context_frozen": frozen,
        "term_returned": term_ms is not None,
        "term_ms": term_ms,
        "child_killed": child.killed,
    }
    how = {"unread": "a reader with the default RCVHWM that nobody reads",
           "none": "monitor() with no reader connected at all",
           "rcvhwm0": "a reader with RCVHWM 0 that nobody reads"}[s["reader"]]
    findings = [f"The noisy socket's monitor had {how}; then a reconnect storm produced monitor events "
                "(about three per attempt, hundreds per second)."]
    if frozen:
        findings += [
            f"Before: {summary['received_per_s_before']:g} messages/s arrived from the child's PUB. After the storm "
            f"began the last one arrived {summary['last_message_after_fault_ms']:.0f} ms later; then nothing "
            f"({len(late)} in the last {late_span:.1f} s), while the child's code went on 'sending' "
            f"({sent_after} sends, no error): the I/O thread of its context is blocked on the monitor.",
        ]
    else:
        findings.append(
            f"Traffic kept flowing: {summary['received_per_s_after_settle']:g} messages/s after the storm began "
            f"(before: {summary['received_per_s_before']:g}/s); the context did not freeze.")
    if frozen and released:
        closed = "the monitored socket" + ("" if s["reader"] == "none" else " and its monitor's reader")
        findings.append(f"When the child closed its sockets ({closed}) the stall released: {len(released)} "
                        "messages queued meanwhile arrived at once.")
    if term_ms is None:
        findings.append(f"ctx.term() in the child was still blocked after {s['timeout_s']:g} s and the child was "
                        "killed: a frozen context cannot even shut down.")
    else:
        findings.append(f"ctx.term() in the child returned after {term_ms:g} ms.")
    return summary, findings


@scenario(
    "context-freeze",
    "messages queued for a dead peer: ctx.term() hangs with the default LINGER, returns at once with 0, after N ms with N",
    linger_ms=Range(500, 1, 10_000),
    messages=Range(10, 1, 10_000),
    timeout_s=2.0,
)
def context_freeze(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    peer = lab.socket("PULL", "peer", bind="tcp")
    endpoint = lab.endpoint(peer)
    lingers: dict[str, int | None] = {"default": None, "linger_0": 0, f"linger_{s['linger_ms']}": s["linger_ms"]}
    children = {
        label: lab.adopt(ChildProgram("context-term", {"endpoint": endpoint, "linger": linger,
                                                       "messages": s["messages"]}, name=label), "peer")
        for label, linger in lingers.items()
    }
    ready = {label: child.expect("ready", _START_TIMEOUT) for label, child in children.items()}
    lab.wait_for("HANDSHAKE_SUCCEEDED", "peer", count=len(children), timeout=5.0)
    lab.mark("FAULT", "the peer dies: close the bound PULL", socket="peer", endpoint=endpoint)
    peer.close()
    for child in children.values():
        child.send("go")
    started = {label: child.expect("term", 7.0) for label, child in children.items()}
    deadline = max(r["t"] for r in started.values()) + s["timeout_s"]
    results: dict[str, dict[str, Any]] = {}
    for label, child in children.items():
        try:
            done = child.expect("term_ms", max(0.0, deadline - time.monotonic()))
            term_ms: float | None = done["term_ms"]
            _child_event(lab, done, label, "NOTE", f"ctx.term() returned after {term_ms:g} ms")
        except TimeoutError:
            term_ms = None
        child.close(0.0)
        for record in child.records:
            if "event" in record:
                lab.log.append(Event(record["t"] - lab.log.t0, label, record["event"], record["value"],
                                     record["endpoint"]))
        _child_event(lab, started[label], label, "NOTE",
                     f"{started[label]['sent']} messages queued; close(); ctx.term()")
        if term_ms is None:
            lab.mark("NOTE", f"ctx.term() still blocked after {s['timeout_s']:g} s: child killed", socket=label)
        results[label] = {
            "linger": ready[label]["linger"],
            "queued": started[label]["sent"],
            "term_ms": term_ms,
            "hung": term_ms is None,
            "killed": child.killed,
        }
    summary = {"timeout_s": s["timeout_s"], "children": results}
    findings = []
    for label, r in results.items():
        setting = "the default LINGER" if lingers[label] is None else f"LINGER {lingers[label]}"
        if r["hung"]:
            findings.append(f"{setting} (reads {r['linger']}): ctx.term() was still blocked after "
                            f"{s['timeout_s']:g} s with {r['queued']} messages queued for the dead peer; killed.")
        else:
            findings.append(f"{setting} (reads {r['linger']}): ctx.term() returned after {r['term_ms']:g} ms.")
    return summary, findings
