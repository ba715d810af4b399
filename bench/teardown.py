"""Time to close a busy Lab: 10 sockets, 3 child-process peers and a fault proxy.

Each run builds the same rig, waits until every connection is up (handshakes
in the log), queues some messages, then times ``lab.close()`` alone. The rig:

* peer ``sub-peer`` (SUB, binds) <- ``pub-direct`` (PUB here, connects);
* peer ``pub-peer`` (PUB, connects) -> ``sub-here`` (SUB here, binds);
* peer ``pull-peer`` (PULL, binds) <- proxy ``proxy0`` <- ``push-proxied`` (PUSH here);
* ``dealer-retrying`` (DEALER) connecting to a refused port, reconnect_ivl 10 ms:
  a socket in the retry loop while the Lab closes;
* three PUB/SUB pairs in this process (``pub-a`` / ``sub-a``...), each with
  messages queued (LINGER 0, the Lab's default).

That is 10 sockets here, 3 children and a proxy relay thread. After each close
the script checks that the children were reaped and the Lab's threads ended.

    python bench/teardown.py [RUNS]        (default 10)
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import threading
import time

import zlab


def refused_port() -> int:
    """A loopback port nobody listens on (bound, then released: connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children() -> set[int]:
    """Process ids (zombies too) whose parent is this process."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found.add(int(entry))
    return found


def build(lab: zlab.Lab) -> dict[str, int]:
    """The rig described in the module doc; returns counts of what it made."""
    sub_peer = lab.peer("SUB", "sub-peer", bind="tcp")
    pub_direct = lab.socket("PUB", "pub-direct", connect=sub_peer.endpoint)
    sub_here = lab.socket("SUB", "sub-here", bind="tcp", subscribe=b"")
    lab.peer("PUB", "pub-peer", connect=lab.endpoint(sub_here))
    pull_peer = lab.peer("PULL", "pull-peer", bind="tcp")
    proxy = lab.proxy(pull_peer, name="proxy0")
    push = lab.socket("PUSH", "push-proxied", connect=proxy.endpoint)
    lab.socket("DEALER", "dealer-retrying", connect=f"tcp://127.0.0.1:{refused_port()}", reconnect_ivl=10)
    pairs = []
    for tag in "abc":
        sub = lab.socket("SUB", f"sub-{tag}", bind="tcp", subscribe=b"")
        pub = lab.socket("PUB", f"pub-{tag}", connect=lab.endpoint(sub))
        pairs.append(pub)
    for name in ("pub-direct", "pub-peer", "push-proxied", "pub-a", "pub-b", "pub-c"):
        lab.wait_for("HANDSHAKE_SUCCEEDED", name, timeout=15)
    lab.wait_for("CONNECT_RETRIED", "dealer-retrying", timeout=5)
    for sock in [pub_direct, push, *pairs]:
        for i in range(100):
            sock.send(b"queued %d" % i)
    return {"sockets": len(lab.sockets), "peers": 3, "proxies": 1}


def main(runs: int = 10) -> dict[str, float]:
    base_threads = {t.ident for t in threading.enumerate()}
    closes: list[float] = []
    builds: list[float] = []
    made: dict[str, int] = {}
    leftovers = 0
    for _ in range(runs):
        start = time.perf_counter()
        lab = zlab.Lab()
        try:
            made = build(lab)
        except BaseException:
            lab.close()
            raise
        built = time.perf_counter()
        lab.close()
        closed = time.perf_counter()
        builds.append(built - start)
        closes.append(closed - built)
        deadline = time.monotonic() + 2.0  # a reader thread may still be returning
        while time.monotonic() < deadline and (children() or
                                               {t.ident for t in threading.enumerate()} - base_threads):
            time.sleep(0.01)
        extra = children() | ({t.ident for t in threading.enumerate()} - base_threads)
        leftovers += len(extra)
    ms = [c * 1000 for c in closes]
    print(f"rig: {made.get('sockets')} sockets, {made.get('peers')} child peers, {made.get('proxies')} proxy; "
          f"{runs} runs (build median {statistics.median(builds) * 1000:.0f} ms)")
    print(f"{'lab.close()':<14}{'ms':>8}")
    print(f"{'min':<14}{min(ms):>8.1f}")
    print(f"{'median':<14}{statistics.median(ms):>8.1f}")
    print(f"{'max':<14}{max(ms):>8.1f}")
    print(f"left behind after close (children + threads, all runs): {leftovers}")
    ok = max(ms) < 1000 and leftovers == 0
    print(f"SUMMARY Lab close with {made.get('sockets')} sockets, 3 peers, a proxy: median "
          f"{statistics.median(ms):.0f} ms, max {max(ms):.0f} ms (target < 1000 ms), "
          f"{leftovers} left behind: {'OK' if ok else 'BELOW TARGET'}")
    return {"median_ms": statistics.median(ms), "max_ms": max(ms), "leftovers": leftovers}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
