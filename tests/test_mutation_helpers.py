"""``make mutation``'s helpers: the pytest plugin ``tests.helpers.fastest_first`` (order and budget of a mutant's
tests), ``tools/mutation_sample.py`` (the sample) and ``tools/mutation_report.py`` (its score and interval)."""

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers.fastest_first import budget_s, recorded_durations, within_budget

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

MUTANT = "lit_reg.models.base.xǁRegularizedModuleǁpenalty__mutmut_4"


def test_recorded_durations_reads_mutmuts_stats_file_and_tolerates_its_absence(tmp_path):
    stats = tmp_path / "mutmut-stats.json"
    assert recorded_durations(stats) == {}
    stats.write_text(json.dumps({"duration_by_test": {"tests/a.py::t": 1.5}, "tests_by_mangled_function_name": {}}))
    assert recorded_durations(stats) == {"tests/a.py::t": 1.5}
    stats.write_text("{not json")
    assert recorded_durations(stats) == {}


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, None),
    ({"LIT_REG_MUTATION_BUDGET_S": "20"}, None),  # not under mutmut
    ({"LIT_REG_MUTATION_BUDGET_S": "20", "MUTANT_UNDER_TEST": "stats"}, None),  # mutmut's stats run: never capped
    ({"LIT_REG_MUTATION_BUDGET_S": "20", "MUTANT_UNDER_TEST": "fail"}, None),
    ({"MUTANT_UNDER_TEST": MUTANT}, None),
    ({"LIT_REG_MUTATION_BUDGET_S": "20", "MUTANT_UNDER_TEST": MUTANT}, 20.0),
])
def test_the_budget_applies_only_to_a_mutant_under_test(environ, expected):
    assert budget_s(environ) == expected


@pytest.mark.parametrize(("durations", "budget", "keep"), [
    ([0.1, 0.2, 5.0], None, 3),
    ([0.1, 0.2, 5.0], 0.35, 2),
    ([0.1, 0.2, 5.0], 0.29, 1),
    ([9.0, 10.0], 1.0, 1),  # the fastest test always runs
    ([], 1.0, 0),
])
def test_within_budget_keeps_the_fastest_tests_that_fit(durations, budget, keep):
    assert within_budget(durations, budget) == keep


def test_the_plugin_runs_tests_fastest_first_and_deselects_past_the_budget(pytester, monkeypatch):
    monkeypatch.delenv("MUTANT_UNDER_TEST", raising=False)
    monkeypatch.delenv("LIT_REG_MUTATION_BUDGET_S", raising=False)
    pytester.makepyfile(test_order="""
        ORDER = []
        def test_slow(): ORDER.append("slow")
        def test_fast(): ORDER.append("fast")
        def test_middle(): ORDER.append("middle")
        def test_zz_report(): print("ORDER", ORDER)
    """)
    durations = {"test_order.py::test_slow": 3.0, "test_order.py::test_fast": 0.1,
                 "test_order.py::test_middle": 1.0, "test_order.py::test_zz_report": 1.5}
    (pytester.path / "mutmut-stats.json").write_text(json.dumps({"duration_by_test": durations}))
    result = pytester.runpytest("-p", "tests.helpers.fastest_first", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert "ORDER ['fast', 'middle']" in result.stdout.str()
    monkeypatch.setenv("MUTANT_UNDER_TEST", MUTANT)
    monkeypatch.setenv("LIT_REG_MUTATION_BUDGET_S", "2.7")
    result = pytester.runpytest("-p", "tests.helpers.fastest_first", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, deselected=1)
    assert "ORDER ['fast', 'middle']" in result.stdout.str()


def write_meta(mutants: Path, source: str, names: dict[str, int | None]) -> None:
    meta = mutants / f"{source}.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": names, "hash_by_function_name": {}}))


def test_the_sample_takes_the_same_share_of_every_file_and_is_seeded(tmp_path):
    sample = load_tool("mutation_sample")
    write_meta(tmp_path, "lit_reg/a.py", {f"a__mutmut_{i}": None for i in range(40)})
    write_meta(tmp_path, "lit_reg/b.py", {f"b__mutmut_{i}": None for i in range(5)})
    by_file = sample.mutant_names(tmp_path)
    assert sorted(by_file) == ["lit_reg/a.py", "lit_reg/b.py"] and len(by_file["lit_reg/a.py"]) == 40
    drawn = sample.stratified_sample(by_file, 0.1, seed=0)
    assert Counter(name[0] for name in drawn) == {"a": 4, "b": 1}  # ceil(10 % of 40), ceil(10 % of 5)
    assert len(set(drawn)) == len(drawn)
    assert drawn == sample.stratified_sample(by_file, 0.1, seed=0)
    assert {tuple(sample.stratified_sample(by_file, 0.1, seed=s)) for s in range(5)} != {tuple(drawn)}
    assert sorted(sample.stratified_sample(by_file, 1.0, seed=3)) == sorted(by_file["lit_reg/a.py"] +
                                                                             by_file["lit_reg/b.py"])


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5])
def test_a_fraction_outside_0_to_1_is_refused(tmp_path, fraction, capsys):
    write_meta(tmp_path, "lit_reg/a.py", {"a__mutmut_1": None})
    with pytest.raises(SystemExit):
        load_tool("mutation_sample").main(["--mutants", str(tmp_path), "--fraction", str(fraction)])
    assert f"--fraction must be in (0, 1], got {fraction}" in capsys.readouterr().err


def test_the_sample_report_counts_only_the_sample_and_gives_the_interval_of_the_whole(tmp_path, monkeypatch):
    report = load_tool("mutation_report")
    monkeypatch.setattr(report, "diff_of", lambda name, mutmut: f"- {name}")
    names = {f"a__mutmut_{i}": (1 if i < 16 else 0 if i < 20 else None) for i in range(40)}
    write_meta(tmp_path / "mutants", "lit_reg/a.py", names)
    sample = tmp_path / "sample.txt"
    sample.write_text("\n".join(f"a__mutmut_{i}" for i in range(12, 22)))  # 4 killed, 4 survived, 2 not run
    out = tmp_path / "report.md"
    totals = report.main(["--mutants", str(tmp_path / "mutants"), "--out", str(out), "--sample", str(sample)])
    assert totals == {"killed": 4, "survived": 4, "not run": 2}
    text = out.read_text()
    low, high = report.score_interval(4, 8)
    assert 0.15 < low < 0.16 and 0.84 < high < 0.85  # Clopper-Pearson for 4 of 8
    assert "Killed 4 of 8 mutants run (50.0 %)" in text
    assert f"random sample of the 40 (`tools/mutation_sample.py`): the score of all of them lies in {100 * low:.1f}" \
        in text
    assert "### `a__mutmut_16` (survived)" in text and "a__mutmut_0`" not in text


def test_an_equivalence_counts_only_for_the_diff_it_was_recorded_for(tmp_path, monkeypatch):
    report = load_tool("mutation_report")
    diffs = {"a__mutmut_1": "-    x = 1\n+    x = 2", "a__mutmut_2": "-    y = 1\n+    y = None"}
    monkeypatch.setattr(report, "diff_of", lambda name, mutmut: diffs[name])
    equivalent = {"a__mutmut_1": {"why": "x is never read", "diff": "-    x = 1\n+    x = 2"},
                  "a__mutmut_2": {"why": "an older mutant's reason", "diff": "-    y = 1\n+    y = 0"}}
    text = report.report({"lit_reg/a.py": {"a__mutmut_1": "survived", "a__mutmut_2": "survived"}}, equivalent, "mutmut")
    assert "## Survivors (2; 1 listed as equivalent" in text
    assert "### `a__mutmut_1` (survived; equivalent: x is never read)" in text
    assert "### `a__mutmut_2` (survived; listed as equivalent for another diff: check it again)" in text
    assert report.equivalence("a plain reason", "any diff") == "a plain reason"
    assert report.equivalence(None, "any diff") is None
