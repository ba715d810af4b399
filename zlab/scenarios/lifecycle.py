"""``lifecycle``: the life of one connection, every event it produces and what its value means.

A DEALER connects to a bound ROUTER; the ROUTER closes while connected; a new
ROUTER binds the same endpoint; the DEALER reconnects by itself, then calls
``disconnect()``, reconnects, and finally both close. Each phase is marked in
the log, so the trace reads as a story. What the values mean comes from
zmq_socket_monitor(3) (libzmq 4.3.5) and what this run observed: an fd for
LISTENING / ACCEPTED / CONNECTED / DISCONNECTED / CLOSED, errno 115
(EINPROGRESS) for CONNECT_DELAYED (the manual: "unspecified"), a reconnect
interval in ms for CONNECT_RETRIED.
"""

from __future__ import annotations

import time
from typing import Any

import zmq

from ..events import value_kind
from ..lab import Lab
from ._base import Choice, scenario


def _between(lab: Lab, socket: str, start: float, end: float | None = None) -> list[str]:
    return [ev.event for ev in lab.events(socket, since=start) if not ev.is_marker and (end is None or ev.t < end)]


def _wait_nudging(lab: Lab, sock: zmq.Socket, event: str, socket: str, since: float, timeout: float):
    """Wait for ``event`` while letting ``sock``'s owner (this thread) process its commands.

    ``disconnect()`` completes only when the owning thread next uses the socket:
    libzmq's pipe-termination handshake runs on its commands.
    """
    deadline = time.monotonic() + timeout
    while True:
        sock.getsockopt(zmq.EVENTS)  # processes pending commands
        try:
            return lab.wait_for(event, socket, since=since, timeout=min(0.02, max(0.0, deadline - time.monotonic())))
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise


@scenario(
    "lifecycle",
    "one connection from bind to close: every event, in order, with what its value means",
    transport=Choice("tcp", "ipc"),
    timeout_s=5.0,
)
def lifecycle(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    timeout = s["timeout_s"]
    phases: dict[str, dict[str, list[str]]] = {}

    start = lab.mark("NOTE", "1. server binds, client connects, one message each way").t
    server = lab.socket("ROUTER", "server", bind=s["transport"])
    endpoint = lab.endpoint(server)
    client = lab.socket("DEALER", "client", connect=endpoint)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "client", timeout=timeout)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "server", timeout=timeout)
    client.send(b"ping")
    routing_id, _ = server.recv_multipart() if server.poll(int(timeout * 1000)) else (b"", b"")
    server.send_multipart([routing_id, b"pong"])
    if not client.poll(int(timeout * 1000)):
        raise TimeoutError(f"the client got no reply in {timeout:g} s")
    client.recv()
    phases["connect"] = {"server": _between(lab, "server", start), "client": _between(lab, "client", start)}

    fault = lab.mark("FAULT", "2. the server closes while connected", socket="server", endpoint=endpoint)
    server.close()
    lab.wait_for("MONITOR_STOPPED", "server", timeout=timeout)
    disconnected = lab.wait_for("DISCONNECTED", "client", since=fault.t, timeout=timeout)
    lab.wait_for("CLOSED", "client", since=disconnected.t, timeout=timeout)  # one failed attempt
    phases["server close"] = {"server": _between(lab, "server", fault.t),
                              "client": _between(lab, "client", fault.t)}

    back = lab.mark("NOTE", "3. a new server binds the same endpoint; the client reconnects by itself").t
    server2 = lab.socket("ROUTER", "server2")
    lab.bind(server2, endpoint)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "client", since=back, timeout=timeout)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "server2", timeout=timeout)
    phases["reconnect"] = {"server2": _between(lab, "server2", back), "client": _between(lab, "client", back)}

    cut = lab.mark("NOTE", "4. client.disconnect(endpoint)", socket="client", endpoint=endpoint).t
    client.disconnect(endpoint)
    _wait_nudging(lab, client, "DISCONNECTED", "server2", cut, timeout)
    lab.mark("NOTE", "client.connect(endpoint) again", socket="client", endpoint=endpoint)
    phases["disconnect()"] = {"server2": _between(lab, "server2", cut), "client": _between(lab, "client", cut)}
    again = lab.log.now()
    client.connect(endpoint)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "client", since=again, timeout=timeout)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "server2", since=again, timeout=timeout)
    client.send(b"again")
    if not server2.poll(int(timeout * 1000)):
        raise TimeoutError(f"the reconnected client's message did not arrive in {timeout:g} s")
    server2.recv_multipart()

    bye = lab.mark("NOTE", "5. the client closes while connected, then the server closes").t
    client.close()
    lab.wait_for("MONITOR_STOPPED", "client", since=bye, timeout=timeout)
    lab.wait_for("DISCONNECTED", "server2", since=bye, timeout=timeout)
    server2_close = lab.log.now()
    server2.close()
    lab.wait_for("MONITOR_STOPPED", "server2", since=bye, timeout=timeout)
    phases["close"] = {"client": _between(lab, "client", bye),
                       "server2": _between(lab, "server2", bye, server2_close),
                       "server2 close()": _between(lab, "server2", server2_close)}

    server_closed = lab.events("server", "CLOSED")
    seen: dict[str, dict[str, Any]] = {}
    for ev in lab.events():
        if ev.is_marker or ev.event in seen:
            continue
        seen[ev.event] = {"first_on": ev.socket, "value": ev.value, "means": ev.meaning, "kind": value_kind(ev.event)}
    connect_delayed = sorted({ev.value for ev in lab.events(event="CONNECT_DELAYED")})
    client_close = phases["close"]["client"]
    server_close = phases["server close"]["server"]
    summary = {
        "transport": s["transport"],
        "events_seen": sorted(seen),
        "values": seen,
        "phases": phases,
        "connect_delayed_values": connect_delayed,
        "client_close_emits": client_close,
        "server_close_emits": server_close,
        "disconnect_call_emits_on_client": [e for e in phases["disconnect()"]["client"]],
    }
    findings = [
        f"Connecting: {' -> '.join(phases['connect']['client'])} on the client; "
        f"{' -> '.join(phases['connect']['server'])} on the server (LISTENING, ACCEPTED and CONNECTED carry fds).",
        f"The server's close() emitted {', '.join(server_close)} on the server: CLOSED carries its listening fd "
        f"({server_closed[0].value if server_closed else '?'}); no event for the connection it also dropped.",
        f"The client saw DISCONNECTED (fd {disconnected.value}) and started retrying on its own: "
        f"{', '.join(phases['server close']['client'][1:5])}...",
        f"A new server on the same endpoint: the same client socket reconnected "
        f"({' -> '.join(phases['reconnect']['client'][-3:])}).",
        f"client.disconnect() emitted {phases['disconnect()']['client'] or 'nothing'} on the client; the server "
        f"saw {', '.join(phases['disconnect()']['server2'])}.",
        f"client.close() while connected emitted only {', '.join(client_close)} on the client; the server saw "
        f"{', '.join(phases['close']['server2'])}.",
    ]
    if connect_delayed:
        findings.append(f"CONNECT_DELAYED's value, 'unspecified' in the manual, was {connect_delayed} "
                        f"({seen['CONNECT_DELAYED']['means']}).")
    elif s["transport"] == "ipc":
        findings.append("Over ipc there is no CONNECT_DELAYED: the connect completes (or fails) at once.")
    return summary, findings
