"""``disconnect-keeps-socket``: DISCONNECTED closes a TCP connection, not the ZeroMQ socket.

zmq_socket_monitor(3) says of ZMQ_EVENT_DISCONNECTED that "the socket will be
closed". Observed (libzmq 4.3.5): the value is the file descriptor of one TCP
connection; the ZeroMQ socket stays usable, loops CONNECT_RETRIED /
CONNECT_DELAYED / CLOSED while nobody listens, and reconnects and delivers by
itself once a peer binds the endpoint again. This is also ``zlab demo``.
"""

from __future__ import annotations

from typing import Any

from ..lab import Lab
from ..traffic import deliver
from ._base import Range, scenario


@scenario(
    "disconnect-keeps-socket",
    "SUB dies and returns: the connecting PUB gets DISCONNECTED, loops, then reconnects and delivers on its own",
    reconnect_ivl=Range(100, 1, 60_000),  # 0 or -1: libzmq 4.3.5 never reconnects, there would be no loop to show
    cycles=Range(3, 1, 50),  # as `zlab demo --cycles`: each cycle is one reconnect interval of waiting
    timeout_s=5.0,
)
def disconnect_keeps_socket(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    timeout = s["timeout_s"]
    sub = lab.socket("SUB", "sub", bind="tcp", subscribe=b"")
    endpoint = lab.endpoint(sub)
    pub = lab.socket("PUB", "pub", connect=endpoint, reconnect_ivl=s["reconnect_ivl"])
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", timeout=timeout)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "sub", timeout=timeout)
    first, _ = deliver(pub, sub, b"before", timeout=timeout)

    lab.mark("FAULT", "close sub", socket="sub", endpoint=endpoint)
    sub.close()
    disconnected = lab.wait_for("DISCONNECTED", "pub", timeout=timeout)
    cycles = max(1, s["cycles"])
    lab.wait_for("CLOSED", "pub", since=disconnected.t, count=cycles, timeout=timeout + cycles * 0.5)

    sub2 = lab.socket("SUB", "sub2", subscribe=b"")
    lab.bind(sub2, endpoint)
    lab.mark("NOTE", "a new SUB binds the same endpoint", socket="sub2", endpoint=endpoint)
    again = lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", since=disconnected.t, timeout=timeout)
    second, _ = deliver(pub, sub2, b"after", timeout=timeout)

    retried = lab.events("pub", "CONNECT_RETRIED", since=disconnected.t)
    retried = [ev for ev in retried if ev.t <= again.t]
    closed = [ev for ev in lab.events("pub", "CLOSED", since=disconnected.t) if ev.t <= again.t]
    summary = {
        "disconnected_fd": disconnected.value,
        "retry_cycles": len(closed),
        "reconnected_after_ms": round((again.t - disconnected.t) * 1000, 1),
        "delivered_before": first.decode(),
        "delivered_after": second.decode(),
        "pub_closed": pub.closed,
    }
    findings = [
        f"DISCONNECTED carried fd {disconnected.value}: one TCP connection of the PUB ended, "
        f"not the ZeroMQ socket (pub.closed is {pub.closed}).",
        f"While nobody listened the PUB retried {len(retried)} times; each failed attempt "
        f"logged CLOSED with its own descriptor ({len(closed)} CLOSED).",
        f"A new SUB on the same endpoint: the same PUB socket reconnected "
        f"{summary['reconnected_after_ms']:.0f} ms after DISCONNECTED and delivered {second!r}.",
    ]
    return summary, findings
