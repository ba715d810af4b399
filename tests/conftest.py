"""Shared fixtures: a Lab that is always closed, and leak accounting helpers."""

from __future__ import annotations

import os
import threading

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import zlab  # noqa: E402


@pytest.fixture
def lab():
    """A fresh Lab, closed after the test however it ends."""
    with zlab.Lab() as lab:
        yield lab


def open_fds() -> int:
    """Descriptors open in this process right now."""
    return len(os.listdir("/proc/self/fd"))


def live_threads() -> int:
    return threading.active_count()


def children_of(pid: int) -> set[int]:
    """Processes (zombies too) whose parent is ``pid``, read from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found
