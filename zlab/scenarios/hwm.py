"""``hwm``: a publisher outrunning a stalled subscriber -- where the messages go, and what the monitor says.

A PUB binds, a SUB connects, then the SUB stops reading while the PUB sends
``messages`` numbered messages as fast as it can. Between the two ends they
can only pile up in the PUB's queue (SNDHWM), the kernel's TCP buffers and the
SUB's queue (RCVHWM); beyond that zmq_socket(3) says a PUB drops. Then the SUB
reads everything that arrived, and the sequence numbers tell how many were
dropped and where. The PUB's send never fails, and the monitor of either
socket logs nothing at all about it: drops are silent (measured).
"""

from __future__ import annotations

import struct
import time
from typing import Any

import zmq

from ..lab import Lab
from ..traffic import deliver
from ._base import Range, scenario

_SEQ = struct.Struct("!Q")


def _gaps(seqs: list[int], sent: int) -> list[tuple[int, int]]:
    """Missing ranges ``(first, last)`` of sequence numbers 0..sent-1, given those received (sorted)."""
    gaps, expected = [], 0
    for seq in seqs:
        if seq > expected:
            gaps.append((expected, seq - 1))
        expected = max(expected, seq + 1)
    if expected < sent:
        gaps.append((expected, sent - 1))
    return gaps


@scenario(
    "hwm",
    "a PUB outruns a stalled SUB: queued up to the high-water marks, then dropped silently (seq numbers count it)",
    messages=Range(20_000, 10, 500_000),
    payload_bytes=Range(1000, 8, 100_000),
    sndhwm=1000,
    rcvhwm=1000,
    duration=5.0,
    timeout_s=5.0,
)
def hwm(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    timeout = s["timeout_s"]
    pub = lab.socket("PUB", "pub", bind="tcp", sndhwm=s["sndhwm"])
    sub = lab.socket("SUB", "sub", connect=lab.endpoint(pub), subscribe=b"", rcvhwm=s["rcvhwm"])
    lab.wait_for("HANDSHAKE_SUCCEEDED", "sub", timeout=timeout)
    deliver(pub, sub, b"warm-up", timeout=timeout)  # the subscription has reached the PUB
    while sub.poll(50):
        sub.recv()

    fault = lab.mark("FAULT", "the SUB stops reading (a stalled consumer)", socket="sub")
    padding = b"\0" * max(0, s["payload_bytes"] - _SEQ.size)
    sent = again = 0
    stop_at = time.monotonic() + s["duration"]
    for seq in range(s["messages"]):
        if time.monotonic() > stop_at:
            break
        try:
            pub.send(_SEQ.pack(seq) + padding, zmq.NOBLOCK)
        except zmq.Again:
            again += 1
        sent += 1
    send_s = lab.now() - fault.t
    monitor_during = [ev for ev in lab.events(since=fault.t) if not ev.is_marker]
    lab.mark("NOTE", f"PUB sent {sent} messages in {send_s * 1000:.0f} ms; the SUB reads again", socket="sub")

    seqs: list[int] = []
    drain_until = time.monotonic() + timeout
    while time.monotonic() < drain_until and sub.poll(200):
        while True:
            try:
                frame = sub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(frame) >= _SEQ.size:
                seqs.append(_SEQ.unpack_from(frame)[0])
    seqs.sort()
    gaps = _gaps(seqs, sent)
    dropped = sent - len(seqs)
    monitor_all = [ev for ev in lab.events(since=fault.t) if not ev.is_marker]
    summary = {
        "sent": sent,
        "send_errors": again,
        "received": len(seqs),
        "dropped": dropped,
        "first_dropped": gaps[0][0] if gaps else None,
        "contiguous_prefix": gaps[0][0] if gaps else len(seqs),
        "gaps": gaps[:10],
        "sndhwm": s["sndhwm"],
        "rcvhwm": s["rcvhwm"],
        "payload_bytes": s["payload_bytes"],
        "send_ms": round(send_s * 1000, 1),
        "monitor_events_during_send": len(monitor_during),
        "monitor_events_after_fault": [ev.event for ev in monitor_all],
    }
    findings = [
        f"The PUB sent {sent} messages of {s['payload_bytes']} bytes in {summary['send_ms']:.0f} ms; "
        f"send() failed {again} times: a PUB never blocks and never reports a drop.",
        f"The stalled SUB later read {len(seqs)}; counted by sequence number, {dropped} were missing in "
        f"{len(gaps)} gap(s)" + (f", the first {gaps[0][0]}..{gaps[0][1]}" if gaps else "") + ".",
        f"About {len(seqs)} messages fitted between the ends -- SNDHWM {s['sndhwm']} + RCVHWM {s['rcvhwm']} + "
        "what the kernel's TCP buffers held; whenever the PUB's queue was at its high-water mark, new messages "
        "were dropped.",
        f"The monitors logged {len(monitor_during)} events while messages were being dropped: the monitor says "
        "nothing about drops; only sequence numbers reveal them.",
    ]
    return summary, findings
