"""The study file: parsing, defaults and one clear error per bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lit_reg.study.command import split_args
from lit_reg.study.spec import StudySpec, parse_cli_overrides

TOY = Path(__file__).resolve().parents[2] / "configs" / "toy_regression.yaml"


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_variants_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, f"base: {TOY}\nvariants: {{plain: {{}}, wd: {{model.weight_decay: 0.1}}}}\n"
                           "seeds: [0, 1]\n")
    spec = StudySpec.from_file(path)
    assert spec.name == "s" and spec.baseline == "plain" and spec.metric == "val_loss" and spec.mode == "min"
    assert spec.variants == {"plain": {}, "wd": {"model.weight_decay": 0.1}}
    assert spec.pairs() == [("plain", 0), ("wd", 0), ("plain", 1), ("wd", 1)]
    assert spec.base == str(TOY)


def test_base_relative_to_study_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path, "trainer: {max_epochs: 1}\n", "base.yaml")
    spec = StudySpec.from_file(write(tmp_path, "base: ../base.yaml\nvariants: {a: {}}\n", "sub/x.yaml"))
    assert Path(spec.base) == tmp_path / "sub" / ".." / "base.yaml"


def test_grid_is_the_product(tmp_path: Path) -> None:
    spec = StudySpec.from_file(write(tmp_path, "name: g\nbase: {}\nmetric: val_acc\n"
                                               "grid: {model.dropout: [0.0, 0.5], model.lr: [0.1, 0.01]}\n"))
    assert list(spec.variants) == ["model.dropout=0.0,model.lr=0.1", "model.dropout=0.0,model.lr=0.01",
                                   "model.dropout=0.5,model.lr=0.1", "model.dropout=0.5,model.lr=0.01"]
    assert spec.variants["model.dropout=0.5,model.lr=0.01"] == {"model.dropout": 0.5, "model.lr": 0.01}
    assert spec.mode == "max" and spec.name == "g"


def test_digest_follows_variants_and_seeds() -> None:
    a = StudySpec.from_dict({"base": {}, "variants": {"a": {}}, "seeds": [0]}, name="x")
    b = StudySpec.from_dict({"base": {}, "variants": {"a": {}}, "seeds": [0, 1]}, name="x")
    c = StudySpec.from_dict({"base": {}, "variants": {"a": {"model.lr": 1}}, "seeds": [0]}, name="x")
    assert len({a.digest(), b.digest(), c.digest()}) == 3
    assert a.digest() == StudySpec.from_dict({"base": {}, "variants": {"a": {}}, "seeds": [0]}, name="y").digest()


@pytest.mark.parametrize(("text", "match"), [
    ("base: {}\nvariants: {a: {}}\nseed: [0]\n", r"`seed` is not a study key; allowed: \['name'"),
    ("base: {}\nvariants: {a: {}}\ngrid: {model.lr: [1]}\n", r"`variants` or `grid` must be given, not both"),
    ("base: {}\n", r"`variants` or `grid` must be given"),
    ("base: {}\ngrid: {}\n", r"`grid` must map dotted keys to non-empty lists"),
    ("base: {}\ngrid: {model.lr: []}\n", r"`grid.model.lr` must be a non-empty list"),
    ("base: {}\nvariants: {}\n", r"`variants` must map names"),
    ("base: {}\nvariants: {a: [1]}\n", r"`variants.a` must map dotted keys"),
    ("base: {}\nvariants: {a: {}}\nbaseline: b\n", r"`baseline` must be one of the variants \['a'\], got 'b'"),
    ("base: {}\nvariants: {a: {}}\nseeds: [0, 0]\n", r"`seeds` must be a non-empty list of distinct integers"),
    ("base: {}\nvariants: {a: {}}\nseeds: []\n", r"`seeds` must be a non-empty list"),
    ("base: {}\nvariants: {a: {}}\nmode: up\n", r"`mode` must be one of \['min', 'max'\], got 'up'"),
    ("base: {}\nvariants: {a: {}}\ntest: maybe\n", r"`test` must be true or false"),
    ("base: missing.yaml\nvariants: {a: {}}\n", r"`base` names .*missing.yaml, which does not exist"),
    ("base: 3\nvariants: {a: {}}\n", r"`base` must be a path"),
    ("name: a/b\nbase: {}\nvariants: {a: {}}\n", r"`name` must be a folder name"),
    ("- 1\n- 2\n", r"must be a YAML mapping"),
    ("base: {\nvariants: [\n", r"is not YAML"),
])
def test_bad_study_file_names_the_file_and_key(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=match) as info:
        StudySpec.from_file(path)
    assert str(path) in str(info.value)


def test_missing_study_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="study file .*nope.yaml not found"):
        StudySpec.from_file(tmp_path / "nope.yaml")


def test_misspelled_override_fails_before_training(tmp_path: Path) -> None:
    spec = StudySpec.from_file(write(tmp_path, f"base: {TOY}\nvariants: {{plain: {{}}, "
                                               "typo: {model.weight_decayy: 0.1}}\n"))
    with pytest.raises(ValueError, match=r"variant 'typo' .*weight_decayy") as info:
        spec.check_overrides()
    assert str(tmp_path / "s.yaml") in str(info.value)
    assert not (tmp_path / "logs").exists()


def test_a_metric_the_model_does_not_log_fails_before_training(tmp_path: Path) -> None:
    spec = StudySpec.from_file(write(tmp_path, f"base: {TOY}\nvariants: {{plain: {{}}}}\nmetric: val_acc\n"))
    with pytest.raises(ValueError, match=r"metric 'val_acc' is not logged by DenseRegressor \(variant 'plain'\); it "
                                         r"logs \['val_loss', 'val_mae', 'val_r2'\] on validation"):
        spec.check_overrides()
    assert not (tmp_path / "logs").exists()
    StudySpec.from_file(write(tmp_path, f"base: {TOY}\nvariants: {{plain: {{}}}}\nmetric: val_r2\n")).check_overrides()


def test_cli_overrides_split_and_parsed() -> None:
    own, dotted = split_args(["s.yaml", "--trainer.max_epochs", "5", "--new", "--model.hidden_sizes=[4]"])
    assert own == ["s.yaml", "--new"]
    assert parse_cli_overrides(dotted) == {"trainer.max_epochs": 5, "model.hidden_sizes": [4]}
    with pytest.raises(ValueError, match="override --model.lr has no value"):
        parse_cli_overrides(["--model.lr"])


SHIPPED = sorted((Path(__file__).resolve().parents[2] / "configs" / "studies").glob("*.yaml"))


@pytest.mark.parametrize("study_file", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_study_parses_and_its_variants_are_accepted(study_file: Path, monkeypatch) -> None:
    monkeypatch.chdir(study_file.parents[2])  # the shipped studies' data paths are relative to the repository root
    spec = StudySpec.from_file(study_file)
    assert len(spec.pairs()) == len(spec.variants) * len(spec.seeds) >= 6
    spec.check_overrides()
