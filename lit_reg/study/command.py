"""``lit-reg study STUDY.yaml [--workers N] [--storage URL] [--report] [--new] [--n-trials N] [--trainer.max_epochs 5
...]``."""

from __future__ import annotations

from pathlib import Path

from jsonargparse import ArgumentParser

from lit_reg.study.spec import StudySpec, parse_cli_overrides


def build_parser() -> ArgumentParser:
    """The parser of the study's own options (the dotted overrides are split off before, see :func:`split_args`)."""
    parser = ArgumentParser(
        prog="lit-reg study", exit_on_error=True,
        description="Compare the variants of a study file over seeds: every (variant, seed) an ordinary "
                    "`lit-reg fit` logging into logs/studies/<study>/<variant>/seed_<s>/, the trials kept in an "
                    "Optuna study (resumable), then a report (summary.md, summary.csv, curves.png, "
                    "weight_norms.png, trials.json). Dotted options such as --trainer.max_epochs 5 apply to every "
                    "trial. See docs/studies.md.")
    parser.add_argument("study", type=str, help="the study file (YAML)")
    parser.add_argument("--workers", type=int | None, default=None,
                        help="trials run at once, each in its own process (default: one per core)")
    parser.add_argument("--storage", type=str | None, default=None,
                        help="an Optuna storage URL (e.g. postgresql+psycopg2://user:pw@host/db) shared by several "
                             "machines; default: the journal file logs/studies/<study>/optuna.journal")
    parser.add_argument("--report", action="store_true", help="only print the report from the stored results")
    parser.add_argument("--new", action="store_true",
                        help="start the study afresh; the previous one is kept aside (renamed), never deleted")
    parser.add_argument("--n-trials", type=int | None, default=None,
                        help="for a study file with `search:`: the number of finished (complete or pruned) trials the "
                             "search should have (default: the file's `n_trials`)")
    return parser


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """Split ``args`` into the study's own and the dotted trial overrides (``--a.b VALUE`` or ``--a.b=VALUE``).

    Example:
        >>> split_args(["s.yaml", "--trainer.max_epochs", "5", "--workers", "2", "--model.dropout=0.1"])
        (['s.yaml', '--workers', '2'], ['--trainer.max_epochs', '5', '--model.dropout=0.1'])
    """
    own: list[str] = []
    overrides: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("--") and "." in arg.split("=", 1)[0]:
            taken = 1 if "=" in arg or index + 1 >= len(args) else 2
            overrides += args[index:index + taken]
            index += taken
        else:
            own.append(arg)
            index += 1
    return own, overrides


def study_main(args: list[str]) -> None:
    """Run ``lit-reg study`` with ``args`` (what follows ``study`` on the command line).

    Raises:
        ValueError, FileNotFoundError, RuntimeError: shown as one line by :func:`lit_reg.cli.cli_main`.
    """
    own, dotted = split_args(list(args))
    options = build_parser().parse_args(own)
    if options.workers is not None and options.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {options.workers}")
    n_trials = options.n_trials
    if n_trials is not None and n_trials < 1:
        raise ValueError(f"--n-trials must be at least 1, got {n_trials}")
    spec = StudySpec.from_file(options.study)
    if n_trials is not None and spec.search is None:
        raise ValueError(f"--n-trials only goes with a study file with `search:`; {options.study} has variants or "
                         "a grid (each runs once per seed)")
    extra = parse_cli_overrides(dotted)

    from lit_reg.study.engine import run_study, study_dir

    trials = run_study(spec, url=options.storage, workers=options.workers, extra=extra, new=options.new,
                       report_only=options.report, n_trials=n_trials)
    folder = study_dir(spec.name)
    if not trials:
        print(f"lit-reg study {spec.name}: no finished trials yet")
        return
    if spec.search is not None:
        _search_report(spec, options.storage, trials, n_trials if n_trials is not None else spec.n_trials)
        return
    pending = len(spec.pairs()) - len(trials)
    try:
        from lit_reg.study.report import write_report
    except ImportError:  # the report module is missing: keep the raw results
        import json

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "trials.json").write_text(json.dumps(trials, indent=1))
        print(f"{len(trials)} trials written to {folder / 'trials.json'}")
        return
    markdown = write_report(trials, folder, spec.baseline)
    print(f"\n{markdown}")
    print(f"Report in {Path(folder)}/ (summary.md, summary.csv, curves.png, weight_norms.png, trials.json); "
          f"TensorBoard: tensorboard --logdir {folder}")
    if pending:
        print(f"{pending} of {len(spec.pairs())} trials are not finished (running elsewhere, or failed): rerun "
              "the same command to run them")


def _search_report(spec: StudySpec, url: str | None, trials: list[dict], n_trials: int | None) -> None:
    """Write and print a search's report (``search.md``, ``trials.json``)."""
    from lit_reg.study.engine import param_importances, study_dir
    from lit_reg.study.report import write_search_report

    folder = study_dir(spec.name)
    importances, note = param_importances(spec, url)
    markdown = write_search_report(trials, folder, importances, note)
    print(f"\n{markdown}")
    print(f"Report in {Path(folder)}/ (search.md, trials.json); TensorBoard: tensorboard --logdir {folder}")
    if n_trials is not None and len(trials) < n_trials:
        print(f"{n_trials - len(trials)} of {n_trials} trials are not finished (running elsewhere, or failed): rerun "
              "the same command to run them")
