"""Wall time of each notebook under nbval, and the total, in one pytest session.

Runs ``pytest --nbval-lax`` in this process over ``notebooks/*.ipynb`` (or the
notebooks given), with a small plugin that notes when each notebook's first
cell starts and its last cell finishes: that span includes the kernel's start
and shutdown (nbval starts one kernel per notebook), which is what a CI run or
an instructor checking the notebooks pays. The session's own start-up
(collecting, importing the plugins) is reported apart.

    python bench/notebooks.py [NOTEBOOK ...]
"""

from __future__ import annotations

import glob
import os
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class NotebookTimer:
    """pytest plugin: per notebook file, first cell start to last cell finish, and failures."""

    def __init__(self) -> None:
        self.spans: dict[str, list[float]] = {}
        self.cells: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.first_item: float | None = None

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        path = nodeid.split("::", 1)[0]
        now = time.perf_counter()
        if self.first_item is None:
            self.first_item = now
        span = self.spans.setdefault(path, [now, now])
        span[1] = now
        self.cells[path] = self.cells.get(path, 0) + 1

    def pytest_runtest_logfinish(self, nodeid: str, location) -> None:
        self.spans[nodeid.split("::", 1)[0]][1] = time.perf_counter()

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed:
            path = report.nodeid.split("::", 1)[0]
            self.failed[path] = self.failed.get(path, 0) + 1


def main(notebooks: list[str] | None = None) -> dict[str, float]:
    os.chdir(ROOT)
    os.environ.setdefault("MPLBACKEND", "Agg")
    paths = notebooks or sorted(glob.glob("notebooks/*.ipynb"))
    if not paths:
        print("no notebooks found under notebooks/")
        print("SUMMARY notebooks: none to run")
        return {"total_s": 0.0}
    timer = NotebookTimer()
    started = time.perf_counter()
    status = pytest.main(["-q", "--nbval-lax", "-p", "no:randomly", "--no-header", "-o", "console_output_style=classic",
                          *paths], plugins=[timer])
    total = time.perf_counter() - started
    print()
    print(f"{'notebook':<48}{'cells':>6}{'seconds':>9}{'failed':>8}")
    spent = 0.0
    for path in paths:
        rel = os.path.relpath(path, ROOT) if os.path.isabs(path) else path
        span = timer.spans.get(rel)
        seconds = span[1] - span[0] if span else float("nan")
        spent += 0.0 if span is None else seconds
        print(f"{rel:<48}{timer.cells.get(rel, 0):>6}{seconds:>9.1f}{timer.failed.get(rel, 0):>8}")
    setup = (timer.first_item - started) if timer.first_item else total
    print(f"{'pytest start-up and collection':<48}{'':>6}{setup:>9.1f}")
    failed = sum(timer.failed.values())
    verdict = "OK" if status == 0 and failed == 0 else f"FAILED (pytest exit {int(status)})"
    print(f"SUMMARY {len(paths)} notebooks under nbval: {spent:.1f} s in notebooks, {total:.1f} s in all "
          f"(largest {max((s[1] - s[0] for s in timer.spans.values()), default=0):.1f} s), "
          f"{failed} failed cells: {verdict}")
    return {"total_s": total, "notebooks_s": spent, "failed": failed}


if __name__ == "__main__":
    main(sys.argv[1:] or None)
