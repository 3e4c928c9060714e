"""pytest plugin for ``make mutation`` (``-p tests.helpers.fastest_first``): run a mutant's tests fastest first.

mutmut runs each mutant against every test that reached the mutated function, in no particular order, and stops at
the first failure (``-x``). Ordering those tests by the durations mutmut recorded in its clean run
(``mutants/mutmut-stats.json``) makes a killed mutant fail in its quickest test instead of after minutes of
training tests. Without that file (a plain ``pytest`` run) the order is left alone.

``LIT_REG_MUTATION_BUDGET_S=S`` also caps a mutant's run at its fastest tests whose recorded durations add up to S
seconds (at least one test): a mutant that survives them counts as survived even where a slower test would have
killed it, so the score is a lower bound, and a survivor costs seconds instead of minutes. mutmut's own runs
(stats, clean tests, the forced failure) are never capped.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

STATS_FILE = Path("mutmut-stats.json")
BUDGET_VARIABLE = "LIT_REG_MUTATION_BUDGET_S"


def recorded_durations(stats_file: Path = STATS_FILE) -> dict[str, float]:
    """Seconds per test node id from mutmut's stats file, or nothing when it is absent or unreadable."""
    try:
        return dict(json.loads(stats_file.read_text())["duration_by_test"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def budget_s(environ: dict[str, str] | os._Environ = os.environ) -> float | None:
    """The per-mutant budget in seconds while a mutant is under test (mutmut's ``MUTANT_UNDER_TEST``), else None."""
    if "__mutmut_" not in environ.get("MUTANT_UNDER_TEST", "") or not environ.get(BUDGET_VARIABLE):
        return None
    return float(environ[BUDGET_VARIABLE])


def within_budget(durations: list[float], budget: float | None) -> int:
    """How many of the (sorted) tests to keep: all without a budget, else those whose durations fit, at least one."""
    if budget is None:
        return len(durations)
    total, keep = 0.0, 0
    for duration in durations:
        total += duration
        if keep and total > budget:
            break
        keep += 1
    return keep


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    durations = recorded_durations()
    if not durations:
        return
    items.sort(key=lambda item: durations.get(item.nodeid, math.inf))
    keep = within_budget([durations.get(item.nodeid, math.inf) for item in items], budget_s())
    if keep < len(items):
        config.hook.pytest_deselected(items=items[keep:])
        del items[keep:]
