"""``stop-retrying``: the ways to end the reconnect loop, measured side by side.

Four PUBs connect to one bound SUB; the SUB dies; each PUB reacts as set up:

* ``baseline`` -- libzmq's defaults: loops for ever (the baseline);
* ``pub_stop`` -- ZMQ_RECONNECT_STOP = ZMQ_RECONNECT_STOP_CONN_REFUSED (option
  109). zmq_setsockopt(3) (libzmq 4.3.5) calls it "in DRAFT state, not yet
  available in stable releases"; this run records whether *this* build accepts
  it and whether the loop ends -- never inferred from ``zmq.has("draft")``;
* ``pub_cap`` -- a user-land cap on the monitor: zlab.policies.RetryLimiter
  calls ``disconnect()`` after ``attempts`` CONNECT_RETRIED (without it, the
  scenario does the same from this thread);
* ``pub_ivl-1`` -- RECONNECT_IVL = -1, "no reconnection" (zmq_setsockopt(3)).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import zmq

from ..lab import Lab
from ._base import Range, scenario
from ._measure import after, first

RECONNECT_STOP = int(getattr(zmq, "RECONNECT_STOP", 109))  # zmq.h (draft section) of libzmq 4.3.5
RECONNECT_STOP_CONN_REFUSED = int(getattr(zmq, "RECONNECT_STOP_CONN_REFUSED", 1))


def _set_reconnect_stop(sock: zmq.Socket) -> tuple[bool, str]:
    """Try ZMQ_RECONNECT_STOP = CONN_REFUSED on ``sock``; (accepted, what happened)."""
    try:
        sock.setsockopt(RECONNECT_STOP, RECONNECT_STOP_CONN_REFUSED)
        value = sock.getsockopt(RECONNECT_STOP)
    except zmq.ZMQError as exc:
        return False, f"setsockopt(ZMQ_RECONNECT_STOP) failed: {exc.strerror} (errno {exc.errno})"
    return True, f"setsockopt(ZMQ_RECONNECT_STOP, {RECONNECT_STOP_CONN_REFUSED}) accepted; reads back {value}"


def _user_cap(lab: Lab, name: str, attempts: int) -> tuple[Any, str]:
    """The RetryLimiter of zlab.policies on ``name``, if that module is there; else None."""
    try:
        from ..policies import RetryLimiter
    except ImportError:
        return None, f"disconnect() from the scenario after {attempts} CONNECT_RETRIED (zlab.policies missing)"
    return RetryLimiter(lab, name, max_attempts=attempts), f"zlab.policies.RetryLimiter(max_attempts={attempts})"


@scenario(
    "stop-retrying",
    "ending the reconnect loop: RECONNECT_STOP (documented as draft), a user-land cap, reconnect_ivl=-1",
    attempts=Range(3, 1, 50),
    duration=1.5,
    timeout_s=5.0,
)
def stop_retrying(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    timeout = s["timeout_s"]
    sub = lab.socket("SUB", "sub", bind="tcp", subscribe=b"")
    endpoint = lab.endpoint(sub)
    pubs = {
        "baseline": lab.socket("PUB", "baseline"),
        "pub_stop": lab.socket("PUB", "pub_stop"),
        "pub_cap": lab.socket("PUB", "pub_cap"),
        "pub_ivl-1": lab.socket("PUB", "pub_ivl-1", reconnect_ivl=-1),
    }
    stop_accepted, stop_text = _set_reconnect_stop(pubs["pub_stop"])
    lab.mark("NOTE", stop_text, socket="pub_stop")
    for sock in pubs.values():
        lab.connect(sock, endpoint)
    for name in pubs:
        lab.wait_for("HANDSHAKE_SUCCEEDED", name, timeout=timeout)
    limiter, cap_how = _user_cap(lab, "pub_cap", s["attempts"])

    fault = lab.mark("FAULT", "the bound SUB dies (close)", socket="sub", endpoint=endpoint)
    sub.close()
    for name in pubs:
        lab.wait_for("DISCONNECTED", name, since=fault.t, timeout=timeout)
    deadline = time.monotonic() + s["duration"]
    if limiter is None:  # the same policy, done by hand from the socket's own thread
        try:
            lab.wait_for("CONNECT_RETRIED", "pub_cap", since=fault.t, count=s["attempts"],
                         timeout=s["duration"])
            lab.mark("POLICY", f"gave up on {endpoint} after {s['attempts']} attempts: disconnect()",
                     socket="pub_cap", endpoint=endpoint)
            pubs["pub_cap"].disconnect(endpoint)
            for _ in range(50):  # disconnect() completes when the owning thread next uses the socket
                pubs["pub_cap"].getsockopt(zmq.EVENTS)
                time.sleep(0.002)
        except TimeoutError:
            pass
    threading.Event().wait(max(0.0, deadline - time.monotonic()))
    end = fault.t + s["duration"]
    lab.mark("NOTE", f"end of the {s['duration']:g} s window")

    variants: dict[str, dict[str, Any]] = {}
    for name in pubs:
        events = [ev for ev in after(lab.events(name), fault.t, end)]
        monitor = [ev for ev in events if not ev.is_marker]
        refused = first(monitor, "CLOSED")  # the first failed attempt's CLOSED
        retried = [ev for ev in monitor if ev.event == "CONNECT_RETRIED"]
        after_refused = [ev for ev in retried if refused is not None and ev.t > refused.t]
        policy = first(lab.events(name, "POLICY", since=fault.t), "POLICY")
        last = monitor[-1] if monitor else None
        variants[name] = {
            "connect_retried": len(retried),
            "attempts": sum(1 for ev in monitor if ev.event == "CONNECT_DELAYED"),
            "retried_after_first_refused": len(after_refused),
            "retried_after_policy": (sum(1 for ev in retried if ev.t > policy.t) if policy else None),
            "last_event": last.event if last else None,
            "quiet_for_ms": round((end - last.t) * 1000, 1) if last else None,
            "events": [ev.event for ev in monitor][:12],
        }
    # A loop counts as stopped when the socket was quiet for the last half of the window.
    for v in variants.values():
        v["stopped"] = v["quiet_for_ms"] is not None and v["quiet_for_ms"] >= s["duration"] * 500
    stop = variants["pub_stop"]
    honoured = stop_accepted and stop["retried_after_first_refused"] == 0 and stop["stopped"]
    summary = {
        "draft_api": bool(zmq.has("draft")),
        "reconnect_stop_accepted": stop_accepted,
        "reconnect_stop_honoured": honoured,
        "user_cap": cap_how,
        "variants": variants,
        "duration_s": s["duration"],
    }
    d, c, n = variants["baseline"], variants["pub_cap"], variants["pub_ivl-1"]
    findings = [
        f"Defaults: {d['connect_retried']} CONNECT_RETRIED in {s['duration']:g} s, still looping at the end.",
    ]
    if not stop_accepted:
        findings.append(f"RECONNECT_STOP: {stop_text}: this build does not offer it.")
    elif honoured:
        findings.append(
            f"RECONNECT_STOP=CONN_REFUSED: {' -> '.join(stop['events'])}, then nothing: no CONNECT_RETRIED after the "
            f"first refused attempt, on a build where zmq.has('draft') is {summary['draft_api']}. No event says "
            "the socket gave up.")
    else:
        findings.append(f"RECONNECT_STOP was accepted but the loop went on: {stop['retried_after_first_refused']} "
                        "CONNECT_RETRIED after the first refused attempt.")
    findings.append(
        f"User-land cap ({cap_how}): {c['connect_retried']} CONNECT_RETRIED, then disconnect() ended the loop "
        f"({c['retried_after_policy'] if c['retried_after_policy'] is not None else '?'} after the decision); "
        "it works on any build and says so in the log (POLICY)." if c["stopped"] else
        f"User-land cap ({cap_how}): the loop did not stop within {s['duration']:g} s "
        f"({c['connect_retried']} CONNECT_RETRIED).")
    findings.append(
        f"reconnect_ivl=-1: {' -> '.join(n['events']) or 'nothing'}: no reconnection at all, not even one attempt."
        if n["connect_retried"] == 0 else
        f"reconnect_ivl=-1: {n['connect_retried']} CONNECT_RETRIED: it did reconnect.")
    return summary, findings
