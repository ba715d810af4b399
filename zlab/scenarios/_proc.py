"""Run a program of :mod:`zlab.scenarios._child` in a child process, with a deadline.

A lesson that must hang hangs in a child: the parent reads the child's JSON
lines on a reader thread, answers with commands on stdin, and kills the child
(SIGKILL, then ``wait()``) when it misses its deadline. :meth:`ChildProgram.close`
is idempotent; register the child with ``lab.adopt(child, "peer")`` so a failing
scenario still leaves nothing running.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["CHILD_SCRIPT", "ChildProgram"]

#: The child script, run by path so it imports only pyzmq (not zlab).
CHILD_SCRIPT = str(Path(__file__).with_name("_child.py"))


class ChildProgram:
    """One child process running ``_child.py PROGRAM ARGS``.

    ``records`` keeps every JSON line the child wrote (each a dict with ``t``,
    the child's ``time.monotonic()``). Raises ``RuntimeError`` if the child
    cannot start.
    """

    def __init__(self, program: str, args: dict[str, Any], name: str):
        self.name = name
        self.program = program
        self.records: list[dict[str, Any]] = []
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.proc = subprocess.Popen(
            [sys.executable, CHILD_SCRIPT, program, json.dumps({**args, "parent": os.getpid()})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            text=True,
            bufsize=1,
            cwd=os.path.dirname(CHILD_SCRIPT),
        )
        self.killed = False
        self.returncode: int | None = None
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, name=f"zlab-child-{name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            self._queue.put(record)
        self._queue.put(None)

    def expect(self, key: str, timeout: float) -> dict[str, Any]:
        """The next record that has ``key`` (records read meanwhile are kept in :attr:`records`).

        Raises ``TimeoutError`` after ``timeout`` s, or ``RuntimeError`` if the child ended first.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:  # records already queued count even when the time is up
                record = self._queue.get(timeout=max(0.0, remaining))
            except queue.Empty:
                if remaining <= 0:
                    raise TimeoutError(f"child {self.name} wrote no {key!r} record in {timeout:g} s") from None
                continue
            if record is None:
                self._queue.put(None)
                self.close(0.5)
                raise RuntimeError(f"child {self.name} ended (status {self.returncode}) before writing "
                                   f"{key!r}: {self.stderr.strip()[-300:]}")
            self.records.append(record)
            if key in record:
                return record

    def collect(self, timeout: float) -> list[dict[str, Any]]:
        """Read records for up to ``timeout`` s or until the child closes stdout; returns those read."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                record = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if record is None:
                self._queue.put(None)
                break
            self.records.append(record)
            got.append(record)
        return got

    def send(self, command: str) -> None:
        """Write one command line to the child's stdin."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def close(self, timeout: float = 0.0) -> None:
        """Let the child exit on its own for ``timeout`` s, then SIGKILL it; always ``wait()``s."""
        if self.returncode is not None:
            return
        try:
            self.returncode = self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.killed = True
            self.returncode = self.proc.wait()
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except (OSError, ValueError):  # BrokenPipe on flush of a dead child's stdin
            pass
        self._reader.join(1.0)  # the child is gone: its stdout reaches end-of-file
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()
        if self.proc.stderr is not None:
            try:
                self.stderr = self.proc.stderr.read()
            except (OSError, ValueError):
                self.stderr = ""
            self.proc.stderr.close()
        # what the reader thread queued after the last expect()/collect()
        while True:
            try:
                record = self._queue.get_nowait()
            except queue.Empty:
                break
            if record is None:
                continue
            self.records.append(record)
