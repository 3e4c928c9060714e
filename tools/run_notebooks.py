"""Execute the lecture notebooks (jupytext percent files in ``notebooks/``) and write executed ``.ipynb`` copies.

    python tools/run_notebooks.py                       # all five, in full, into logs/notebooks/
    LIT_REG_FAST=1 python tools/run_notebooks.py notebooks/lecture_000_backprop_and_early_stopping.py

``make notebooks`` runs this (``NOTEBOOKS=...`` picks some). Each notebook is read with jupytext, executed by
nbclient in a Jupyter kernel (the ``python3`` kernel of this interpreter, working folder ``notebooks/``, so the
notebooks run as they do in Jupyter) and written with its outputs to ``<out>/<name>.ipynb``, outside git. The
environment passes to the kernel: ``LIT_REG_FAST=1`` gives the notebooks' quick mode. Needs the ``notebooks``
extra (``pip install -e '.[notebooks]'``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "logs" / "notebooks"


def execute(path: Path, out: Path, timeout: int | None) -> Path:
    """Execute the percent-format notebook ``path``; its executed copy ``out/<name>.ipynb``."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{path.stem}.ipynb"
    nbformat.write(notebook, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="percent files (default: notebooks/lecture_*.py)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder of the executed copies (default: {OUT})")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: no limit)")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("lecture_*.py"))
    failed = []
    for path in paths:
        start = time.monotonic()
        try:
            target = execute(path, args.out, args.timeout)
        except Exception as error:  # noqa: BLE001 - report every notebook, then fail
            failed.append(path.name)
            print(f"FAILED {path.name} after {time.monotonic() - start:.0f} s: {type(error).__name__}: {error}",
                  file=sys.stderr)
            continue
        print(f"{path.name}: {time.monotonic() - start:.0f} s -> {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
