"""The package surface: light to import, a public API that fits on one screen, clean notebooks."""

import json
import pathlib
import subprocess
import sys

import zlab

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_import_zlab_does_not_import_matplotlib_ipywidgets_or_pandas():
    code = "import sys, zlab; print([m for m in ('matplotlib', 'ipywidgets', 'pandas') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_are_sorted_and_exist():
    assert list(zlab.__all__) == sorted(zlab.__all__)
    for name in zlab.__all__:
        assert hasattr(zlab, name), name


def test_notebooks_in_git_carry_no_outputs_or_execution_counts():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [], f"{path.name} has stored outputs: strip them"
                assert cell.get("execution_count") is None, f"{path.name} has execution counts: strip them"
