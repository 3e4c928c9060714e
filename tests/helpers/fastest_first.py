"""pytest plugin for ``make mutation`` (``-p tests.helpers.fastest_first``): run a mutant's tests fastest first.

mutmut runs each mutant against every test that reached the mutated function, in no particular order, and stops at
the first failure (``-x``). Ordering those tests by the durations mutmut recorded in its clean run
(``mutants/mutmut-stats.json``) makes a killed mutant fail in its quickest test instead of after minutes of
training tests. Without that file (a plain ``pytest`` run) the order is left alone.
"""

import json
import math
from pathlib import Path

import pytest

STATS_FILE = Path("mutmut-stats.json")


def recorded_durations(stats_file: Path = STATS_FILE) -> dict[str, float]:
    """Seconds per test node id from mutmut's stats file, or nothing when it is absent or unreadable."""
    try:
        return dict(json.loads(stats_file.read_text())["duration_by_test"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    durations = recorded_durations()
    if durations:
        items.sort(key=lambda item: durations.get(item.nodeid, math.inf))
