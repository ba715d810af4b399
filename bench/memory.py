"""Resident memory of a Lab through one million monitor events with the default EventLog cap.

A watched socket flaps (bind + unbind on 127.0.0.1: LISTENING + CLOSED per
cycle) until the Lab has captured 1,000,000 events. RSS is sampled every 100k
events; once the cap (200k events) is reached it must stay flat: the log
discards the oldest events and counts them, it never grows.

    python bench/memory.py [EVENTS]
"""

from __future__ import annotations

import resource
import sys
import time

import zmq

import zlab
from zlab.eventlog import DEFAULT_CAP


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main(events: int = 1_000_000) -> dict[str, float]:
    samples: list[tuple[int, float]] = []
    start = time.perf_counter()
    with zlab.Lab() as lab:
        sock = lab.socket("DEALER", "flapper")
        step = 100_000
        next_sample = step
        while lab.log.total < events:
            for _ in range(500):
                sock.bind("tcp://127.0.0.1:*")
                sock.unbind(sock.last_endpoint)
            sock.getsockopt(zmq.EVENTS)
            if lab.log.total >= next_sample:
                samples.append((lab.log.total, rss_mb()))
                next_sample += step
        held, discarded, total = len(lab.log), lab.log.discarded, lab.log.total
    elapsed = time.perf_counter() - start
    print(f"{'events captured':>16}{'RSS (MiB)':>12}")
    for n, mb in samples:
        print(f"{n:>16,}{mb:>12.1f}")
    after_cap = [mb for n, mb in samples if n >= 2 * DEFAULT_CAP]
    growth = (max(after_cap) - min(after_cap)) if after_cap else float("nan")
    print(f"held {held:,} (cap {DEFAULT_CAP:,}), discarded {discarded:,}, total {total:,} in {elapsed:.1f} s")
    flat = growth < 0.1 * min(after_cap)
    print(f"SUMMARY RSS varies by {growth:.1f} MiB once the cap is reached "
          f"({min(after_cap):.1f}..{max(after_cap):.1f} MiB): {'flat' if flat else 'GROWING'}")
    return {"growth_mb": growth, "events": total}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
