"""nbval, stricter: a lesson cell that writes to stderr or shows an error fails the run.

This lives at the repository root, not in ``notebooks/``: the tests import their
helpers with ``from conftest import ...``, and a second ``conftest`` module in
another test path would shadow ``tests/conftest.py`` (pytest imports both under
the same name; the last one loaded wins). The root one is always loaded first.
The hook only acts on nbval's notebook cells (items with ``test_outputs``).

nbval (run with ``--nbval-lax``, see pyproject.toml) already fails a cell that
raises. A lesson must also run *clean* top to bottom in JupyterLab: no warning
(matplotlib, a DeprecationWarning, a log line) and no traceback shown by a cell
that was allowed to raise. This hook reads the outputs nbval collected while it
ran each cell (``IPyNbCell.test_outputs``), so nothing runs twice, and turns a
passing cell into a failure that quotes the offending output.

Outputs nbval did not attribute to the cell (text printed later by a background
thread carries another cell's parent header) are not seen here: zlab never
prints from a thread (BRIEF, "Jupyter facts that bite").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest


def unclean_outputs(outputs: Iterable[Any]) -> Iterator[str]:
    """What in a cell's outputs a learner must never see: stderr text and error outputs."""
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream" and out.get("name") == "stderr":
            yield "wrote to stderr:\n" + str(out.get("text", "")).rstrip()
        elif kind == "error":
            yield f"showed an error: {out.get('ename')}: {out.get('evalue')}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    outputs = getattr(item, "test_outputs", None)  # set by nbval's IPyNbCell.runtest
    if call.when != "call" or not report.passed or outputs is None:
        return
    problems = list(unclean_outputs(outputs))
    if problems:
        source = getattr(getattr(item, "cell", None), "source", "")
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid}: a lesson cell must run clean\n" + "\n".join(problems)
                           + f"\n\ncell source:\n{source}")
