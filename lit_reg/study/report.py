"""The study report: per variant mean ± std over seeds, the difference to the baseline with Welch's 95 % CI, plots.

The report reads only the trial results (one JSON-able dict per finished trial, see :data:`REQUIRED_KEYS`), so
``lit-reg study STUDY.yaml --report`` can rebuild it from the stored results without training.

Example:
    >>> trials = [{"variant": v, "seed": s, "metric": "val_loss", "mode": "min", "best_value": x}
    ...           for v, s, x in [("plain", 0, 0.50), ("plain", 1, 0.52), ("wd", 0, 0.30), ("wd", 1, 0.33)]]
    >>> [(row["rank"], row["variant"], row["n"], row["vs_baseline"]) for row in summarize(trials, "plain")]
    [(1, 'wd', 2, '-0.195 [-0.2847, -0.1053] *'), (2, 'plain', 2, 'baseline')]
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats

#: keys every trial result must have; the others (``best_epoch``, ``epochs``, ``test``, ``wall_s``, ``curve``,
#: ``weight_norms``, ...) are optional and left out of the summary when absent
REQUIRED_KEYS = ("variant", "seed", "metric", "mode", "best_value")
MODES = {"min": False, "max": True}  # mode -> sort descending
CONFIDENCE = 0.95
CI_METHOD = ("Welch's t-test over seeds (unequal variances, Welch-Satterthwaite degrees of freedom; "
             "scipy.stats.ttest_ind(variant, baseline, equal_var=False).confidence_interval(0.95))")
#: the files :func:`write_report` writes into its ``out_dir``
FILES = ("summary.csv", "summary.md", "curves.png", "weight_norms.png", "trials.json")
DPI = 100


def summarize(trials: Sequence[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """One row per variant, ranked best first by the mean ``best_value`` (lowest first for mode ``min``).

    Each row holds ``rank``, ``variant``, ``n`` (seeds), ``metric``, ``mode``, ``best_mean``/``best_std``
    (mean and sample standard deviation of the best validation metric over seeds; ``best_std`` is None for
    n = 1), ``<test metric>_mean``/``<test metric>_std`` for every test metric any trial has (``test_loss_mean``;
    a name without the ``test_`` prefix gets it; None where the variant has none), ``train_acc_mean``/``_std`` (the
    best checkpoint's accuracy on the training split, from a trial's ``train``), ``gap_mean``/``gap_std`` (the
    generalization gap, ``train_acc - test_acc`` per trial), ``test_acc_vs_baseline`` (the difference of the mean test
    accuracy to the baseline's with its Welch interval, as ``vs_baseline``; only with a test accuracy),
    ``weight_norm_mean`` (the total weight norm at the end of each trial, the last of its ``weight_norms``),
    ``best_epoch_mean``
    (**1-based**: the first epoch is 1; the trials store it 0-based), ``epochs_mean``, ``wall_s_mean``, and the
    comparison with the baseline: ``diff`` = mean(variant) - mean(baseline), ``ci_low``/``ci_high`` its 95 %
    confidence interval from **Welch's t-test** over seeds (``scipy.stats.ttest_ind(variant, baseline,
    equal_var=False).confidence_interval(0.95)``: unequal variances, Welch-Satterthwaite degrees of freedom),
    ``significant`` (the interval excludes zero) and ``vs_baseline``, the same as text: ``"baseline"`` for the
    baseline's own row, ``"n/a"`` when the interval is undefined (fewer than 2 seeds on either side, or no spread
    on both), else ``"+0.012 [+0.003, +0.021] *"`` with ``*`` marking a significant difference. Means of absent
    optional values are None.

    Raises:
        ValueError: for no trials, a trial without a required key, trials of different metrics or modes, an
            unknown mode, the same (variant, seed) twice, or a ``baseline`` that is not a variant.
    """
    metric, mode = _check(trials)
    groups: dict[str, list[dict[str, Any]]] = {}
    for trial in trials:
        groups.setdefault(str(trial["variant"]), []).append(trial)
    if baseline not in groups:
        raise ValueError(f"`baseline` must be one of the variants {sorted(groups)}, got {baseline!r}")
    test_names = sorted({name for t in trials for name in (t.get("test") or {})})
    base_values = [float(t["best_value"]) for t in groups[baseline]]
    rows = []
    for variant, group in groups.items():
        values = [float(t["best_value"]) for t in group]
        row: dict[str, Any] = {"rank": 0, "variant": variant, "n": len(values), "metric": metric, "mode": mode}
        row["best_mean"], row["best_std"] = _mean_std(values)
        for name in test_names:
            test_values = [float(t["test"][name]) for t in group if name in (t.get("test") or {})]
            column = name if name.startswith("test_") else f"test_{name}"
            row[f"{column}_mean"], row[f"{column}_std"] = _mean_std(test_values)
        if "test_acc" in test_names or "acc" in test_names:
            row["test_acc_vs_baseline"] = _compare(_test_accuracies(group), _test_accuracies(groups[baseline]),
                                                   is_baseline=variant == baseline)["vs_baseline"]
        trained = [t for t in group if "train_acc" in (t.get("train") or {})]
        row["train_acc_mean"], row["train_acc_std"] = _mean_std([float(t["train"]["train_acc"]) for t in trained])
        row["gap_mean"], row["gap_std"] = _mean_std([float(t["train"]["train_acc"]) - float(t["test"]["test_acc"])
                                                     for t in trained if "test_acc" in (t.get("test") or {})])
        row["weight_norm_mean"] = _mean([float(t["weight_norms"][-1]) for t in group if t.get("weight_norms")])
        row["best_epoch_mean"] = _mean([t["best_epoch"] + 1 for t in group if t.get("best_epoch") is not None])
        row["epochs_mean"] = _mean([t["epochs"] for t in group if t.get("epochs") is not None])
        row["wall_s_mean"] = _mean([t["wall_s"] for t in group if t.get("wall_s") is not None])
        row.update(_compare(values, base_values, is_baseline=variant == baseline))
        rows.append(row)
    rows.sort(key=lambda r: r["best_mean"], reverse=MODES[mode])  # stable: ties keep the trials' order
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def format_markdown(rows: Sequence[dict[str, Any]], baseline: str) -> str:
    """The summary as markdown: a line naming the metric, its mode and the CI method, then the table."""
    metric, mode = rows[0]["metric"], rows[0]["mode"]
    better = "lower" if mode == "min" else "higher"
    test_names = [key.removesuffix("_mean") for key in rows[0] if key.startswith("test_") and key.endswith("_mean")]
    lines = [f"Metric: best `{metric}` per trial, mode `{mode}` ({better} is better); mean ± std over seeds. "
             f"Δ = mean(variant) − mean(baseline `{baseline}`) with a {CONFIDENCE:.0%} confidence interval from "
             f"{CI_METHOD}; `*`: the interval excludes zero; n/a: fewer than 2 seeds on a side or no spread. "
             "Best epoch is 1-based.", ""]
    compared = [("Δ test_acc [95% CI]", "test_acc_vs_baseline")] if "test_acc_vs_baseline" in rows[0] else []
    extra = [(label, key) for label, key in (("train_acc", "train_acc"), ("gap (train − test acc)", "gap"),
                                             ("final weight norm", "weight_norm"))
             if any(row[f"{key}_mean"] is not None for row in rows)]
    header = ["rank", "variant", "n", f"{metric} (mean ± std)", f"Δ vs {baseline} [{CONFIDENCE:.0%} CI]",
              *test_names, *(label for label, _ in compared), *(label for label, _ in extra), "best epoch", "epochs",
              "wall s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [str(row["rank"]), f"`{row['variant']}`", str(row["n"]),
                 _pm(row["best_mean"], row["best_std"]), row["vs_baseline"],
                 *(_pm(row[f"{name}_mean"], row[f"{name}_std"]) for name in test_names),
                 *(row[key] for _, key in compared),
                 *(_pm(row[f"{key}_mean"], row.get(f"{key}_std")) for _, key in extra),
                 _num(row["best_epoch_mean"], ".1f"), _num(row["epochs_mean"], ".1f"), _num(row["wall_s_mean"], ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def average_curves(series: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float, float, int]]:
    """Average per-epoch series of several seeds: ``(epoch, mean, std, count)`` for every epoch any seed reached.

    Series stopped early (early stopping) simply end: each epoch is averaged over the seeds that reached it,
    and ``count`` says how many did. ``std`` is the sample standard deviation, 0.0 where a single seed did.

    Example:
        >>> average_curves([[(1, 1.0), (2, 0.5)], [(1, 3.0)]])
        [(1, 2.0, 1.4142135623730951, 2), (2, 0.5, 0.0, 1)]
    """
    by_epoch: dict[int, list[float]] = {}
    for points in series:
        for epoch, value in points:
            by_epoch.setdefault(epoch, []).append(float(value))
    return [(epoch, statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))
            for epoch, values in sorted(by_epoch.items())]


def epoch_points(trial: dict[str, Any], key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` pairs of the per-epoch list ``trial[key]`` (``curve`` or ``weight_norms``), epochs 1-based.

    A list one longer than ``trial["epochs"]`` starts before training (the weight norm at initialisation):
    its first value is epoch 0. A missing or empty list gives no points.

    Example:
        >>> epoch_points({"epochs": 2, "curve": [0.9, 0.5], "weight_norms": [3.0, 3.1, 3.2]}, "weight_norms")
        [(0, 3.0), (1, 3.1), (2, 3.2)]
    """
    values = trial.get(key) or []
    start = 0 if trial.get("epochs") is not None and len(values) == trial["epochs"] + 1 else 1
    return [(start + i, float(x)) for i, x in enumerate(values)]


def write_report(trials: Sequence[dict[str, Any]], out_dir: Path | str, baseline: str) -> str:
    """Write the report into ``out_dir`` (created) and return the markdown summary written to ``summary.md``.

    Files (only these, all inside ``out_dir``; earlier versions of them are replaced):

    - ``summary.csv``: the rows of :func:`summarize`, every column; numbers at full precision, None as empty.
    - ``summary.md``: :func:`format_markdown` of those rows (the returned text).
    - ``curves.png``: the validation metric per epoch (``curve``), one line per variant: the mean over seeds
      with a band of ± one standard deviation. Trials stopped early have shorter curves: each epoch is averaged
      over the seeds that reached it (:func:`average_curves`), so the tail of a line may rest on fewer seeds.
    - ``weight_norms.png``: the total weight norm per epoch (``weight_norms``), drawn the same way. A series one
      longer than ``epochs`` starts with the norm before training, drawn at epoch 0 (:func:`epoch_points`).
    - ``trials.json``: the trials as given.

    Epochs on both plots are 1-based, as in the table.

    Raises:
        ValueError: as :func:`summarize`.
    """
    rows = summarize(trials, baseline)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(out / "summary.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: "" if row.get(k) is None else _csv_value(row[k]) for k in columns} for row in rows)
    markdown = format_markdown(rows, baseline)
    (out / "summary.md").write_text(markdown, encoding="utf-8")
    order = [row["variant"] for row in rows]
    metric = rows[0]["metric"]
    curves = {v: [epoch_points(t, "curve") for t in trials if str(t["variant"]) == v] for v in order}
    _plot(curves, f"validation {metric}", f"{metric} per epoch: mean ± std over seeds", out / "curves.png")
    norms = {v: [epoch_points(t, "weight_norms") for t in trials if str(t["variant"]) == v] for v in order}
    _plot(norms, "total weight norm", "total weight norm per epoch: mean ± std over seeds", out / "weight_norms.png",
          "epoch (1-based; 0: before training); each epoch averaged over the seeds that reached it")
    (out / "trials.json").write_text(json.dumps(list(trials), indent=2) + "\n", encoding="utf-8")
    return markdown


def _check(trials: Sequence[dict[str, Any]]) -> tuple[str, str]:
    if not trials:
        raise ValueError("`trials` is empty: run the study first (no finished trial to report on)")
    seen = set()
    for trial in trials:
        missing = [key for key in REQUIRED_KEYS if key not in trial]
        if missing:
            raise ValueError(f"`trials`: a trial lacks {missing} (each needs {list(REQUIRED_KEYS)}): {trial}")
        key = (str(trial["variant"]), trial["seed"])
        if key in seen:
            raise ValueError(f"`trials`: variant {key[0]!r} seed {key[1]} appears twice; each runs once")
        seen.add(key)
    kinds = {(t["metric"], t["mode"]) for t in trials}
    if len(kinds) > 1:
        raise ValueError(f"`trials` must share one metric and mode, got {sorted(kinds)}")
    metric, mode = kinds.pop()
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {list(MODES)}, got {mode!r}")
    return metric, mode


def _test_accuracies(group: Sequence[dict[str, Any]]) -> list[float]:
    tests = [t.get("test") or {} for t in group]
    return [float(test.get("test_acc", test.get("acc"))) for test in tests if "test_acc" in test or "acc" in test]


def _mean(values: Sequence[float]) -> float | None:
    return float(statistics.mean(values)) if values else None


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    return _mean(values), float(statistics.stdev(values)) if len(values) > 1 else None


def _compare(values: list[float], base_values: list[float], is_baseline: bool) -> dict[str, Any]:
    diff = statistics.mean(values) - statistics.mean(base_values)
    row: dict[str, Any] = {"diff": float(diff), "ci_low": None, "ci_high": None, "significant": None}
    if is_baseline:
        return {**row, "vs_baseline": "baseline"}
    if len(values) < 2 or len(base_values) < 2 or statistics.variance(values) == statistics.variance(base_values) == 0:
        return {**row, "vs_baseline": "n/a"}  # Welch's interval needs 2 seeds a side and some spread
    ci = stats.ttest_ind(values, base_values, equal_var=False).confidence_interval(CONFIDENCE)
    low, high = float(ci.low), float(ci.high)
    significant = low > 0 or high < 0
    text = f"{diff:+.4g} [{low:+.4g}, {high:+.4g}]" + (" *" if significant else "")
    return {**row, "ci_low": low, "ci_high": high, "significant": significant, "vs_baseline": text}


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.2g}"


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _csv_value(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value  # repr: the float parses back exactly


def _plot(series: dict[str, list[list[tuple[int, float]]]], ylabel: str, title: str, path: Path,
          xlabel: str = "epoch (1-based); each epoch averaged over the seeds that reached it") -> None:
    figure = Figure(figsize=(8, 5))  # no pyplot: headless, the user's backend untouched
    axes = figure.subplots()
    drawn = 0
    for variant, per_seed in series.items():
        points = average_curves(per_seed)
        if not points:
            continue
        epochs, means, stds, _ = zip(*points, strict=True)
        line, = axes.plot(epochs, means, marker="." if len(epochs) < 30 else None,
                          label=f"{variant} (n={sum(1 for p in per_seed if p)})")
        axes.fill_between(epochs, [m - s for m, s in zip(means, stds, strict=True)],
                          [m + s for m, s in zip(means, stds, strict=True)], color=line.get_color(), alpha=0.2)
        drawn += 1
    if drawn:
        axes.legend(fontsize="small")
    else:
        axes.text(0.5, 0.5, "no per-epoch values in the trials", ha="center", va="center", transform=axes.transAxes)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)


#: the files :func:`write_search_report` writes into its ``out_dir``
SEARCH_FILES = ("search.md", "trials.json")


def format_search(trials: Sequence[dict[str, Any]], importances: dict[str, float], note: str, top: int = 5) -> str:
    """A search's report as markdown: its ``top`` best trials (ranked by ``best_value`` according to the mode, pruned
    ones included and marked) with their parameters, then each parameter's importance (``note`` says how they were
    computed, or why there are none).

    Example:
        >>> trials = [{"number": n, "variant": f"trial_{n}", "seed": 0, "metric": "val_loss", "mode": "min",
        ...            "best_value": x, "best_epoch": 1, "epochs": 3, "pruned": p, "params": {"model.lr": lr}}
        ...           for n, x, p, lr in [(0, 0.5, False, 0.01), (1, 0.2, False, 0.05), (2, 0.9, True, 0.09)]]
        >>> print(format_search(trials, {"model.lr": 1.0}, "By hand.").splitlines()[4])
        | 1 | 1 | 0.2 | 2 | 3 | no | 0.05 |

    Raises:
        ValueError: as :func:`summarize` for the trials (no trials, missing keys, mixed metrics or modes).
    """
    if not trials:
        raise ValueError("`trials` is empty: run the search first (no finished trial to report on)")
    metric, mode = _check([{**t, "variant": f"trial_{t.get('number', t.get('variant'))}"} for t in trials])
    ranked = sorted(trials, key=lambda t: float(t["best_value"]), reverse=MODES[mode])
    names = list(dict.fromkeys(key for t in trials for key in t.get("params") or {}))
    pruned = sum(1 for t in trials if t.get("pruned"))
    better = "lower" if mode == "min" else "higher"
    lines = [f"Search: {len(trials)} finished trials ({pruned} pruned by the median pruner). Metric: best `{metric}` "
             f"per trial, mode `{mode}` ({better} is better); the best {min(top, len(trials))}, ranked (a pruned "
             "trial's best is over the epochs it ran). Best epoch is 1-based.", ""]
    header = ["rank", "trial", metric, "best epoch", "epochs", "pruned", *(f"`{n}`" for n in names)]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for rank, trial in enumerate(ranked[:top], start=1):
        params = trial.get("params") or {}
        cells = [str(rank), str(trial.get("number", trial["variant"])), f"{float(trial['best_value']):.4g}",
                 "–" if trial.get("best_epoch") is None else str(trial["best_epoch"] + 1),
                 "–" if trial.get("epochs") is None else str(trial["epochs"]), "yes" if trial.get("pruned") else "no",
                 *(_param(params[n]) if n in params else "–" for n in names)]
        lines.append("| " + " | ".join(cells) + " |")
    best = ranked[0]
    lines += ["", f"Best: trial {best.get('number', best['variant'])}, `{metric}` = {float(best['best_value']):.4g} "
                  f"with " + ", ".join(f"`{k}` = {_param(v)}" for k, v in (best.get("params") or {}).items()), ""]
    lines.append(note)
    if importances:
        lines += ["", "| parameter | importance |", "|---|---|"]
        lines += [f"| `{name}` | {value:.3f} |" for name, value in
                  sorted(importances.items(), key=lambda item: item[1], reverse=True)]
    return "\n".join(lines) + "\n"


def write_search_report(trials: Sequence[dict[str, Any]], out_dir: Path | str, importances: dict[str, float],
                        note: str, top: int = 5) -> str:
    """Write ``search.md`` (:func:`format_search`, returned) and ``trials.json`` (the trials as given) into
    ``out_dir`` (created).

    Raises:
        ValueError: as :func:`format_search`.
    """
    markdown = format_search(trials, importances, note, top)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.md").write_text(markdown, encoding="utf-8")
    (out / "trials.json").write_text(json.dumps(list(trials), indent=2) + "\n", encoding="utf-8")
    return markdown


def _param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
