"""What the example scripts share: the ``--fast``/``--out`` options, the output folder, a printed table."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from matplotlib.figure import Figure

EXAMPLES_LOG_DIR = Path("logs") / "examples"


def example_parser(description: str) -> argparse.ArgumentParser:
    """An ``argparse`` parser with the options every example takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fast", action="store_true", help="a few steps on tiny data (what the tests run)")
    parser.add_argument("--out", default=None,
                        help="folder for the runs and plots (default: a new logs/examples/<name>/run_N)")
    return parser


def output_dir(out: str | None, name: str) -> Path:
    """``out``, or the next free ``logs/examples/<name>/run_N``; created, never reused when chosen here."""
    if out is not None:
        path = Path(out)
    else:
        root = EXAMPLES_LOG_DIR / name
        taken = [int(p.name.split("_")[-1]) for p in root.glob("run_*") if p.name.split("_")[-1].isdigit()]
        path = root / f"run_{max(taken, default=-1) + 1}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    """Print ``rows`` (dicts with the same keys) as an aligned text table; floats with 4 decimals."""
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()] for row in rows]
    header = list(rows[0])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    for line in (header, ["-" * w for w in widths], *cells):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def save_figure(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"plot: {path}")
    return path


def exit_with(message: str) -> NoReturn:
    """End the example with one line on stderr and exit status 1."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)
