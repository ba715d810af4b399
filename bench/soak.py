"""Soak: a retry storm with reconnect_ivl = 1 ms for 55 s; memory, capture lag, loss, close.

Four DEALER sockets each connect to five refused loopback ports with
RECONNECT_IVL 1 ms: every attempt logs CONNECT_DELAYED, CLOSED and
CONNECT_RETRIED, about 50k monitor events per second on this machine, the
worst ordinary load a monitor sees. Each second the script samples:

* ``events``: the EventLog's running total, and the captured rate;
* ``RSS``: resident memory (the log holds its default cap, 200k events,
  discarding the oldest; memory must stop growing once the cap is reached);
* ``lag``: capture latency -- a watched ``probe`` socket binds a fresh port and
  the time until its LISTENING is in the log is measured. The collector
  drains every reader in turn, so if it fell behind the storm this would grow;
* ``backlog``: events queued for subscribers (a counting subscription, as a
  dashboard has) not yet delivered.

At the end the storm sockets are closed and the counting subscription checks
the books: per socket, every attempt logs exactly one CONNECT_DELAYED, one
CLOSED and one CONNECT_RETRIED, so the three counts may differ by at most one
in-flight attempt per endpoint; anything more is a lost event. Then
``lab.close()`` is timed and the collector, dispatcher and fds checked gone.

    python bench/soak.py [SECONDS]        (default 55, so the whole script stays under the
                                          60 s every bench script is held to; pass 60 for a full minute)
"""

from __future__ import annotations

import collections
import os
import resource
import statistics
import sys
import threading
import time

import zmq

import zlab
from zlab.eventlog import DEFAULT_CAP
from zlab.faults import refused_ports

SOCKETS, ENDPOINTS = 4, 5


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def probe_lag(lab: zlab.Lab, probe: zmq.Socket) -> float:
    """Seconds from a bind() to its LISTENING being in the log (the collector's lag)."""
    since = lab.now()
    probe.bind("tcp://127.0.0.1:*")
    ev = lab.wait_for("LISTENING", "probe", since=since, timeout=10)
    probe.unbind(probe.last_endpoint)
    return ev.t - since


def main(seconds: float = 55.0) -> dict[str, float]:
    base_threads = {t.ident for t in threading.enumerate()}
    base_fds = len(os.listdir("/proc/self/fd"))
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def count(batch) -> None:  # the log's dispatcher thread
        for ev in batch:
            counts[ev.socket][ev.event] += 1

    lab = zlab.Lab()
    lab.log.subscribe(count, batch=True)
    probe = lab.socket("DEALER", "probe")
    storm = []
    ports = refused_ports(SOCKETS * ENDPOINTS)
    for i in range(SOCKETS):
        sock = lab.socket("DEALER", f"storm{i}", reconnect_ivl=1)
        for port in ports[i * ENDPOINTS:(i + 1) * ENDPOINTS]:
            lab.connect(sock, f"tcp://127.0.0.1:{port}")
        storm.append(sock)

    rows = []
    rss_start = rss_mb()
    cpu0, wall0 = time.process_time(), time.monotonic()
    last_total, last_t = lab.log.total, time.monotonic()
    end = wall0 + seconds
    while time.monotonic() < end:
        time.sleep(max(0.0, min(1.0, end - time.monotonic())))
        lag = probe_lag(lab, probe)
        now, total = time.monotonic(), lab.log.total
        rows.append({
            "t": now - wall0, "total": total, "rate": (total - last_total) / (now - last_t), "rss": rss_mb(),
            "lag_ms": lag * 1000, "backlog": len(lab.log._backlog), "capped": lab.log.discarded > 0,
        })
        last_total, last_t = total, now
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0

    for sock in storm:  # stop the storm: every pending event then MONITOR_STOPPED arrives
        sock.close()
    for i in range(SOCKETS):
        lab.wait_for("MONITOR_STOPPED", f"storm{i}", timeout=10)
    deadline = time.monotonic() + 10  # let the dispatcher deliver the last batches
    while time.monotonic() < deadline and any(counts[f"storm{i}"]["MONITOR_STOPPED"] == 0 for i in range(SOCKETS)):
        time.sleep(0.01)
    imbalance, books_ok = 0, True
    for i in range(SOCKETS):
        c = counts[f"storm{i}"]
        delayed, closed, retried = c["CONNECT_DELAYED"], c["CLOSED"], c["CONNECT_RETRIED"]
        # An attempt logs DELAYED, CLOSED, RETRIED in that order; closing the socket can cut
        # at most one attempt per endpoint short. A lost event breaks this order somewhere.
        books_ok &= 0 <= delayed - closed <= ENDPOINTS and 0 <= closed - retried <= ENDPOINTS and retried > 0
        imbalance = max(imbalance, delayed - retried)
    dropped = lab.log.dropped_for_subscribers
    collector_alive = lab.collector.alive
    total = lab.log.total
    started = time.perf_counter()
    lab.close()
    close_ms = (time.perf_counter() - started) * 1000
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and ({t.ident for t in threading.enumerate()} - base_threads
                                           or len(os.listdir("/proc/self/fd")) > base_fds):
        time.sleep(0.01)
    threads_left = len({t.ident for t in threading.enumerate()} - base_threads)
    fds_left = len(os.listdir("/proc/self/fd")) - base_fds

    step = max(1, len(rows) // 12)
    print(f"{'t (s)':>6}{'events':>11}{'events/s':>10}{'RSS MiB':>9}{'lag ms':>8}{'backlog':>9}")
    for row in rows[::step] + ([rows[-1]] if (len(rows) - 1) % step else []):
        print(f"{row['t']:>6.0f}{row['total']:>11,}{row['rate']:>10,.0f}{row['rss']:>9.1f}"
              f"{row['lag_ms']:>8.1f}{row['backlog']:>9,}")
    rates = [r["rate"] for r in rows]
    lags = [r["lag_ms"] for r in rows]
    capped = [r["rss"] for r in rows if r["capped"]][2:]  # the first seconds after the cap settle
    growth = max(capped) - min(capped) if capped else float("nan")
    steady = min(rates) >= 0.5 * statistics.median(rates)
    flat = bool(capped) and growth < max(10.0, 0.1 * min(capped))
    print(f"{total:,} events in {wall:.0f} s ({total / wall:,.0f}/s), process CPU {100 * cpu / wall:.0f}% of one core; "
          f"RSS {rss_start:.1f} -> {rows[-1]['rss']:.1f} MiB (cap {DEFAULT_CAP:,} events)")
    print(f"books: per socket CONNECT_DELAYED >= CLOSED >= CONNECT_RETRIED, largest gap {imbalance} "
          f"(<= {ENDPOINTS} attempts in flight at close): {'balanced' if books_ok else 'EVENTS LOST'}; {dropped} dropped for subscribers; collector alive "
          f"{collector_alive}; lab.close() {close_ms:.0f} ms, then {threads_left} threads and {fds_left} fds left")
    ok = (steady and (flat or not capped) and max(lags) < 250 and books_ok and dropped == 0 and collector_alive
          and close_ms < 1000 and threads_left == 0 and fds_left <= 0)
    verdict = "BELOW TARGET" if not ok else "OK" if capped else "OK so far (run longer to reach the cap)"
    print(f"SUMMARY soak {seconds:g} s at {statistics.median(rates):,.0f} events/s (min {min(rates):,.0f}): "
          f"RSS {'flat' if flat else 'GROWING' if capped else 'cap not reached'} "
          f"(varies {growth:.1f} MiB after the cap), capture lag max {max(lags):.0f} ms, "
          f"books {'balanced' if books_ok else 'LOST EVENTS'}, close {close_ms:.0f} ms: {verdict}")
    return {"rate": statistics.median(rates), "rss_growth_mb": growth, "lag_max_ms": max(lags),
            "imbalance": imbalance, "close_ms": close_ms}


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 55.0)
