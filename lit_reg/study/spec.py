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
KEYS = ("name", "base", "variants", "grid", "seeds", "metric", "mode", "baseline", "test", "overrides")
MODES = ("min", "max")
#: settings every trial gets unless the study file or the command line says otherwise: the study prints one
#: progress line per trial, so Lightning's per-batch progress bar is off
TRIAL_DEFAULTS: dict[str, Any] = {"trainer.enable_progress_bar": False}


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


def _variant_name(overrides: dict[str, Any]) -> str:
    return ",".join(f"{key}={value}" for key, value in overrides.items()) or "base"


@dataclass
class StudySpec:
    """A parsed, checked study file (see ``docs/studies.md`` for the format).

    Attributes:
        name: the study's name (its folder ``logs/studies/<name>/`` and the Optuna study name).
        base: the base config: a path (resolved against the study file's folder) or an inline mapping.
        variants: variant name → its dotted overrides, in the file's order.
        seeds: the seeds every variant runs with.
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
        if ("variants" in data) == ("grid" in data):
            raise bad("variants", "or `grid` must be given, not both and not neither")
        variants = cls._variants(data, bad)
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
        baseline = data.get("baseline", next(iter(variants)))
        if baseline not in variants:
            raise bad("baseline", f"must be one of the variants {list(variants)}, got {baseline!r}")
        test = data.get("test", False)
        if not isinstance(test, bool):
            raise bad("test", f"must be true or false, got {test!r}")
        overrides = data.get("overrides") or {}
        if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
            raise bad("overrides", f"must map dotted keys to values, got {overrides!r}")
        return cls(name=study_name, base=base, variants=variants, seeds=list(seeds), metric=metric, mode=mode,
                   baseline=baseline, test=test, overrides=dict(overrides), path=path)

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

    def trial_overrides(self, variant: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """One variant's dotted overrides: the defaults, then the study's, the command line's, the variant's."""
        return {**TRIAL_DEFAULTS, **self.overrides, **(extra or {}), **self.variants[variant]}

    def base_args(self) -> list[str]:
        """``--config BASE`` (an inline base as a JSON string, which jsonargparse takes for a config)."""
        return ["--config", self.base if isinstance(self.base, str) else json.dumps(self.base)]

    def pairs(self) -> list[tuple[str, int]]:
        """Every (variant, seed), seed-major so that a partial study has every variant's first seed first."""
        return [(variant, seed) for seed in self.seeds for variant in self.variants]

    def fingerprint(self) -> dict[str, Any]:
        """What a stored study must agree on with this file to be resumed."""
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
        for variant in self.variants:
            args = ["fit", *self.base_args(), *override_args(self.trial_overrides(variant, extra)), "--print_config"]
            stdout, stderr = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                    build_cli(args)  # --print_config: parses, prints, exits; nothing is built
            except SystemExit as exit_:
                if exit_.code in (0, None):
                    self._check_metric(stdout.getvalue(), where, variant)
                    continue
                message = stderr.getvalue().split("error:", 1)[-1]
                raise ValueError(f"{where}: variant {variant!r} (overrides {self.trial_overrides(variant, extra)}): "
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
