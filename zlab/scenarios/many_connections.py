"""``many-connections``: one ZeroMQ socket, several TCP connections, each with its own events.

One Lab SUB connects to three PUB peers (child processes). Its monitor reports
three CONNECTED events with three different descriptors: one ZeroMQ socket owns
three TCP connections. One PUB is killed (SIGKILL): the SUB reports
DISCONNECTED with *that* connection's fd and starts retrying *that* endpoint,
while the other two keep delivering to the same, still-open SUB. The value of
a monitor event is "the FD of the underlying network socket"
(zmq_socket_monitor(3)) -- one of several.
"""

from __future__ import annotations

import time
from typing import Any

import zmq

from ..lab import Lab
from ._base import Range, scenario
from ._measure import ms


def _source(frame: bytes) -> str:
    """The peer a message came from: its payload is ``NAME|SEQ`` (see Peer.publish)."""
    return frame.rsplit(b"|", 1)[0].decode("utf-8", "replace")


@scenario(
    "many-connections",
    "one SUB, three PUB peers: three TCP connections, three fds; kill one, the other two keep delivering",
    publishers=Range(3, 2, 8),
    interval_ms=Range(20, 1, 1000),
    duration=1.5,
    timeout_s=5.0,
)
def many_connections(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    timeout = s["timeout_s"]
    names = [f"pub_{chr(ord('a') + i)}" for i in range(s["publishers"])]
    peers = {name: lab.peer("PUB", name, bind="tcp") for name in names}
    sub = lab.socket("SUB", "sub", subscribe=b"")
    for peer in peers.values():
        lab.connect(sub, peer.endpoint)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "sub", count=len(peers), timeout=timeout)
    fds = {ev.endpoint: ev.value for ev in lab.events("sub", "CONNECTED")}
    count = int((s["duration"] + timeout + 1.0) * 1000 / s["interval_ms"])
    for name, peer in peers.items():
        peer.publish(count, interval_ms=s["interval_ms"], payload=name.encode())

    received: dict[str, list[float]] = {name: [] for name in names}

    def receive_until(deadline: float, stop_when_all: bool = False) -> None:
        while (left := deadline - time.monotonic()) > 0:
            if not sub.poll(int(min(left, 0.05) * 1000) + 1):
                continue
            while True:
                try:
                    frame = sub.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                src = _source(frame)
                if src in received:
                    received[src].append(lab.now())
            if stop_when_all and all(received.values()):
                return

    receive_until(time.monotonic() + timeout, stop_when_all=True)  # slow joiner: until each one got through
    missing = [name for name, got in received.items() if not got]
    if missing:
        raise TimeoutError(f"no message from {', '.join(missing)} within {timeout:g} s")
    before_t = lab.now()
    receive_until(time.monotonic() + 0.3)

    victim = names[1]
    peers[victim].kill()  # marks FAULT kill pub_b
    fault = lab.events(victim, "FAULT")[-1]
    disconnected = lab.wait_for("DISCONNECTED", "sub", since=fault.t, timeout=timeout)
    receive_until(time.monotonic() + s["duration"])
    end = lab.now()

    per_peer = {}
    for name in names:
        times = received[name]
        per_peer[name] = {
            "endpoint": peers[name].endpoint,
            "fd": fds.get(peers[name].endpoint),
            "before_kill": sum(1 for t in times if before_t <= t < fault.t),
            "after_kill": sum(1 for t in times if disconnected.t < t <= end),
        }
    survivors = [n for n in names if n != victim]
    retried_eps = sorted({ev.endpoint for ev in lab.events("sub", "CONNECT_RETRIED", since=fault.t)})
    summary = {
        "connections": len(fds),
        "fds": sorted(fds.values()),
        "distinct_fds": len(set(fds.values())),
        "killed": victim,
        "disconnected_fd": disconnected.value,
        "disconnected_endpoint": disconnected.endpoint,
        "disconnected_after_kill_ms": ms(disconnected.t - fault.t),
        "retrying_endpoints": retried_eps,
        "per_peer": per_peer,
        "survivors_delivering": all(per_peer[n]["after_kill"] > 0 for n in survivors),
        "sub_closed": sub.closed,
    }
    findings = [
        f"One SUB socket, {len(fds)} CONNECTED events with {summary['distinct_fds']} different fds {summary['fds']}: "
        f"one ZeroMQ socket, {len(fds)} TCP connections.",
        f"{victim} was killed: the SUB logged DISCONNECTED {summary['disconnected_after_kill_ms']:.1f} ms later with "
        f"fd {disconnected.value} -- {victim}'s connection (fd {per_peer[victim]['fd']}), endpoint "
        f"{disconnected.endpoint}.",
        ("Only that endpoint is retried" if retried_eps == [disconnected.endpoint] else "Endpoints retried")
        + f" ({', '.join(retried_eps) or 'none'}); the SUB stays open (sub.closed is {sub.closed}).",
        "In the next {:g} s {}: {}.".format(
            s["duration"],
            "the others kept delivering to the same socket" if all(per_peer[n]["after_kill"] for n in survivors)
            else "not every other peer delivered",
            ", ".join(f"{n} {per_peer[n]['after_kill']} messages" for n in survivors)),
    ]
    return summary, findings
