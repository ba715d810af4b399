"""The lessons as documents: what each must contain, what none may hide, and the stderr check.

nbval runs every notebook (the ``notebooks`` test path, with ``--nbval-lax``);
the repository's root ``conftest.py`` makes a cell that writes to stderr or
shows an error fail that run. These tests check the rest without a kernel, except the last,
which proves on a scratch notebook that the stderr check really fails a run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

#: The lessons, in order, named as in issue 12.
LESSONS = (
    "00_start_here",
    "01_monitor_basics",
    "02_docs_vs_behaviour",
    "03_pubsub_retry_loop",
    "04_heartbeats_and_silent_peers",
    "05_backoff_and_stopping_retries",
    "06_frozen_contexts",
    "07_playbook",
)
#: Longest code cell, in lines: cells call zlab, the logic lives in the package.
MAX_CELL_LINES = 18


def load(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def markdown(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_lessons_are_exactly_the_eight_of_the_issue_and_valid_notebooks():
    assert tuple(sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))) == LESSONS
    for name in LESSONS:
        nbformat.validate(load(name))


@pytest.mark.parametrize("name", LESSONS)
def test_each_lesson_opens_with_what_you_will_see_why_objectives_prerequisites_and_time(name):
    first = load(name).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {name[:2]} · ")
    for needed in ("**What you will see.**", "**Why it matters.**", "**Objectives**", "**Prerequisites**",
                   "**Time**"):
        assert needed in first.source, f"{name}: the opening cell lacks {needed}"


@pytest.mark.parametrize("name", LESSONS)
def test_each_lesson_asks_to_predict_then_run_and_has_an_exercise_with_a_hidden_solution_and_a_recap(name):
    text = markdown(load(name))
    assert "**Predict, then run.**" in text, f"{name}: no 'predict, then run' prompt"
    assert "## Exercise" in text, f"{name}: no exercise"
    assert re.search(r"<details><summary>Solution</summary>.+?</details>", text, re.S), \
        f"{name}: the exercise has no solution to reveal (<details><summary>Solution</summary>...)"
    assert "## Recap" in text, f"{name}: no recap"


@pytest.mark.parametrize("name", LESSONS)
def test_no_lesson_cell_hides_its_output_errors_or_warnings(name):
    for cell in code_cells(load(name)):
        tags = set(cell.metadata.get("tags", []))
        assert not tags & {"raises-exception", "nbval-skip", "nbval-check-output", "nbval-ignore-output"}, \
            f"{name}: a cell is tagged {tags}"
        for hidden in ("NBVAL_", "%%capture", "filterwarnings", "simplefilter", "redirect_stderr"):
            assert hidden not in cell.source, f"{name}: a cell uses {hidden!r}: fix the cause instead\n{cell.source}"


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_cells_stay_short(name):
    for cell in code_cells(load(name)):
        lines = cell.source.count("\n") + 1
        assert lines <= MAX_CELL_LINES, f"{name}: a {lines}-line cell; move the logic into zlab\n{cell.source}"


@pytest.mark.parametrize("name", LESSONS)
def test_each_lesson_closes_every_lab_and_dashboard_it_opens_in_its_last_cell(name):
    cells = code_cells(load(name))
    opened = {m.group(1) for cell in cells
              for m in re.finditer(r"^(\w+) = (?:zlab\.)?(?:Lab|Dashboard)\(", cell.source, re.M)}
    last = cells[-1].source
    for var in sorted(opened):
        assert f"{var}.close()" in last, f"{name}: {var} is opened but its last cell does not close it"


@pytest.mark.parametrize("name", LESSONS)
def test_links_between_lessons_point_at_lessons_that_exist(name):
    for target in re.findall(r"\]\(([^)]+\.ipynb)\)", markdown(load(name))):
        assert (NOTEBOOKS / target).exists(), f"{name} links to {target}, which does not exist"


def test_the_readme_maps_every_lesson_and_explains_running_a_workshop():
    readme = (ROOT / "README.md").read_text()
    lessons = readme.split("## Lessons", 1)[1].split("\n## ", 1)[0]
    for name in LESSONS:
        assert f"notebooks/{name}.ipynb" in lessons, f"the README's lesson map lacks {name}"
    workshop = readme.split("## Running a workshop", 1)[1].split("\n## ", 1)[0]
    for topic in ("warm", "slow", "locally"):
        assert topic in workshop.lower(), f"the workshop section does not cover {topic!r}"


def test_a_lesson_cell_that_writes_to_stderr_fails_the_nbval_run(tmp_path):
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider --nbval-lax\n")
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import warnings\nwarnings.warn('a third-party warning')"),
               nbformat.v4.new_code_cell("print('fine')")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, tmp_path / "lesson.ipynb")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "lesson.ipynb"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=90)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "wrote to stderr" in run.stdout and "a third-party warning" in run.stdout
    assert "1 failed, 1 passed" in run.stdout
