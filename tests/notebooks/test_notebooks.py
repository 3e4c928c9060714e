"""The lecture notebooks (jupytext percent files in ``notebooks/``) execute in FAST mode and are clean notebooks.

All five run as plain Python scripts (a percent file is valid Python) in ONE subprocess, each in a fresh
namespace, with ``LIT_REG_FAST=1`` and the Agg backend: no Jupyter kernel is needed, and torch and Lightning are
imported once for the five. Their temporary run folders land in the test's own temporary folder.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
LECTURES = ("lecture_000_backprop_and_early_stopping", "lecture_001_lightning_fashion_mnist",
            "lecture_002_shrinkage_and_memorization", "lecture_003_mlp_slides", "lecture_004_fashion_mnist_mlp")
#: a notebook run in FAST mode slower than this is no longer a smoke test (about 10 s each on 2 busy cores)
FAST_SECONDS = 60
#: the PNGs each notebook's callbacks must have saved in its run folder
PNGS = {
    "lecture_000_backprop_and_early_stopping": ("regression_fit.png", "regression_fit_snapshots.png"),
    "lecture_001_lightning_fashion_mnist": ("live_training.png", "decision_boundary.png"),
    "lecture_002_shrinkage_and_memorization": ("regression_fit.png",),
    "lecture_003_mlp_slides": ("decision_boundary.png",),
    "lecture_004_fashion_mnist_mlp": ("confusion_matrix_test.png", "mistakes_test.png"),
}
RUNNER = """
import json, runpy, sys, time, traceback
results = {}
for path in sys.argv[2:]:
    start = time.perf_counter()
    try:
        runpy.run_path(path, run_name="__main__")
        results[path] = {"ok": True}
    except BaseException:
        results[path] = {"ok": False, "error": traceback.format_exc()}
    results[path]["seconds"] = time.perf_counter() - start
    with open(sys.argv[1], "w") as f:
        json.dump(results, f)
"""


def cells(path: Path) -> list[tuple[str, str]]:
    """``(kind, source)`` of each cell of a percent file: kind ``"markdown"`` or ``"code"``; the header skipped."""
    found: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        if line.startswith("# %%"):
            found.append(("markdown" if "[markdown]" in line else "code", []))
        elif found:
            found[-1][1].append(line)
    return [(kind, "\n".join(lines).strip()) for kind, lines in found]


@pytest.fixture(scope="module")
def fast_runs(tmp_path_factory) -> tuple[dict[str, dict], Path]:
    """Run every notebook once in FAST mode: ``({name: {"ok", "seconds", "error"}}, the temporary folder)``."""
    tmp = tmp_path_factory.mktemp("notebooks")
    results = tmp / "results.json"
    env = {**os.environ, "LIT_REG_FAST": "1", "MPLBACKEND": "Agg", "TMPDIR": str(tmp)}
    paths = [str(NOTEBOOKS / f"{name}.py") for name in LECTURES]
    completed = subprocess.run([sys.executable, "-c", RUNNER, str(results), *paths], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=600)
    assert results.is_file(), completed.stderr[-3000:]
    return {Path(path).stem: result for path, result in json.loads(results.read_text()).items()}, tmp


def test_there_is_one_notebook_per_lecture_and_no_ipynb_in_git():
    assert sorted(p.stem for p in NOTEBOOKS.glob("lecture_*.py")) == list(LECTURES)
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.strip() == "", f"notebooks are kept as percent files, without outputs: {tracked}"


@pytest.mark.parametrize("name", LECTURES)
def test_notebook_runs_in_fast_mode(fast_runs, name):
    results, tmp = fast_runs
    assert name in results, f"{name} did not run: an earlier notebook killed the runner"
    assert results[name]["ok"], results[name].get("error")
    assert results[name]["seconds"] < FAST_SECONDS
    (folder,) = tmp.glob(f"lit_reg_{name.split('_')[0]}_{name.split('_')[1]}_*")  # the notebook's LOGS
    assert list(folder.rglob("events.out.tfevents.*")), "no TensorBoard run written"
    saved = {p.name: p for p in folder.rglob("*.png")}
    for filename in PNGS[name]:
        assert filename in saved, f"{filename} not among {sorted(saved)}"
        with Image.open(saved[filename]) as image:
            pixels = np.asarray(image.convert("RGB"))
        assert image.size[0] >= 300 and image.size[1] >= 200
        assert pixels.std() > 0, f"{filename} is blank"


@pytest.mark.parametrize("name", LECTURES)
def test_notebook_is_a_percent_notebook_that_reads_fast(name):
    path = NOTEBOOKS / f"{name}.py"
    ast.parse(path.read_text())  # a plain Python script too
    found = cells(path)
    kinds = [kind for kind, _ in found]
    assert kinds[0] == "markdown" and kinds.count("markdown") >= 3 and kinds.count("code") >= 4
    assert all(source for _, source in found), "empty cell"
    setup = next(source for kind, source in found if kind == "code")
    assert "# %matplotlib inline" in setup  # jupytext turns it into the magic: figures show inline in Jupyter
    assert 'lecture_setup("' + name[:11] + '"' in setup  # LIT_REG_FAST, the run folder and the data: lit_reg.notebook
    assert ".fit(" in path.read_text() and "last_figure" in path.read_text()
    assert "lecture" in found[0][1].lower()


@pytest.mark.parametrize("name", LECTURES)
def test_jupytext_reads_each_notebook_without_outputs(name):
    jupytext = pytest.importorskip("jupytext")
    notebook = jupytext.read(NOTEBOOKS / f"{name}.py")
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds == [kind for kind, _ in cells(NOTEBOOKS / f"{name}.py")]
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in code)
    assert code[0].source.startswith("%matplotlib inline")  # the commented magic is a magic again
