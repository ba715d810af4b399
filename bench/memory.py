"""Resident memory of a Lab through one million monitor events with the default EventLog cap.

A watched socket flaps (bind + unbind on 127.0.0.1: LISTENING + CLOSED per
cycle) until the Lab has captured 1,000,000 events. RSS is sampled every 100k
events; once the cap (200k events) is reached it must stay flat: the log
discards the oldest events and counts them, it never grows.

The flapping runs in this process's main thread, in a tight Python loop, and
competes with the collector thread for the GIL: unpaced, it can emit events
faster than the collector gets to read them (measured on 2 loaded cores: up to
800k events waiting in libzmq's queue, about 100 MiB, with a bare pyzmq drain
thread too). That memory is libzmq's queue, not the log, so the loop is paced:
after each 500 cycles it waits (at most 1 s) until fewer than 20k events are
unread. ``backlog`` is the largest number of events emitted but not yet
captured at a sample; ``--unpaced`` runs the loop flat out to show the effect.

    python bench/memory.py [EVENTS] [--unpaced]
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


MAX_BACKLOG = 20_000  # events emitted but unread before the flapping loop waits for the collector


def main(events: int = 1_000_000, paced: bool = True) -> dict[str, float]:
    samples: list[tuple[int, float, int]] = []
    start = time.perf_counter()
    with zlab.Lab() as lab:
        sock = lab.socket("DEALER", "flapper")
        step = 100_000
        next_sample = step
        emitted = 0
        while lab.log.total < events:
            for _ in range(500):
                sock.bind("tcp://127.0.0.1:*")
                sock.unbind(sock.last_endpoint)
            sock.getsockopt(zmq.EVENTS)
            emitted += 1000  # LISTENING + CLOSED per cycle
            if lab.log.total >= next_sample:
                samples.append((lab.log.total, rss_mb(), emitted - lab.log.total))
                next_sample += step
            if paced:
                deadline = time.monotonic() + 1.0
                while emitted - lab.log.total > MAX_BACKLOG and time.monotonic() < deadline:
                    time.sleep(0.001)
        held, discarded, total = len(lab.log), lab.log.discarded, lab.log.total
    elapsed = time.perf_counter() - start
    print(f"{'events captured':>16}{'RSS (MiB)':>12}{'backlog':>10}")
    for n, mb, backlog in samples:
        print(f"{n:>16,}{mb:>12.1f}{backlog:>10,}")
    after_cap = [mb for n, mb, _ in samples if n >= 2 * DEFAULT_CAP]
    growth = (max(after_cap) - min(after_cap)) if after_cap else float("nan")
    print(f"held {held:,} (cap {DEFAULT_CAP:,}), discarded {discarded:,}, total {total:,} in {elapsed:.1f} s")
    flat = growth < 0.1 * min(after_cap)
    backlog = max(b for *_, b in samples)
    print(f"SUMMARY RSS varies by {growth:.1f} MiB once the cap is reached "
          f"({min(after_cap):.1f}..{max(after_cap):.1f} MiB), largest backlog {backlog:,} events"
          f"{'' if paced else ' (unpaced)'}: {'flat' if flat else 'GROWING'}")
    return {"growth_mb": growth, "events": total, "backlog": backlog}


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(numbers[0]) if numbers else 1_000_000, paced="--unpaced" not in sys.argv[1:])
