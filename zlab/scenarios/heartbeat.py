"""``heartbeat``: a silent (paused) peer, detected or not, and how long detection took.

A ROUTER peer runs in a child process; Lab DEALERs connect to it; the peer is
frozen with SIGSTOP. Its kernel keeps the TCP connections open and answers
for it, so no FIN or RST ever comes: only ZMTP heartbeats notice. zmq_setsockopt(3)
(libzmq 4.3.5): HEARTBEAT_IVL sends a PING every N ms; HEARTBEAT_TIMEOUT drops
the connection when nothing arrives N ms after a PING ("Default value: 0
normally, ZMQ_HEARTBEAT_IVL if it is set"). Sockets:

* ``hb`` -- the heartbeat settings given (``heartbeat_ivl`` 0 = no heartbeats);
* ``hb_default`` -- the same HEARTBEAT_IVL with HEARTBEAT_TIMEOUT left at its default
  (``compare``);
* ``keepalive`` -- no heartbeats, aggressive TCP keepalive (1 s idle, 1 s
  interval, 1 probe) for comparison (``compare``). Had its probes gone
  unanswered, it would drop the connection idle + 1 s after the last traffic
  (tcp(7)); the finding claims "not detected" only when the window covered
  that, else it says the window was too short to tell.

After ``hb`` gives up on the frozen peer it reconnects: the peer's kernel
accepts the connection (CONNECTED), but no HANDSHAKE_SUCCEEDED comes until the
peer resumes -- CONNECTED is not proof of life.
"""

from __future__ import annotations

import time
from typing import Any

import zmq

from ..lab import Lab
from ._base import scenario
from ._measure import ms


def _disconnected_by(lab: Lab, name: str, since: float, deadline: float):
    try:
        return lab.wait_for("DISCONNECTED", name, since=since, timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return None


#: Scheduling slack allowed on timing comparisons in findings, in seconds (2 shared cores).
SLACK_S = 0.1


def _keepalive_window(lab: Lab, s: dict[str, Any], deadline: float) -> dict[str, Any]:
    """How long the ``keepalive`` socket was watched after its last traffic, vs when keepalive could give up.

    Its last traffic is its handshake (it sends nothing after). With 1 probe
    1 s apart, Linux drops an unanswered connection idle + 1 s after that
    (tcp(7): TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT). Seconds throughout.
    """
    idle = max(1, s["tcp_keepalive_idle"])
    gives_up = idle + 1
    last = lab.events("keepalive", "HANDSHAKE_SUCCEEDED")[-1].t
    window = round(deadline - lab.log.t0 - last, 3)
    need = gives_up + 0.5  # half a second of margin for timer granularity and a loaded machine
    return {"idle_s": idle, "gives_up_s": gives_up, "window_s": window, "covered": window >= need,
            "needs_duration_s": round(s["duration"] + max(0.0, need - window) + 0.05, 1)}


@scenario(
    "heartbeat",
    "a paused (SIGSTOP) peer: detected by heartbeats or not, how fast; TCP keepalive alone; CONNECTED is not life",
    heartbeat_ivl=100,
    heartbeat_timeout=300,
    heartbeat_ttl=0,
    reconnect_ivl=100,
    tcp_keepalive_idle=1,
    compare=True,
    duration=3.0,
    timeout_s=5.0,
)
def heartbeat(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    timeout = s["timeout_s"]
    ivl, hb_timeout = s["heartbeat_ivl"], s["heartbeat_timeout"]
    peer = lab.peer("ROUTER", "peer", bind="tcp")
    endpoint = peer.endpoint
    clients = {"hb": {"heartbeat_ivl": ivl, "heartbeat_timeout": hb_timeout, "heartbeat_ttl": s["heartbeat_ttl"]}}
    if s["compare"]:
        if ivl > 0 and hb_timeout != -1:
            clients["hb_default"] = {"heartbeat_ivl": ivl}
        idle = max(1, s["tcp_keepalive_idle"])
        clients["keepalive"] = {"tcp_keepalive": 1, "tcp_keepalive_idle": idle, "tcp_keepalive_intvl": 1,
                                "tcp_keepalive_cnt": 1}
    socks: dict[str, zmq.Socket] = {}
    for name, options in clients.items():
        socks[name] = lab.socket("DEALER", name, connect=endpoint, reconnect_ivl=s["reconnect_ivl"], **options)
    for name in clients:
        lab.wait_for("HANDSHAKE_SUCCEEDED", name, timeout=timeout)
    default_timeout_reads = socks["hb"].getsockopt(zmq.HEARTBEAT_TIMEOUT) if "hb_default" not in socks else \
        socks["hb_default"].getsockopt(zmq.HEARTBEAT_TIMEOUT)

    peer.pause()  # marks FAULT pause peer; returns once the process is stopped
    fault = lab.events("peer", "FAULT")[-1]
    deadline = time.monotonic() + s["duration"]
    detected = {name: _disconnected_by(lab, name, fault.t, deadline) for name in clients}

    hb_disc = detected["hb"]
    reconnect: dict[str, Any] = {}
    if hb_disc is not None:
        try:
            connected = lab.wait_for("CONNECTED", "hb", since=hb_disc.t, timeout=max(1.0, 3 * s["reconnect_ivl"] / 1000))
            reconnect["connected_after_detection_ms"] = ms(connected.t - hb_disc.t)
        except TimeoutError:
            connected = None
        reconnect["connected_while_frozen"] = connected is not None
    resume_t = lab.now()
    reconnect["handshakes_while_frozen"] = len(
        [ev for ev in lab.events("hb", "HANDSHAKE_SUCCEEDED", since=fault.t) if ev.t < resume_t])
    peer.resume()
    resumed = lab.events("peer", "FAULT")[-1]
    if hb_disc is not None and reconnect.get("connected_while_frozen"):
        try:
            hs = lab.wait_for("HANDSHAKE_SUCCEEDED", "hb", since=resumed.t, timeout=timeout)
            reconnect["handshake_after_resume_ms"] = ms(hs.t - resumed.t)
        except TimeoutError:
            reconnect["handshake_after_resume_ms"] = None

    def seconds(ev) -> float | None:
        return round(ev.t - fault.t, 3) if ev is not None else None

    effective_timeout = hb_timeout if hb_timeout > 0 else ivl
    summary = {
        "heartbeat_ivl": ivl,
        "heartbeat_timeout": hb_timeout,
        "heartbeat_ttl": s["heartbeat_ttl"],
        "detected": hb_disc is not None,
        "detection_s": seconds(hb_disc),
        "expected_window_s": [effective_timeout / 1000, (effective_timeout + ivl) / 1000] if ivl > 0 else None,
        "duration_s": s["duration"],
        "heartbeat_timeout_default_reads": default_timeout_reads,
        "compare": {name: {"detected": ev is not None, "detection_s": seconds(ev)}
                    for name, ev in detected.items() if name != "hb"},
        "keepalive": _keepalive_window(lab, s, deadline) if "keepalive" in clients else None,
        "reconnect_to_frozen_peer": reconnect,
    }
    findings = []
    if ivl == 0:
        findings.append(f"heartbeat_ivl=0 (no heartbeats): the frozen peer was not detected in {s['duration']:g} s"
                        if hb_disc is None else
                        f"heartbeat_ivl=0, yet DISCONNECTED came after {summary['detection_s']} s.")
    elif hb_disc is not None:
        lo, hi = summary["expected_window_s"]
        findings.append(f"heartbeat_ivl={ivl} ms, heartbeat_timeout={hb_timeout} ms: DISCONNECTED "
                        f"{summary['detection_s'] * 1000:.0f} ms after the peer froze (the PING that goes unanswered "
                        f"leaves up to one interval after the freeze: expect {lo * 1000:.0f}..{hi * 1000:.0f} ms).")
    else:
        findings.append(f"heartbeat_ivl={ivl} ms, heartbeat_timeout={hb_timeout} ms: not detected within "
                        f"{s['duration']:g} s.")
    if "hb_default" in summary["compare"]:
        d = summary["compare"]["hb_default"]
        head = (f"HEARTBEAT_TIMEOUT left at its default (getsockopt reads {default_timeout_reads}; the manual "
                "says 0, meaning HEARTBEAT_IVL): ")
        if not d["detected"]:
            findings.append(head + f"not detected within {s['duration']:g} s.")
        else:
            within = ivl / 1000 <= d["detection_s"] <= 2 * ivl / 1000 + SLACK_S
            findings.append(head + f"detected after {d['detection_s']} s"
                            + (f", within [ivl, 2 x ivl] (+{SLACK_S * 1000:.0f} ms slack): the timeout was the "
                               f"interval ({ivl} ms)." if within else f", outside [ivl, 2 x ivl] for ivl={ivl} ms."))
    if "keepalive" in summary["compare"]:
        k, w = summary["compare"]["keepalive"], summary["keepalive"]
        head = f"TCP keepalive alone ({w['idle_s']} s idle, 1 s interval, 1 probe): "
        if k["detected"]:
            findings.append(head + f"detected after {k['detection_s']} s.")
        elif w["covered"]:
            findings.append(head + f"not detected in {s['duration']:g} s, {w['window_s']} s after its last traffic, "
                            f"though with unanswered probes it drops a connection {w['gives_up_s']} s after it -- "
                            "the frozen process's kernel answers the probes.")
        else:
            findings.append(head + f"not detected, but the window ({w['window_s']} s after its last traffic) was "
                            f"too short to tell: it cannot drop a connection sooner than {w['gives_up_s']} s after "
                            f"it. Run with duration >= {w['needs_duration_s']:g} s.")
    if reconnect.get("connected_while_frozen"):
        after = reconnect.get("handshake_after_resume_ms")
        findings.append(f"hb then reconnected to the still-frozen peer: CONNECTED "
                        f"{reconnect['connected_after_detection_ms']:.0f} ms after the DISCONNECTED (the kernel "
                        f"accepted), but {reconnect['handshakes_while_frozen']} HANDSHAKE_SUCCEEDED while frozen; "
                        + (f"the handshake came {after} ms after resume." if after is not None else
                           "no handshake came after resume either.")
                        + (" CONNECTED is not proof of life." if reconnect["handshakes_while_frozen"] == 0 else ""))
    return summary, findings
