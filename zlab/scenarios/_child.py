"""Child programs for the scenarios whose lesson is a hang: ``monitor-freeze`` and ``context-freeze``.

Run as a script (``python _child.py PROGRAM JSON-ARGS``), never imported by
zlab: it imports only pyzmq and the standard library, so it starts fast and a
frozen context can only ever freeze this process. It reports one JSON object
per line on stdout and takes commands (``go``) one per line on stdin. It dies
with its parent (``PR_SET_PDEATHSIG``) and the parent kills it after a timeout
anyway (see :mod:`zlab.scenarios._proc`). Times are ``time.monotonic()``
seconds, the clock the parent's EventLog uses.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import struct
import sys
import socket
import time

import zmq

_EVENT_NAMES = {
    0x0001: "CONNECTED", 0x0002: "CONNECT_DELAYED", 0x0004: "CONNECT_RETRIED", 0x0008: "LISTENING",
    0x0010: "BIND_FAILED", 0x0020: "ACCEPTED", 0x0040: "ACCEPT_FAILED", 0x0080: "CLOSED",
    0x0100: "CLOSE_FAILED", 0x0200: "DISCONNECTED", 0x0400: "MONITOR_STOPPED",
    0x0800: "HANDSHAKE_FAILED_NO_DETAIL", 0x1000: "HANDSHAKE_SUCCEEDED",
    0x2000: "HANDSHAKE_FAILED_PROTOCOL", 0x4000: "HANDSHAKE_FAILED_AUTH",
}


def refused_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 nobody listens on (this script imports no zlab: see zlab.faults.refused_ports)."""
    held = [socket.socket() for _ in range(count)]
    for s in held:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL us when the parent goes (Linux), then close the race:
    if the parent died before prctl() took effect, our parent is no longer ``parent``."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's timeout still applies
        pass
    if os.getppid() != parent:
        os._exit(3)


def say(**record) -> None:
    """One JSON line to the parent, stamped with the monotonic clock."""
    record.setdefault("t", time.monotonic())
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def wait_command(expected: str) -> None:
    """Block until the parent writes ``expected``; exit if the parent closes the pipe."""
    while True:
        line = sys.stdin.readline()
        if not line:
            os._exit(4)
        if line.strip() == expected:
            return


def monitor_freeze(args: dict) -> None:
    """A PUB the parent listens to, then a noisy socket whose monitor is read by nobody.

    ``reader``: ``unread`` (pyzmq's ``get_monitor_socket()``: default RCVHWM,
    never read), ``none`` (``monitor()`` with no reader connected) or
    ``rcvhwm0`` (a reader with RCVHWM 0, never read: the queue cannot fill).
    The noise is a reconnect storm (reconnect_ivl 1 ms) to ``storm_endpoints``
    refused ports: about three monitor events per attempt.
    """
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind("tcp://127.0.0.1:*")
    say(endpoint=pub.getsockopt(zmq.LAST_ENDPOINT).decode())
    wait_command("go")
    interval = args["interval_ms"] / 1000.0
    seq = 0
    stop_at = time.monotonic() + args["baseline_s"] + args["duration"]
    storm_at = time.monotonic() + args["baseline_s"]
    noisy = reader = None
    next_report = time.monotonic() + 0.1
    while time.monotonic() < stop_at and seq < args["max_messages"]:
        now = time.monotonic()
        if noisy is None and now >= storm_at:
            noisy = ctx.socket(zmq.DEALER)
            noisy.setsockopt(zmq.LINGER, 0)
            noisy.setsockopt(zmq.RECONNECT_IVL, 1)
            mode = args["reader"]
            if mode == "unread":
                reader = noisy.get_monitor_socket()  # what most code does; then nobody reads it
            elif mode == "rcvhwm0":
                reader = ctx.socket(zmq.PAIR)
                reader.setsockopt(zmq.RCVHWM, 0)
                reader.setsockopt(zmq.LINGER, 0)
                reader.connect("inproc://zlab-child-monitor")
                noisy.monitor("inproc://zlab-child-monitor", zmq.EVENT_ALL)
            else:
                noisy.monitor("inproc://zlab-child-monitor", zmq.EVENT_ALL)
            say(fault=f"monitor {mode}: reconnect storm to {args['storm_endpoints']} refused ports", sent=seq)
            for port in refused_ports(args["storm_endpoints"]):
                noisy.connect(f"tcp://127.0.0.1:{port}")
        try:
            pub.send(struct.pack("!Q", seq), zmq.NOBLOCK)  # PUB never blocks: drops at the HWM
        except zmq.Again:
            pass
        seq += 1
        if now >= next_report:
            say(sent=seq)
            next_report = now + 0.1
        time.sleep(interval)
    say(sent=seq, term="start")
    for sock in (noisy, reader, pub):
        if sock is not None:
            sock.close(linger=0)
    started = time.monotonic()
    ctx.term()  # hangs if the I/O thread is stuck sending a monitor event
    say(term="done", term_ms=round((time.monotonic() - started) * 1000, 1))
    os._exit(0)


def context_term(args: dict) -> None:
    """A PUSH with ``linger`` (None = libzmq's default) queues messages for a dead peer, then terms.

    Its own monitor events (drained with a RCVHWM-0 reader) are reported as
    ``event`` lines so the parent can show them. Waits for DISCONNECTED before
    sending, so the messages are queued, not written to a dying connection.
    """
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    if args["linger"] is not None:
        push.setsockopt(zmq.LINGER, args["linger"])
    reader = ctx.socket(zmq.PAIR)
    reader.setsockopt(zmq.RCVHWM, 0)
    reader.setsockopt(zmq.LINGER, 0)
    address = f"inproc://zlab-child-{os.getpid()}"
    reader.connect(address)
    push.monitor(address, zmq.EVENT_ALL)

    def drain(until_event: str | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not reader.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                break
            head, endpoint = reader.recv_multipart()
            number, value = struct.unpack("=Hi", head[:6])
            name = _EVENT_NAMES.get(number, f"0x{number:x}")
            say(event=name, value=value, endpoint=endpoint.decode("utf-8", "replace"))
            if name == until_event:
                return True
        return until_event is None

    push.connect(args["endpoint"])
    drain("HANDSHAKE_SUCCEEDED", 5.0)
    say(ready=True, linger=push.getsockopt(zmq.LINGER))
    wait_command("go")
    if not drain("DISCONNECTED", 5.0):
        say(error="no DISCONNECTED within 5 s")
    sent = again = 0
    for i in range(args["messages"]):
        try:
            push.send(b"queued-%d" % i, zmq.NOBLOCK)
            sent += 1
        except zmq.Again:
            again += 1
    drain(None, 0.05)
    push.disable_monitor()
    drain("MONITOR_STOPPED", 1.0)
    reader.close(linger=0)
    push.close()  # returns at once; the linger applies in term()
    say(sent=sent, again=again, term="start")
    started = time.monotonic()
    ctx.term()
    say(term="done", term_ms=round((time.monotonic() - started) * 1000, 1))
    os._exit(0)


PROGRAMS = {"monitor-freeze": monitor_freeze, "context-term": context_term}

if __name__ == "__main__":
    arguments = json.loads(sys.argv[2])
    _die_with_parent(int(arguments.get("parent", os.getppid())))
    PROGRAMS[sys.argv[1]](arguments)
