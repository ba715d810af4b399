"""Drain ceiling of zlab's collector vs a bare pyzmq loop, on the same storm, in one run.

Two sockets flap (bind + unbind on 127.0.0.1) in lock-step, so each monitor
gets the same N events. Nothing is read while the storm is produced: the
events wait in the readers' queues (RCVHWM 0). Then one queue is drained by a
bare ``recv_multipart`` loop and the other by zlab's Collector into an
EventLog. Both figures are drain rates (events / time to the last event
drained), not the producer's rate. Loss is counted after both sockets close,
because libzmq can hold the CLOSED of the last unbinds until then.

    python bench/collector.py [EVENTS]        (default 100000 per socket)
"""

from __future__ import annotations

import sys
import time

import zmq

from zlab.capture import Collector
from zlab.eventlog import EventLog


def storm(sockets: list[zmq.Socket], cycles: int) -> None:
    for _ in range(cycles):
        for sock in sockets:
            sock.bind("tcp://127.0.0.1:*")
            sock.unbind(sock.last_endpoint)
    for _ in range(5):  # an unbind completes when the owning thread next uses the socket
        for sock in sockets:
            sock.getsockopt(zmq.EVENTS)
        time.sleep(0.02)


def drain_bare(reader: zmq.Socket) -> tuple[int, float]:
    got, start, last = 0, time.perf_counter(), time.perf_counter()
    while reader.poll(300):
        reader.recv_multipart()
        got += 1
        last = time.perf_counter()
    return got, last - start


def drain_zlab(collector: Collector, log: EventLog) -> tuple[int, float]:
    start = time.perf_counter()
    collector.start()
    seen, last = 0, start
    while True:
        time.sleep(0.001)
        if log.total != seen:
            seen, last = log.total, time.perf_counter()
        elif time.perf_counter() - last > 0.3:
            return seen, last - start


def main(events: int = 100_000) -> dict[str, float]:
    cycles = events // 2  # LISTENING + CLOSED per cycle
    expected = cycles * 2 + 1  # ... + MONITOR_STOPPED when the socket closes
    ctx = zmq.Context()
    bare_sock, zlab_sock = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    bare_reader = ctx.socket(zmq.PAIR)
    bare_reader.rcvhwm = 0
    bare_sock.monitor("inproc://bench-bare", zmq.EVENT_ALL)
    bare_reader.connect("inproc://bench-bare")

    log = EventLog(cap=events * 2)
    collector = Collector(log, start=False)
    collector.attach(zlab_sock, "zlab")

    t0 = time.perf_counter()
    storm([bare_sock, zlab_sock], cycles)
    produce_s = time.perf_counter() - t0

    bare_n, bare_s = drain_bare(bare_reader)
    zlab_n, zlab_s = drain_zlab(collector, log)

    # Close the watched sockets: held-back events and MONITOR_STOPPED arrive; count loss.
    bare_sock.close(linger=0)
    zlab_sock.close(linger=0)
    bare_total = bare_n + drain_bare(bare_reader)[0]
    log.wait_for("MONITOR_STOPPED", timeout=5)
    collector.close()
    bare_reader.close(linger=0)
    ctx.term()

    bare_rate, zlab_rate = bare_n / bare_s, zlab_n / zlab_s
    lost = expected - log.total
    print(f"{'drainer':<28}{'events':>10}{'seconds':>10}{'events/s':>12}")
    print(f"{'bare recv_multipart loop':<28}{bare_n:>10}{bare_s:>10.3f}{bare_rate:>12,.0f}")
    print(f"{'zlab Collector -> EventLog':<28}{zlab_n:>10}{zlab_s:>10.3f}{zlab_rate:>12,.0f}")
    print(f"storm produced at {2 * cycles * 2 / produce_s:,.0f} events/s into both queues; "
          f"after close: bare {bare_total}, zlab {log.total} of {expected} expected")
    ratio = zlab_rate / bare_rate
    verdict = "OK" if ratio >= 0.9 and lost == 0 else "BELOW TARGET"
    print(f"SUMMARY collector/bare = {ratio:.2f} (target >= 0.90), lost {lost} of {expected}: {verdict}")
    return {"ratio": ratio, "lost": lost, "bare": bare_rate, "zlab": zlab_rate}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
