"""Bounded traffic helpers: send until a message gets through, count what arrives.

Every loop here is bounded in count and in time (network safety): nothing
generates traffic forever.
"""

from __future__ import annotations

import time

import zmq

__all__ = ["deliver"]


def deliver(sender: zmq.Socket, receiver: zmq.Socket, payload: bytes = b"hello", *,
            timeout: float = 3.0, interval: float = 0.01, max_sends: int = 1000) -> tuple[bytes, int]:
    """Send ``payload`` every ``interval`` s until ``receiver`` gets a message; return ``(message, sends)``.

    For PUB/SUB the first messages are lost until the subscription reaches the
    publisher (the "slow joiner"), even after HANDSHAKE_SUCCEEDED: hence the
    repeat. Both sockets are used from the calling thread. Raises
    ``TimeoutError`` after ``timeout`` seconds or ``max_sends`` sends.
    """
    deadline = time.monotonic() + timeout
    sends = 0
    while time.monotonic() < deadline and sends < max_sends:
        try:
            sender.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            pass
        sends += 1
        if receiver.poll(int(interval * 1000)):
            return receiver.recv(), sends
    raise TimeoutError(f"no message arrived in {timeout:g} s after {sends} sends of {payload!r}")
