"""The child side of a zlab peer: ``python -m zlab._peer_child --parent PID --name NAME``.

Started by :class:`zlab.peer.Peer` (never by hand), it reads one JSON
configuration line on stdin, makes one socket monitored from birth, streams its
monitor events to stdout as JSON lines stamped with ``time.monotonic()``, and
answers ``publish`` / ``stats`` / ``close`` commands. It dies with its parent
(PR_SET_PDEATHSIG, a ``getppid()`` watchdog, end-of-file on stdin). Kept apart
from :mod:`zlab.peer` so that ``python -m`` never re-runs a module that
``import zlab`` already loaded.
"""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import sys
import threading
import time
import traceback
from typing import Any

import zmq

from .options import socket_type

#: Socket kinds whose peer reads and counts what arrives.
RECEIVE_KINDS = ("SUB", "XSUB", "PULL", "DEALER", "ROUTER", "REP", "REQ", "PAIR", "XPUB", "STREAM")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCHDOG_S = 0.1  # how often a child checks that its parent is still there


# ---------------------------------------------------------------------------------------------
# JSON helpers shared by both sides
def _enc(value: Any) -> Any:
    """bytes -> {"hex": ...} so an option value survives JSON."""
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    return value


def _dec(value: Any) -> Any:
    if isinstance(value, dict) and "hex" in value:
        return bytes.fromhex(value["hex"])
    return value


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def _seq_of(frame: bytes) -> int | None:
    """The sequence number a publishing peer appends (``payload|123``), or None."""
    idx = frame.rfind(b"|")
    if idx < 0:
        return None
    tail = frame[idx + 1:]
    return int(tail) if tail.isdigit() and len(tail) < 19 else None


# ---------------------------------------------------------------------------------------------
# The child: python -m zlab._peer_child --parent PID --name NAME, configuration on stdin
def _set_pdeathsig() -> None:
    """Ask the kernel to SIGKILL us when the parent's spawning thread exits (Linux only)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the getppid() watchdog and stdin EOF remain
        pass


def _watchdog(parent: int) -> None:
    while True:
        time.sleep(_WATCHDOG_S)
        if os.getppid() != parent:
            os._exit(3)


class _Out:
    """Writes whole JSON lines to fd 1; a parent gone (EPIPE) ends the child."""

    def __init__(self, fd: int = 1):
        self.fd = fd

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            os._exit(4)

    def obj(self, obj: dict[str, Any]) -> None:
        self.send(_line(obj))


class _Lines:
    """Complete lines from a non-blocking fd."""

    def __init__(self, fd: int = 0):
        self.fd = fd
        self.buf = b""
        self.eof = False
        os.set_blocking(fd, False)

    def read(self) -> list[bytes]:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        return [line for line in lines if line.strip()]


class _Child:
    """The peer's socket, its monitor, and the loop that serves both and the parent's commands."""

    def __init__(self, cfg: dict[str, Any], out: _Out, stdin: _Lines):
        self.cfg = cfg
        self.out = out
        self.stdin = stdin
        self.kind = cfg["kind"]
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(socket_type(self.kind))
        for name, value in cfg["options"]:
            self.sock.setsockopt(getattr(zmq, name.upper()), _dec(value))
        address = f"inproc://zlab-peer-monitor-{os.getpid()}"
        self.reader = self.ctx.socket(zmq.PAIR)
        self.reader.setsockopt(zmq.RCVHWM, 0)  # the monitor queue never fills (HAZARDS.md)
        self.reader.setsockopt(zmq.LINGER, 0)
        self.reader.connect(address)
        self.sock.monitor(address, zmq.EVENT_ALL)
        self.received = self.sent = self.dropped = self.lost = 0
        self.last_seq: int | None = None
        self.seq = 0
        self.jobs: collections.deque[dict[str, Any]] = collections.deque()
        self.running = True

    def setup(self) -> str:
        cfg = self.cfg
        if cfg.get("bind"):
            deadline = time.monotonic() + float(cfg.get("bind_retry_s") or 0)
            while True:
                try:
                    self.sock.bind(cfg["bind"])
                    break
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.EADDRINUSE and time.monotonic() < deadline:
                        time.sleep(0.02)
                        self.forward_events()
                        continue
                    raise _SetupError(f"cannot bind {cfg['bind']}: {exc.strerror}") from None
            return self.sock.last_endpoint.decode()
        try:
            self.sock.connect(cfg["connect"])
        except zmq.ZMQError as exc:
            raise _SetupError(f"cannot connect to {cfg['connect']}: {exc.strerror}") from None
        return cfg["connect"]

    # -- events and messages -------------------------------------------------------------------
    def forward_events(self) -> bool:
        """Send every monitor event waiting to the parent; True if MONITOR_STOPPED was among them."""
        lines = []
        stopped = False
        recv, now = self.reader.recv_multipart, time.monotonic
        for _ in range(4096):
            try:
                head, endpoint = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            except ValueError:
                continue
            number, value = int.from_bytes(head[:2], sys.byteorder), int.from_bytes(head[2:6], sys.byteorder, signed=True)
            lines.append(_line({"e": [now(), number, value, endpoint.decode("utf-8", "replace")]}))
            if number == zmq.EVENT_MONITOR_STOPPED:
                stopped = True
                break
        if lines:
            self.out.send(b"".join(lines))
        return stopped

    def receive(self) -> None:
        sock = self.sock
        for _ in range(1000):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.received += 1
            seq = _seq_of(frames[-1]) if frames else None
            if seq is not None:
                if self.last_seq is not None and seq > self.last_seq + 1:
                    self.lost += seq - self.last_seq - 1
                self.last_seq = seq
            if self.kind == "REP" or (self.kind == "ROUTER" and self.cfg.get("echo", True)):
                try:
                    sock.send_multipart(frames, zmq.NOBLOCK)
                    self.sent += 1
                except zmq.Again:
                    self.dropped += 1

    def publish_due(self) -> float | None:
        """Send what is due; return seconds until the next message (None: nothing queued)."""
        sent_now = 0
        while self.jobs:
            job = self.jobs[0]
            now = time.monotonic()
            if job["next"] > now:
                return job["next"] - now
            if sent_now >= 1000:
                return 0.0  # let the loop breathe: commands and events first
            self.seq += 1
            try:
                self.sock.send(job["payload"] + b"|" + str(self.seq).encode(), zmq.NOBLOCK)
                self.sent += 1
            except zmq.Again:
                self.dropped += 1
            sent_now += 1
            job["left"] -= 1
            job["next"] += job["interval"]
            if job["left"] <= 0:
                self.jobs.popleft()
                if self.jobs:
                    self.jobs[0]["next"] = time.monotonic()
        return None

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "pid": os.getpid(),
            "received": self.received,
            "sent": self.sent,
            "dropped": self.dropped,
            "last_seq": self.last_seq,
            "lost": self.lost,
            "publishing": sum(job["left"] for job in self.jobs),
        }

    def command(self, msg: dict[str, Any]) -> None:
        cmd, rid = msg.get("cmd"), msg.get("id")
        if cmd == "close":
            self.running = False
            return
        if cmd == "stats":
            self.out.obj({"r": rid, "ok": True, "v": self.stats()})
        elif cmd == "publish":
            count = int(msg["count"])
            self.jobs.append({"left": count, "interval": float(msg["interval_ms"]) / 1000,
                              "payload": bytes.fromhex(msg["payload"]), "next": time.monotonic()})
            self.out.obj({"r": rid, "ok": True, "v": {"queued": count}})
        else:
            self.out.obj({"r": rid, "ok": False, "error": f"unknown command {cmd!r}"})

    # -- the loop ------------------------------------------------------------------------------
    def loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.reader, zmq.POLLIN)
        if self.kind in RECEIVE_KINDS:
            poller.register(self.sock, zmq.POLLIN)
        poller.register(self.stdin.fd, zmq.POLLIN)
        while self.running:
            wait = self.publish_due()
            timeout = 200 if wait is None else max(0, min(200, int(wait * 1000)))
            ready = dict(poller.poll(timeout))
            if self.reader in ready:
                self.forward_events()
            if self.sock in ready:
                self.receive()
            if self.stdin.fd in ready:
                for raw in self.stdin.read():
                    try:
                        self.command(json.loads(raw))
                    except (ValueError, KeyError, TypeError) as exc:
                        self.out.obj({"r": None, "ok": False, "error": f"bad command: {exc}"})
                if self.stdin.eof:  # the parent closed our stdin or is gone
                    self.running = False

    def shutdown(self) -> None:
        """Close the socket, forward events up to MONITOR_STOPPED (0.5 s at most), then the reader."""
        self.sock.close()  # LINGER as configured (0 unless the lesson set it)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            if self.reader.poll(50) and self.forward_events():
                break
        self.reader.close(linger=0)
        self.ctx.term()
        self.out.obj({"bye": self.stats()})


class _SetupError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    """The child: ``python -m zlab._peer_child --parent PID --name NAME``; one JSON configuration line on stdin."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m zlab._peer_child", description="a zlab peer (started by Lab.peer)")
    parser.add_argument("--parent", type=int, required=True, help="pid of the process that started us")
    parser.add_argument("--name", default="peer")
    args = parser.parse_args(argv)
    _set_pdeathsig()
    if os.getppid() != args.parent:  # the parent died before prctl: nobody to serve
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent; it closes us
    threading.Thread(target=_watchdog, args=(args.parent,), name="zlab-peer-watchdog", daemon=True).start()
    out = _Out(1)
    stdin = _Lines(0)
    deadline = time.monotonic() + 10.0
    lines: list[bytes] = []
    while not lines and not stdin.eof and time.monotonic() < deadline:
        select.select([0], [], [], 0.1)
        lines = stdin.read()
    if not lines:
        out.obj({"error": "no configuration arrived on stdin"})
        os._exit(2)
    child = None
    try:
        cfg = json.loads(lines[0])
        child = _Child(cfg, out, stdin)
        endpoint = child.setup()
        child.forward_events()
        out.obj({"ready": {"endpoint": endpoint, "pid": os.getpid()}})
        for raw in lines[1:]:
            child.command(json.loads(raw))
        child.loop()
        child.shutdown()
    except _SetupError as exc:
        if child is not None:
            child.forward_events()
        out.obj({"error": str(exc)})
        os._exit(2)
    except Exception:
        out.obj({"error": traceback.format_exc(limit=5).strip().replace("\n", " | ")})
        os._exit(1)
    os._exit(0)  # skip interpreter teardown: everything is closed and reported


if __name__ == "__main__":
    main()
