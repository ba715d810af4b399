"""Binder: the repository opens with zlab installed, on the first lesson, with a fixed ipykernel."""

import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def requirements() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_binder_installs_zlab_itself():
    # A binder/ folder makes repo2docker ignore pyproject.toml: zlab must come from here.
    assert "-e ." in requirements()


def test_binder_requires_an_ipykernel_whose_threads_can_update_widgets():
    spec = next(r for r in requirements() if r.startswith("ipykernel"))
    assert ">=7.1" in spec


def test_binder_pins_a_modern_python():
    match = re.fullmatch(r"python-3\.(\d+)", (BINDER / "runtime.txt").read_text().strip())
    assert match and int(match.group(1)) >= 10


def test_readme_badge_opens_the_first_lesson():
    readme = (ROOT / "README.md").read_text()
    badge = re.search(r"\(https://mybinder\.org/v2/gh/[^)]+\)", readme)
    assert badge, "no Binder badge in the README"
    assert "urlpath=lab/tree/notebooks/00_start_here.ipynb" in badge.group(0)
    assert (ROOT / "notebooks" / "00_start_here.ipynb").exists()


def test_binder_requirements_resolve_with_zlab_and_ipykernel_7_1(tmp_path):
    report = tmp_path / "report.json"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--report", str(report), "-r", str(BINDER / "requirements.txt")],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stderr
    installs = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert "zlab" in installs
    major, minor = (int(x) for x in installs["ipykernel"].split(".")[:2])
    assert (major, minor) >= (7, 1)
