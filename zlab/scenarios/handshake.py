"""``handshake-failure`` and ``bind-failed``: connections that never become ZeroMQ ones.

handshake-failure: (1) a security mechanism mismatch -- a PLAIN (or CURVE)
server, a NULL client: both report HANDSHAKE_FAILED_PROTOCOL with
ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, then DISCONNECTED; (2) a client
that does not speak ZMTP at all (an HTTP health check, a broken greeting)
talking to a bound ZeroMQ socket. The faults come from :mod:`zlab.faults`.

bind-failed: bind() on a port another socket holds (EADDRINUSE), and on an
address that is not this machine's (EADDRNOTAVAIL; nothing is sent anywhere):
bind() raises, and the monitor reports BIND_FAILED with the errno. The
address is ``foreign_address`` (default 192.0.2.1, a documentation address no
machine has); the port is the kernel's choice, never a fixed one. An address
that *is* on this machine (127.0.0.1, or one you pass) binds, and the finding
says so; a wildcard (0.0.0.0, ::) is refused: it always binds, on every
interface, and would show nothing.
"""

from __future__ import annotations

import errno
import ipaddress
import time
from typing import Any

import zmq

from .. import faults
from ..lab import Lab
from ._base import Choice, scenario
from ._measure import ms


@scenario(
    "handshake-failure",
    "connections that fail the ZMTP handshake: security mechanism mismatch, and a client that is not ZMTP",
    mechanism=Choice("PLAIN", "CURVE"),
    duration=1.0,
    timeout_s=2.0,
)
def handshake_failure(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    mm = faults.mechanism_mismatch(lab, s["mechanism"], timeout=s["timeout_s"], keep=True)
    fault_t = lab.events(mm.client, "FAULT")[-1].t
    watch_until = time.monotonic() + s["duration"]
    server = lab.socket("ROUTER", "server", bind="tcp")
    http = faults.send_garbage(lab, "server", faults.HTTP_REQUEST, timeout=s["timeout_s"])
    greeting = faults.send_garbage(lab, "server", faults.BAD_GREETING, timeout=s["timeout_s"])
    time.sleep(max(0.0, watch_until - time.monotonic()))  # watch the NULL client: does it retry?
    client_events = [ev.event for ev in lab.events(mm.client, since=fault_t) if not ev.is_marker]
    retries = client_events.count("CONNECT_RETRIED")
    server.close()

    def reaction(g: faults.Garbage) -> dict[str, Any]:
        r = g.reaction
        return {"event": r.event if r else None, "value": r.value if r else None,
                "meaning": r.meaning if r else None, "server_hung_up": g.closed_by_server,
                "reply_bytes": len(g.reply)}

    summary = {
        "mechanism": mm.mechanism,
        "server_event": mm.server_event.event if mm.server_event else None,
        "client_event": mm.client_event.event if mm.client_event else None,
        "protocol_error": mm.code,
        "protocol_error_name": mm.code_name,
        "client_events": client_events,
        "client_retries": retries,
        "http_request": reaction(http),
        "bad_greeting": reaction(greeting),
    }
    code = f", value 0x{mm.code:08x} = {mm.code_name or 'an unknown code'}" if mm.code is not None else ""
    findings = [
        f"{mm.mechanism} server vs NULL client: the server logged {summary['server_event'] or 'nothing'}, the client "
        f"{summary['client_event'] or 'nothing'}{code}"
        + ("; then DISCONNECTED." if "DISCONNECTED" in client_events else "; no DISCONNECTED on the client."),
        f"In the next {s['duration']:g} s the client logged {client_events} -- "
        + ("it does not retry after a protocol error: the endpoint is dead to it until you reconnect it."
           if retries == 0 else f"{retries} CONNECT_RETRIED: it keeps retrying."),
    ]
    for label, g in (("An HTTP request", http), ("A broken ZMTP greeting", greeting)):
        r = g.reaction
        findings.append(f"{label} sent to a bound ROUTER: it answered with {len(g.reply)} bytes of its own greeting; "
                        + (f"it logged {r.event} ({r.meaning})" if r else "it logged nothing")
                        + (" and hung up." if g.closed_by_server else " once the client gave up."))
    return summary, findings


def _foreign_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``foreign_address`` checked: one IP address, not a wildcard; ``ValueError`` says what is allowed."""
    allowed = ("an IP address, e.g. 192.0.2.1 (a documentation address no machine has: bind fails with "
               "EADDRNOTAVAIL) or 127.0.0.1 (this machine: bind succeeds on a random port)")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"foreign_address must be {allowed}; got {text!r}") from None
    if address.is_unspecified:
        raise ValueError(f"foreign_address must not be a wildcard ({text} binds every interface and always "
                         f"succeeds, so the scenario shows nothing); use {allowed}")
    if address.is_multicast:
        raise ValueError(f"foreign_address must be a unicast address; {text} is multicast; use {allowed}")
    return address


@scenario(
    "bind-failed",
    "bind() on a port in use (EADDRINUSE) and on an address not on this machine (EADDRNOTAVAIL): BIND_FAILED",
    foreign_address="192.0.2.1",
    timeout_s=1.0,
)
def bind_failed(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    address = _foreign_address(s["foreign_address"])
    holder = lab.socket("PUB", "holder", bind="tcp")
    conflict = faults.bind_conflict(lab, "holder", timeout=s["timeout_s"])
    elsewhere = lab.socket("PUB", "elsewhere", ipv6=address.version == 6)
    host = f"[{address}]" if address.version == 6 else str(address)
    endpoint = f"tcp://{host}:*"  # the kernel picks the port: never a fixed one
    mark = lab.mark("FAULT", f"bind {endpoint}: is this address on this machine?", socket="elsewhere",
                    endpoint=endpoint)
    bound: str | None = None
    try:
        elsewhere.bind(endpoint)
    except zmq.ZMQError as exc:
        raised: str | None = f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    else:
        raised = None
        bound = elsewhere.last_endpoint.decode()
        elsewhere.unbind(bound)
    try:
        foreign_ev = lab.wait_for("BIND_FAILED", "elsewhere", since=mark.t, timeout=s["timeout_s"])
    except TimeoutError:
        foreign_ev = None
    holder_after = [ev.event for ev in lab.events("holder", since=mark.t) if not ev.is_marker]
    summary = {
        "in_use": {"endpoint": conflict.endpoint, "error": str(conflict.error),
                   "event": conflict.event.event if conflict.event else None,
                   "value": conflict.event.value if conflict.event else None,
                   "meaning": conflict.event.meaning if conflict.event else None,
                   "events": [ev.event for ev in conflict.events if not ev.is_marker]},
        "foreign": {"endpoint": endpoint, "error": raised, "bound": bound,
                    "event": foreign_ev.event if foreign_ev else None,
                    "value": foreign_ev.value if foreign_ev else None,
                    "meaning": foreign_ev.meaning if foreign_ev else None,
                    "after_ms": ms(foreign_ev.t - mark.t) if foreign_ev else None},
        "holder_unaffected": "LISTENING" in [ev.event for ev in lab.events("holder")] and not holder_after
                             and not holder.closed,
    }
    iu, fo = summary["in_use"], summary["foreign"]
    findings = [
        f"Binding {iu['endpoint']} a second time: bind() raised ({iu['error']}) and the monitor logged "
        f"{' -> '.join(iu['events'])}" + (f"; BIND_FAILED's value {iu['value']} = {iu['meaning']}." if iu["event"]
                                          else "."),
        (f"Binding {endpoint}: bind() raised {fo['error']}; the monitor logged "
         + (f"BIND_FAILED {fo['value']} = {fo['meaning']}." if fo["event"] else "no BIND_FAILED.")
         if raised is not None else
         f"Binding {endpoint}: bind succeeded ({bound}, unbound at once): that address is on this machine, so "
         "there is no EADDRNOTAVAIL to see"
         + (f"; yet the monitor logged BIND_FAILED {fo['value']}." if fo["event"] else "; no BIND_FAILED.")),
        ("The socket already holding the port saw nothing: BIND_FAILED is reported only to the socket that tried."
         if summary["holder_unaffected"] else
         f"The socket holding the port logged {holder_after or 'nothing'} after the fault"
         + (" and is closed." if holder.closed else ".")),
    ]
    return summary, findings
