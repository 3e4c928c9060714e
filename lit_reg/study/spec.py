"""The study file: a base ``lit-reg fit`` config, the variants to compare, the seeds and the metric.

Example:
    >>> spec = StudySpec.from_dict({"base": {"trainer": {"max_epochs": 2}}, "seeds": [0, 1],
    ...                             "grid": {"model.weight_decay": [0.0, 0.01]}}, name="wd")
    >>> list(spec.variants), spec.baseline, spec.mode
    (['model.weight_decay=0.0', 'model.weight_decay=0.01'], 'model.weight_decay=0.0', 'min')
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import pydoc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: the keys a study file may have
KEYS = ("name", "base", "variants", "grid", "search", "n_trials", "seeds", "metric", "mode", "baseline", "test",
        "overrides")
MODES = ("min", "max")
#: settings every trial gets unless the study file or the command line says otherwise: the study prints one
#: progress line per trial, so Lightning's per-batch progress bar is off
TRIAL_DEFAULTS: dict[str, Any] = {"trainer.enable_progress_bar": False}
#: the words a `search` range may start with (``log [1e-6, 1e-2]``, ``int [1, 4]``, ``choice [relu, tanh]``)
RANGE_WORDS = ("log", "int", "choice")
RANGE_FORMS = ("[low, high] (float), 'log [low, high]', 'int [low, high]', 'int log [low, high]', "
               "'choice [a, b, ...]' or {low: .., high: .., log: true, int: true}")


def override_args(overrides: dict[str, Any]) -> list[str]:
    """Dotted overrides as ``lit-reg fit`` arguments.

    Example:
        >>> override_args({"model.dropout": 0.3, "model.activation": "relu", "trainer.logger": None})
        ['--model.dropout', '0.3', '--model.activation', 'relu', '--trainer.logger', 'null']
    """
    args: list[str] = []
    for key, value in overrides.items():
        args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return args


def _number(value: Any) -> Any:
    """``value`` as an int or float when it is one or a string that reads as one (YAML reads ``1e-6`` as a string)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


def parse_range(value: Any) -> dict[str, Any]:
    """One `search` range, as ``{"kind": "float"|"int", "low", "high", "log"}`` or ``{"kind": "choice", "choices"}``.

    Example:
        >>> parse_range([0.0, 0.6])
        {'kind': 'float', 'low': 0.0, 'high': 0.6, 'log': False}
        >>> parse_range("log [1e-6, 1e-2]")
        {'kind': 'float', 'low': 1e-06, 'high': 0.01, 'log': True}
        >>> parse_range("int [1, 4]"), parse_range("choice [relu, tanh]")
        ({'kind': 'int', 'low': 1, 'high': 4, 'log': False}, {'kind': 'choice', 'choices': ['relu', 'tanh']})

    Raises:
        ValueError: the message says what is wrong (the caller names the file and the key).
    """
    words: list[str] = []
    if isinstance(value, str):
        head, bracket, tail = value.partition("[")
        words = head.split()
        if not bracket or any(w not in RANGE_WORDS for w in words) or len(set(words)) != len(words):
            raise ValueError(f"must be a range: {RANGE_FORMS}; got {value!r}")
        try:
            value = yaml.safe_load(bracket + tail)
        except yaml.YAMLError:
            raise ValueError(f"has no readable list after {' '.join(words)!r}: {RANGE_FORMS}; got {value!r}") from None
        if not isinstance(value, list):
            raise ValueError(f"must be a range: {RANGE_FORMS}; got {value!r}")
    elif isinstance(value, dict):
        unknown = [k for k in value if k not in ("low", "high", "log", "int", "choices")]
        if unknown or not (("choices" in value) != ("low" in value or "high" in value)):
            raise ValueError(f"must have `low` and `high` (and optionally `log`, `int`) or `choices`: {RANGE_FORMS}; "
                             f"got {value!r}")
        flags = [k for k in ("log", "int") if value.get(k) is not None]
        if any(not isinstance(value[k], bool) for k in flags):
            raise ValueError(f"`log` and `int` must be true or false, got {value!r}")
        words = [k for k in flags if value[k]]
        if "choices" in value:
            words, value = ["choice"], value["choices"]
        else:
            value = [value.get("low"), value.get("high")]
    elif not isinstance(value, list):
        raise ValueError(f"must be a range: {RANGE_FORMS}; got {value!r}")
    if "choice" in words:
        if len(words) > 1 or not value or not all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
            raise ValueError(f"`choice` takes a non-empty list of numbers, strings, booleans or null, got {value!r}")
        return {"kind": "choice", "choices": list(value)}
    bounds = [_number(v) for v in value]
    if len(bounds) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds):
        raise ValueError(f"must be [low, high] with two numbers, got {value!r}")
    low, high = bounds
    kind = "int" if "int" in words else "float"
    if kind == "int" and not all(float(b).is_integer() for b in bounds):
        raise ValueError(f"`int` needs whole-number bounds, got {value!r}")
    if not low < high:
        raise ValueError(f"needs low < high, got {value!r}")
    log = "log" in words
    if log and low <= 0:
        raise ValueError(f"`log` needs low > 0, got {value!r}")
    cast = int if kind == "int" else float
    return {"kind": kind, "low": cast(low), "high": cast(high), "log": log}


def _variant_name(overrides: dict[str, Any]) -> str:
    return ",".join(f"{key}={value}" for key, value in overrides.items()) or "base"


@dataclass
class StudySpec:
    """A parsed, checked study file (see ``docs/studies.md`` for the format).

    Attributes:
        name: the study's name (its folder ``logs/studies/<name>/`` and the Optuna study name).
        base: the base config: a path (resolved against the study file's folder) or an inline mapping.
        variants: variant name → its dotted overrides, in the file's order (empty for a search).
        search: dotted key → its range (:func:`parse_range`) for an Optuna search; None for variants or a grid.
        n_trials: the finished (complete or pruned) trials a search should have; None when not given in the file.
        seeds: the seeds every variant runs with (a search uses the first).
        metric, mode: the validation metric compared, and whether lower (``min``) or higher (``max``) is better.
        baseline: the variant the others are compared with.
        test: run ``test`` on each trial's best checkpoint.
        overrides: dotted overrides applied to every trial (the study file's, then the command line's).
        path: the study file (None for a spec built from a mapping).

    Raises:
        ValueError: naming the study file and the key, for anything not allowed.
    """

    name: str
    base: str | dict[str, Any]
    variants: dict[str, dict[str, Any]]
    seeds: list[int]
    metric: str = "val_loss"
    mode: str = "min"
    baseline: str = ""
    test: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    search: dict[str, dict[str, Any]] | None = None
    n_trials: int | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> StudySpec:
        """Read and check the study file at ``path``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"study file {path} not found")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ValueError(f"study file {path} is not YAML: {' '.join(str(err).split())}") from None
        return cls.from_dict(data, name=path.stem, path=path)

    @classmethod
    def from_dict(cls, data: Any, name: str, path: Path | None = None) -> StudySpec:
        """Check ``data`` (the study file's content); ``name`` is the default study name."""
        where = f"study file {path}" if path else "study"

        def bad(key: str, message: str) -> ValueError:
            return ValueError(f"{where}: `{key}` {message}")

        if not isinstance(data, dict):
            raise ValueError(f"{where} must be a YAML mapping with the keys {list(KEYS)}, got {type(data).__name__}")
        unknown = [k for k in data if k not in KEYS]
        if unknown:
            raise bad(unknown[0], f"is not a study key; allowed: {list(KEYS)}")
        study_name = data.get("name", name)
        if not isinstance(study_name, str) or not study_name or "/" in study_name or study_name.startswith("."):
            raise bad("name", f"must be a folder name (no '/'), got {study_name!r}")
        base = data.get("base")
        if isinstance(base, str):
            base_path = (path.parent / base) if path is not None else Path(base)
            if not base_path.is_file():
                raise bad("base", f"names {base_path}, which does not exist (paths are relative to the study file)")
            base = str(base_path)
        elif not isinstance(base, dict):
            raise bad("base", f"must be a path to a lit-reg fit config or an inline mapping, got {base!r}")
        given = [k for k in ("variants", "grid", "search") if k in data]
        if len(given) != 1:
            raise bad("variants", "or `grid` must be given, not both and not neither (or `search` alone: exactly one "
                      "of the three" + (f"; the file has {' and '.join(f'`{k}`' for k in given)})" if given else ")"))
        search = cls._search(data, bad) if "search" in data else None
        variants = cls._variants(data, bad) if search is None else {}
        n_trials = data.get("n_trials")
        if n_trials is not None and (search is None or not isinstance(n_trials, int) or isinstance(n_trials, bool)
                                     or n_trials < 1):
            raise bad("n_trials", "only goes with `search`" if search is None
                      else f"must be a positive integer, got {n_trials!r}")
        if search is not None and "baseline" in data:
            raise bad("baseline", "does not go with `search` (a search ranks its trials, it has no baseline)")
        seeds = data.get("seeds", [0])
        if (not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                                for s in seeds) or len(set(seeds)) != len(seeds)):
            raise bad("seeds", f"must be a non-empty list of distinct integers, got {seeds!r}")
        metric = data.get("metric", "val_loss")
        if not isinstance(metric, str) or not metric:
            raise bad("metric", f"must be a logged metric's name such as val_loss or val_acc, got {metric!r}")
        mode = data.get("mode", "min" if metric.endswith("loss") else "max")
        if mode not in MODES:
            raise bad("mode", f"must be one of {list(MODES)}, got {mode!r}")
        baseline = data.get("baseline", next(iter(variants), ""))
        if search is None and baseline not in variants:
            raise bad("baseline", f"must be one of the variants {list(variants)}, got {baseline!r}")
        test = data.get("test", False)
        if not isinstance(test, bool):
            raise bad("test", f"must be true or false, got {test!r}")
        overrides = data.get("overrides") or {}
        if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
            raise bad("overrides", f"must map dotted keys to values, got {overrides!r}")
        return cls(name=study_name, base=base, variants=variants, seeds=list(seeds), metric=metric, mode=mode,
                   baseline=baseline, test=test, overrides=dict(overrides), path=path, search=search,
                   n_trials=n_trials)

    @staticmethod
    def _search(data: dict[str, Any], bad: Any) -> dict[str, dict[str, Any]]:
        search = data["search"]
        if not isinstance(search, dict) or not search or not all(isinstance(k, str) and k for k in search):
            raise bad("search", f"must map dotted keys to ranges ({RANGE_FORMS}), got {search!r}")
        ranges = {}
        for key, value in search.items():
            try:
                ranges[key] = parse_range(value)
            except ValueError as err:
                raise bad(f"search.{key}", str(err)) from None
        return ranges

    @staticmethod
    def _variants(data: dict[str, Any], bad: Any) -> dict[str, dict[str, Any]]:
        if "variants" in data:
            variants = data["variants"]
            if not isinstance(variants, dict) or not variants:
                raise bad("variants", f"must map names to dotted overrides (`plain: {{}}`), got {variants!r}")
            for variant, overrides in variants.items():
                if not isinstance(variant, str) or not variant or "/" in variant or variant.startswith("."):
                    raise bad("variants", f"names must be folder names (no '/'), got {variant!r}")
                if overrides is not None and not (isinstance(overrides, dict)
                                                  and all(isinstance(k, str) for k in overrides)):
                    raise bad(f"variants.{variant}", f"must map dotted keys to values, got {overrides!r}")
            return {str(v): dict(o or {}) for v, o in variants.items()}
        grid = data["grid"]
        if not isinstance(grid, dict) or not grid:
            raise bad("grid", f"must map dotted keys to non-empty lists of values, got {grid!r}")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise bad(f"grid.{key}", f"must be a non-empty list of values, got {values!r}")
        combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
        return {_variant_name(c).replace("/", "_"): c for c in combos}

    def trial_overrides(self, variant: str, extra: dict[str, Any] | None = None,
                        params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One trial's dotted overrides: the defaults, then the study's, the command line's, and the variant's (or,
        for a search trial, its sampled ``params``)."""
        own = params if params is not None else self.variants[variant]
        return {**TRIAL_DEFAULTS, **self.overrides, **(extra or {}), **own}

    def search_points(self) -> dict[str, dict[str, Any]]:
        """A search's corners: every key at its low end (first choice), and at its high end (last choice); parsed by
        :meth:`check_overrides` before any trial starts."""
        def end(spec: dict[str, Any], last: bool) -> Any:
            return spec["choices"][-1 if last else 0] if spec["kind"] == "choice" else spec["high" if last else "low"]

        return {f"search ({which})": {key: end(spec, which == "high") for key, spec in (self.search or {}).items()}
                for which in ("low", "high")}

    def base_args(self) -> list[str]:
        """``--config BASE`` (an inline base as a JSON string, which jsonargparse takes for a config)."""
        return ["--config", self.base if isinstance(self.base, str) else json.dumps(self.base)]

    def pairs(self) -> list[tuple[str, int]]:
        """Every (variant, seed), seed-major so that a partial study has every variant's first seed first (none for a
        search)."""
        return [(variant, seed) for seed in self.seeds for variant in self.variants]

    def fingerprint(self) -> dict[str, Any]:
        """What a stored study must agree on with this file to be resumed."""
        if self.search is not None:
            return {"search": self.search, "seed": self.seeds[0], "metric": self.metric, "mode": self.mode}
        return {"variants": self.variants, "seeds": self.seeds, "metric": self.metric, "mode": self.mode}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.fingerprint(), sort_keys=True).encode()).hexdigest()[:16]

    def check_overrides(self, extra: dict[str, Any] | None = None) -> None:
        """Parse the base config with each variant's overrides with the ``lit-reg fit`` parser (nothing is built or
        trained), so that a misspelled key or a bad value fails before any trial starts.

        Raises:
            ValueError: naming the study file, the variant and the parser's complaint.
        """
        from lit_reg.cli import build_cli

        where = f"study file {self.path}" if self.path else "study"
        points = self.search_points() if self.search is not None else {v: None for v in self.variants}
        for variant, params in points.items():
            overrides = self.trial_overrides(variant, extra, params)
            args = ["fit", *self.base_args(), *override_args(overrides), "--print_config"]
            stdout, stderr = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                    build_cli(args)  # --print_config: parses, prints, exits; nothing is built
            except SystemExit as exit_:
                if exit_.code in (0, None):
                    self._check_metric(stdout.getvalue(), where, variant)
                    continue
                message = stderr.getvalue().split("error:", 1)[-1]
                raise ValueError(f"{where}: variant {variant!r} (overrides {overrides}): "
                                 f"{' '.join(message.split())[:600]}") from None

    def _check_metric(self, printed_config: str, where: str, variant: str) -> None:
        """Raise ``ValueError`` when the variant's model does not log the study's ``metric`` on validation."""
        model = (yaml.safe_load(printed_config) or {}).get("model") or {}
        model_class = pydoc.locate(str(model.get("class_path", "")))
        if not isinstance(model_class, type) or not hasattr(model_class, "logged_metric_names"):
            return
        logged = model_class().logged_metric_names("val")  # the names depend on the class, not its sizes
        if self.metric not in logged:
            raise ValueError(f"{where}: metric {self.metric!r} is not logged by {model_class.__name__} (variant "
                             f"{variant!r}); it logs {logged} on validation")


def parse_cli_overrides(args: list[str]) -> dict[str, Any]:
    """``["--trainer.max_epochs", "5", "--model.dropout=0.3"]`` → ``{"trainer.max_epochs": 5, "model.dropout": 0.3}``.

    Example:
        >>> parse_cli_overrides(["--trainer.max_epochs", "5", "--model.activation=relu"])
        {'trainer.max_epochs': 5, 'model.activation': 'relu'}
    """
    overrides: dict[str, Any] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--") or len(arg) == 2:
            raise ValueError(f"override {arg!r} must be a dotted option such as --trainer.max_epochs 5")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            index += 1
        elif index + 1 < len(args):
            key, value = arg[2:], args[index + 1]
            index += 2
        else:
            raise ValueError(f"override {arg} has no value: write {arg} VALUE")
        overrides[key] = yaml.safe_load(value) if value else value
    return overrides
