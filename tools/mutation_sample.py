"""Print a seeded random sample of mutmut's mutants, the same fraction of each source file, one name a line.

``make mutation-sample`` runs ``mutmut run`` on these names only: an unbiased estimate of the whole score in a
fraction of the time (``make mutation`` runs the cheapest mutants first, so a stopped full run over-represents the
cheap ones). Where ``mutants/`` holds no mutants yet, it has mutmut generate them first (seconds), so run it with
the mutation environment's Python::

    .venv-mutation/bin/python tools/mutation_sample.py --fraction 0.1 --seed 0 > mutants/sample.txt
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
from pathlib import Path


def mutant_names(mutants_dir: Path) -> dict[str, list[str]]:
    """``{source file: sorted mutant names}`` from mutmut's ``.meta`` files."""
    by_file = {}
    for meta in sorted(mutants_dir.rglob("*.py.meta")):
        names = sorted(json.loads(meta.read_text()).get("exit_code_by_key", {}))
        if names:
            by_file[str(meta.relative_to(mutants_dir)).removesuffix(".meta")] = names
    return by_file


def generate_mutants() -> None:
    """Have mutmut write ``mutants/`` (the first step of ``mutmut run``, without its test runs)."""
    import os

    from mutmut.__main__ import (
        copy_also_copy_files,
        copy_src_dir,
        create_mutants,
        setup_source_paths,
        store_lines_covered_by_tests,
    )
    from mutmut.mutation.trampoline import set_mutant_under_test

    set_mutant_under_test("mutant_generation")
    os.makedirs("mutants", exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the names only
        copy_src_dir()
        copy_also_copy_files()
        setup_source_paths()
        store_lines_covered_by_tests()
        create_mutants(os.cpu_count() or 1)


def stratified_sample(by_file: dict[str, list[str]], fraction: float, seed: int) -> list[str]:
    """``ceil(fraction * n)`` names drawn without replacement from each file's ``n`` mutants, with one seeded RNG."""
    if not 0 < fraction <= 1:
        raise ValueError(f"--fraction must be in (0, 1], got {fraction}")
    rng = random.Random(seed)
    return [name for source in sorted(by_file) for name in
            sorted(rng.sample(by_file[source], math.ceil(fraction * len(by_file[source]))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's folder (default: mutants)")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of each file's mutants (default 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    by_file = mutant_names(args.mutants)
    if not by_file and args.mutants == Path("mutants"):
        generate_mutants()
        by_file = mutant_names(args.mutants)
    if not by_file:
        parser.error(f"no mutants in {args.mutants}/: run `.venv-mutation/bin/mutmut run` there first")
    try:
        print("\n".join(stratified_sample(by_file, args.fraction, args.seed)))
    except ValueError as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
