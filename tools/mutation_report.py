"""Summarize a ``mutmut run`` into a Markdown report: the score per module and every surviving mutant.

Run by ``make mutation`` after ``mutmut run``, from the repository root, with the mutation environment's Python::

    .venv-mutation/bin/python tools/mutation_report.py --out mutants/report.md

A survivor listed in ``tools/equivalent_mutants.json`` (``{"mutant name": {"why": "no test can kill it because ...",
"diff": "its lines, as mutmut show prints them"}}``) is reported as equivalent with that reason; every other survivor
is a gap in the tests. mutmut numbers the mutants of each function, so after an edit a name can mean another change:
an entry whose diff no longer matches is reported as stale, not as equivalent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

#: mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into the four outcomes the report counts
KILLED, SURVIVED, NO_TESTS, NOT_RUN = "killed", "survived", "no tests", "not run"
OUTCOME_BY_EXIT_CODE = {1: KILLED, 3: KILLED, 36: KILLED, -24: KILLED, 24: KILLED, 152: KILLED, 255: KILLED,
                        37: KILLED, 0: SURVIVED, 5: NO_TESTS, 33: NO_TESTS, None: NOT_RUN}
EQUIVALENTS = Path(__file__).with_name("equivalent_mutants.json")


def outcomes(mutants_dir: Path) -> dict[str, dict[str, str]]:
    """``{source file: {mutant name: outcome}}`` from mutmut's ``.meta`` files (timeouts count as killed)."""
    result = {}
    for meta in sorted(mutants_dir.rglob("*.py.meta")):
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        if codes:
            source = str(meta.relative_to(mutants_dir)).removesuffix(".meta")
            result[source] = {name: OUTCOME_BY_EXIT_CODE.get(code, SURVIVED) for name, code in codes.items()}
    return result


def diff_of(mutant: str, mutmut: str) -> str:
    shown = subprocess.run([mutmut, "show", mutant], capture_output=True, text=True, check=False).stdout
    return "\n".join(line for line in shown.splitlines() if line.startswith(("+", "-")) and line[:3] not in
                     ("+++", "---"))


def only(by_file: dict[str, dict[str, str]], names: set[str]) -> dict[str, dict[str, str]]:
    """The outcomes of the named mutants only (a sample), files without any left out."""
    kept = {source: {n: o for n, o in mutants.items() if n in names} for source, mutants in by_file.items()}
    return {source: mutants for source, mutants in kept.items() if mutants}


def equivalence(entry: str | dict[str, str] | None, diff: str) -> str | None:
    """The reason an equivalence entry gives, or None when there is none or it was recorded for another diff (a plain
    string entry, without its diff, is taken as it is)."""
    if isinstance(entry, dict):
        return entry["why"] if entry.get("diff") == diff else None
    return entry


def score_interval(killed: int, run: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of the kill rate of all mutants, from a random sample of ``run`` (scipy)."""
    from scipy.stats import binomtest

    interval = binomtest(killed, run).proportion_ci(confidence_level=confidence)
    return interval.low, interval.high


def report(by_file: dict[str, dict[str, str]], equivalent: dict[str, str | dict[str, str]], mutmut: str,
           sample_of: int | None = None) -> str:
    total = Counter(outcome for mutants in by_file.values() for outcome in mutants.values())
    run = total[KILLED] + total[SURVIVED] + total[NO_TESTS]
    lines = ["# Mutation testing report", "",
             f"Killed {total[KILLED]} of {run} mutants run ({100 * total[KILLED] / max(run, 1):.1f} %); "
             f"{total[SURVIVED]} survived, {total[NO_TESTS]} had no test reaching them, {total[NOT_RUN]} not run.", ""]
    if sample_of and run:
        low, high = score_interval(total[KILLED], run)
        lines += [f"These mutants are a random sample of the {sample_of} (`tools/mutation_sample.py`): the score of "
                  f"all of them lies in {100 * low:.1f} to {100 * high:.1f} % with 95 % confidence (Clopper-Pearson).",
                  ""]
    lines += ["| module | killed | survived | no tests | not run | killed % |", "|---|---:|---:|---:|---:|---:|"]
    for source, mutants in by_file.items():
        c = Counter(mutants.values())
        ran = c[KILLED] + c[SURVIVED] + c[NO_TESTS]
        score = f"{100 * c[KILLED] / ran:.1f}" if ran else "-"
        lines.append(f"| `{source}` | {c[KILLED]} | {c[SURVIVED]} | {c[NO_TESTS]} | {c[NOT_RUN]} | {score} |")
    survivors = [(name, outcome) for mutants in by_file.values() for name, outcome in mutants.items()
                 if outcome in (SURVIVED, NO_TESTS)]
    diffs = {name: diff_of(name, mutmut) for name, _ in survivors}
    reasons = {name: why for name, _ in survivors if (why := equivalence(equivalent.get(name), diffs[name]))}
    listed = [s for s in survivors if s[0] in reasons]
    lines += ["", f"## Survivors ({len(survivors)}; {len(listed)} listed as equivalent in "
                  f"`tools/equivalent_mutants.json`)", ""]
    for name, outcome in survivors:
        why = reasons.get(name) or ("listed as equivalent for another diff: check it again" if name in equivalent
                                    else "")
        lines += [f"### `{name}` ({outcome}{'; ' if why else ''}{'equivalent: ' if name in reasons else ''}{why})",
                  "", "```diff", diffs[name], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's working folder")
    parser.add_argument("--out", type=Path, default=Path("mutants/report.md"), help="the Markdown report to write")
    parser.add_argument("--mutmut", default=str(Path(sys.executable).with_name("mutmut")), help="mutmut command")
    parser.add_argument("--sample", type=Path, help="report only the mutants named in this file (one a line), as a "
                                                    "random sample of all, with the interval of the whole score")
    args = parser.parse_args(argv)
    by_file = outcomes(args.mutants)
    if not by_file:
        parser.error(f"no mutmut results in {args.mutants}/: run `mutmut run` first (make mutation does)")
    sample_of = None
    if args.sample:
        sample_of = sum(len(mutants) for mutants in by_file.values())
        by_file = only(by_file, set(args.sample.read_text().split()))
    equivalent = json.loads(EQUIVALENTS.read_text()) if EQUIVALENTS.is_file() else {}
    args.out.write_text(report(by_file, equivalent, args.mutmut, sample_of))
    totals = dict(Counter(o for mutants in by_file.values() for o in mutants.values()))
    print(f"{args.out}: {totals}")
    return totals


if __name__ == "__main__":
    main()
