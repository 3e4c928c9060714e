"""Bad input on the command line: one clear error naming the culprit, fast, with every existing file untouched.

Each case runs ``lit-reg`` in-process (``cli_main``) from a folder holding tiny FashionMNIST files and an
earlier run; the "When something is wrong" table of docs/reliability.md lists the same cases (checked row by row below).
"""

from __future__ import annotations

import inspect
import re
import shlex
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml
from torchvision.datasets import FashionMNIST

from datamodules import AnimalFacesDataModule, FashionMNISTDataModule
from datamodules.fakes import write_fashion_mnist
from lit_reg.cli import build_cli, check_checkpoint_file, cli_main
from tests.datamodules.image_trees import write_tree
from tests.helpers.http_server import serve_silence

RELIABILITY_DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
#: the one line ``cli_main`` prints for an error of status 1
ERROR_LINE = re.compile(r"^lit-reg: error: (?P<message>.+) \(set LIT_REG_TRACEBACK=1 to see the full traceback\)$")
#: CPU seconds a case may take ("within a second or two"; about 1 s here, the diverging run included); the wall
#: clock is not bounded: other processes on a busy machine stretch it (over 6 s seen beside two benchmark runs)
CPU_BOUND_S = 2.0

FASHION = ["--model", "DenseClassifier", "--data", "FashionMNISTDataModule", "--data.data_dir", "data",
           "--data.download", "false", "--model.hidden_sizes", "[8]", "--trainer.max_epochs", "1",
           "--trainer.enable_progress_bar", "false"]
IMAGES = ["--model", "BitmojiClassifier", "--data", "ImageFolderDataModule", "--data.image_size", "8",
          "--data.cache_dir", "cache", "--model.hidden_sizes", "[8]", "--trainer.max_epochs", "1",
          "--trainer.enable_progress_bar", "false"]
TOY = ["--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--trainer.max_epochs", "1",
       "--trainer.enable_progress_bar", "false"]


@pytest.fixture(scope="module")
def workspace_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Built once per module (the cases touch nothing in it, which each asserts): tiny FashionMNIST in data/,
    a finished classifier run in logs/, and a few damaged files."""
    root = tmp_path_factory.mktemp("workspace")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        write_fashion_mnist("data", num_train=200, num_test=50)
        write_fashion_mnist("truncated", num_train=200, num_test=50)
        images = Path("truncated/FashionMNIST/raw/train-images-idx3-ubyte")
        images.write_bytes(images.read_bytes()[:3000])
        cli = build_cli(["fit", *FASHION])
        good = Path(cli.trainer.checkpoint_callback.best_model_path)
        Path("truncated.ckpt").write_bytes(good.read_bytes()[:2000])
        Path("good_ckpt.txt").write_text(str(good))
        write_tree(Path("images/train"), {"not_tom": 4, "tom": 4})
        write_tree(Path("images/other_classes"), {"cat": 2, "tom": 2})
        write_tree(Path("images/empty_class"), {"not_tom": 2, "tom": 0})
        write_tree(Path("images/corrupt"), {"not_tom": 3, "tom": 3})
        Path("images/corrupt/tom/1.png").write_bytes(b"not a png at all")
        Path("unknown_key.yaml").write_text(yaml.safe_dump({"model": {"class_path": "DenseClassifier",
                                                                      "init_args": {"dropoutt": 0.3}}}))
        Path("misspelled_study.yaml").write_text(yaml.safe_dump({
            "base": {"model": "DenseRegressor", "data": "ToyRegressionDataModule", "trainer": {"max_epochs": 1}},
            "variants": {"plain": {}, "typo": {"model.dropoutt": 0.3}}}))
        Path("unlogged_metric_study.yaml").write_text(yaml.safe_dump({
            "base": {"model": "DenseRegressor", "data": "ToyRegressionDataModule", "trainer": {"max_epochs": 1}},
            "variants": {"plain": {}}, "metric": "val_acc"}))
    yield root


@pytest.fixture
def workspace(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Run the test from the workspace; ``good_ckpt`` is the DenseClassifier run's best checkpoint."""
    monkeypatch.chdir(workspace_dir)
    return {"good_ckpt": (workspace_dir / "good_ckpt.txt").read_text()}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def lit_reg_lines(err: str) -> list[str]:
    """The lines of ``err`` that ``cli_main`` printed."""
    return [line for line in err.splitlines() if line.startswith("lit-reg") or "LIT_REG_TRACEBACK" in line]


def raised_by(call: Callable[[], object]) -> BaseException:
    """The exception ``call`` raises (SystemExit included); fails if it raises none."""
    try:
        call()
    except BaseException as error:  # SystemExit is one of the answers looked for
        return error
    raise AssertionError("nothing was raised")


CASES = [
    ("missing data dir, download off", ["fit", *FASHION, "--data.data_dir", "nowhere"], 1,
     r"FashionMNIST not found in data_dir='nowhere' \(download=False\): no train-images-idx3-ubyte, .* "
     r"dataset-fashion-mnist"),
    ("missing data dir, download on, no network", ["fit", *FASHION, "--data.data_dir", "nowhere",
                                                   "--data.download", "true"], 1,
     r"FashionMNIST not found in data_dir='nowhere' \(download failed: .*network"),
    ("truncated IDX file", ["fit", *FASHION, "--data.data_dir", "truncated"], 1,
     r"truncated/FashionMNIST/raw/train-images-idx3-ubyte is truncated or corrupt: it has 2984 bytes of data "
     r"where its header announces \(200, 28, 28\)\. Replace it"),
    ("dropout outside [0, 1)", ["fit", *FASHION, "--model.dropout", "1.5"], 1,
     r"`dropout` must be in \[0\.0, 1\.0\), got 1\.5"),
    ("negative learning rate", ["fit", *FASHION, "--model.lr", "-0.1"], 1, r"`lr` must be in \(0\.0, inf\), got -0\.1"),
    ("negative weight decay", ["fit", *FASHION, "--model.weight_decay=-0.0001"], 1,
     r"`weight_decay` must be in \[0\.0, inf\), got -0\.0001"),
    ("unknown activation", ["fit", *FASHION, "--model.activation", "swish"], 1,
     r"`activation` must be one of \['elu', 'leaky_relu', 'relu', 'sigmoid', 'tanh'\], got 'swish'"),
    ("unknown optimizer", ["fit", *FASHION, "--model.optimizer", "lbfgs"], 1,
     r"`optimizer` must be one of \['adagrad', 'adam', 'adamax', 'adamw', 'rmsprop', 'sgd'\], got 'lbfgs'"),
    ("momentum with an optimizer without it", ["fit", *FASHION, "--model.momentum", "0.9"], 1,
     r"`momentum` applies only to optimizer \['sgd', 'rmsprop'\]"),
    ("a zero in hidden_sizes", ["fit", *FASHION, "--model.hidden_sizes", "[8, 0]"], 1,
     r"`hidden_sizes` must be a list of positive integers \(\[\] for no hidden layer\), got \[8, 0\]"),
    ("batch_size <= 0", ["fit", *FASHION, "--data.batch_size", "0"], 1,
     r"`batch_size` must be a positive integer, got 0"),
    ("val_fraction leaving no training sample", ["fit", *FASHION, "--data.val_fraction", "0.999"], 1,
     r"`val_fraction`=0\.999 of 200 samples leaves 200 for validation and 0 for training"),
    ("val_fraction leaving no validation sample", ["fit", *FASHION, "--data.val_fraction", "0.001"], 1,
     r"`val_fraction`=0\.001 of 200 samples leaves 0 for validation"),
    ("unknown learning-rate scheduler", ["fit", *FASHION, "--model.lr_scheduler", "warp"], 1,
     r"`lr_scheduler` must be one of \[.*'cosine'.*\], got 'warp'"),
    ("unknown key in optimizer_kwargs", ["fit", *FASHION, "--model.optimizer_kwargs", '{"beta": [0.9, 0.99]}'], 1,
     r"`optimizer_kwargs` has \['beta'\], which optimizer='adam' \(Adam\) does not take; it takes \['betas', "),
    ("negative warm-up", ["fit", *FASHION, "--model.lr_warmup=-1"], 1,
     r"`lr_warmup` must be an integer >= 0 \(the scheduler steps of linear warm-up\), got -1"),
    ("negative input noise", ["fit", *FASHION, "--model.input_noise=-0.1"], 1,
     r"`input_noise` must be in \[0\.0, inf\), got -0\.1"),
    ("negative activity penalty", ["fit", *FASHION, "--model.activity_l1=-0.01"], 1,
     r"`activity_l1` must be in \[0\.0, inf\), got -0\.01"),
    ("negative orthogonality penalty", ["fit", *FASHION, "--model.orthogonal_penalty=-1"], 1,
     r"`orthogonal_penalty` must be in \[0\.0, inf\), got -1"),
    ("max_norm <= 0", ["fit", *FASHION, "--model.max_norm", "0"], 1, r"`max_norm` must be in \(0\.0, inf\), got 0"),
    ("mixup alpha <= 0", ["fit", *FASHION, "--model.mixup_alpha", "0"], 1,
     r"`mixup_alpha` must be in \(0\.0, inf\), got 0"),
    ("mixup on a regressor", ["fit", *TOY, "--model.mixup_alpha", "0.2"], 1,
     r"`mixup_alpha` mixes class targets, but DenseRegressor is a regressor; leave mixup_alpha unset"),
    ("unknown dropout mode", ["fit", *FASHION, "--model.dropout_mode", "spatial"], 1,
     r"`dropout_mode` must be one of \['alpha', 'bernoulli', 'dropconnect', 'gaussian'\], got 'spatial'"),
    ("unknown weight-averaging callback", ["fit", *FASHION, "--weight_averaging", "Polyak"], 2,
     r"Parser key \"weight_averaging\":(.|\n)*Polyak"),
    ("unknown label_noise_mode", ["fit", *FASHION, "--data.label_noise", "0.5", "--data.label_noise_mode", "swap"],
     1, r"`label_noise_mode` must be one of \['other_class', 'shuffle'\], got 'swap'"),
    ("unknown early-stopping rule", ["fit", *FASHION, "--early_stopping.rule", "nope"], 1,
     r"`rule` must be one of \['patience', 'consecutive_increase'\], got 'nope'"),
    ("classifier on regression data", ["fit", "--model", "DenseClassifier", "--data", "ToyRegressionDataModule"], 1,
     r"ToyRegressionDataModule is a regression datamodule \(it gives output_size\) but DenseClassifier is a "
     r"classifier: use --model DenseRegressor"),
    ("regressor on class labels", ["fit", *FASHION, "--model", "DenseRegressor"], 1,
     r"FashionMNISTDataModule is a classification datamodule \(it gives num_classes and classes\) but DenseRegressor "
     r"is a regressor: use --model DenseClassifier or --model BitmojiClassifier \(two classes\)"),
    ("restore_best_weights not a bool", ["fit", *FASHION, "--checkpoint.restore_best_weights", "maybe"], 2,
     r"restore_best_weights"),
    ("image folder missing", ["fit", *IMAGES, "--data.train_dir", "images/nowhere"], 1,
     r"`train_dir` directory images/nowhere does not exist"),
    ("corrupt image file", ["fit", *IMAGES, "--data.train_dir", "images/corrupt"], 1,
     r"Cannot read image file images/corrupt/tom/1\.png .*fix or remove the file"),
    ("empty class folder", ["fit", *IMAGES, "--data.train_dir", "images/empty_class"], 1,
     r"Class folder images/empty_class/tom has no images"),
    ("validation classes differ from training classes", ["fit", *IMAGES, "--data.train_dir", "images/train",
                                                         "--data.val_dir", "images/other_classes"], 1,
     r"`val_dir` images/other_classes has classes \['cat', 'tom'\] but `train_dir` images/train has "
     r"\['not_tom', 'tom'\]"),
    ("unknown toy data set", ["fit", *TOY, "--data.dataset", "cubic"], 2, r"dataset.*cubic"),
    ("truncated checkpoint", ["test", *FASHION, "--ckpt_path", "truncated.ckpt"], 1,
     r"checkpoint truncated\.ckpt cannot be read .*truncated or not a Lightning checkpoint"),
    ("checkpoint of another model class", ["test", *TOY, "--ckpt_path", "GOOD"], 1,
     r"checkpoint .*was saved by lit_reg(\.models)?\.DenseClassifier, but the model is .*DenseRegressor: pass "
     r"--model DenseClassifier"),
    ("unknown key in a config file", ["fit", "--config", "unknown_key.yaml", *FASHION[2:]], 2, r"dropoutt"),
    ("unknown option on the command line", ["fit", *FASHION, "--model.dropoutt", "0.3"], 2, r"dropoutt"),
    ("study file missing", ["study", "nowhere.yaml", "--workers", "1"], 1, r"^study file nowhere\.yaml not found$"),
    ("study metric the model does not log", ["study", "unlogged_metric_study.yaml", "--workers", "1"], 1,
     r"^study file unlogged_metric_study\.yaml: metric 'val_acc' is not logged by DenseRegressor \(variant 'plain'\)"),
    ("misspelled dotted key in a study variant", ["study", "misspelled_study.yaml", "--workers", "1"], 1,
     r"^study file misspelled_study\.yaml: variant 'typo' \(overrides \{.*'model\.dropoutt': 0\.3\}\): .*dropoutt"),
    ("training loss becomes NaN/inf", ["fit", *TOY, "--model.lr", "1e6"], 1,
     r"Training diverged: the training loss became (nan|inf) at epoch 0, step \d+ \(learning rate 1000000\.0\)\. "
     r"(The checkpoints written so far are finite and kept .*)?Lower the learning rate"),
]


@pytest.mark.parametrize(("case", "args", "status", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error(workspace, no_network, capsys, case, args, status, message):
    args = [workspace["good_ckpt"] if a == "GOOD" else a for a in args]
    before = snapshot(Path.cwd())
    cpu_start = time.process_time()
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    cpu = time.process_time() - cpu_start
    err = capsys.readouterr().err
    assert exit_info.value.code == status
    assert "Traceback" not in err
    if status == 1:  # ours: exactly one line, the message then the hint
        lines = lit_reg_lines(err)
        assert len(lines) == 1, lines
        match = ERROR_LINE.match(lines[0])
        assert match, lines[0]
        assert re.search(message, match["message"]), lines[0]
    else:  # jsonargparse's parser error: the usage, a tip, then "error:" and what was not accepted
        assert lit_reg_lines(err) == []
        assert "usage:" in err and re.search(r"^error: ", err, re.MULTILINE), err[-2000:]
        assert re.search(message, err[err.index("error: "):]), err[-2000:]
    assert cpu < CPU_BOUND_S, cpu  # CPU time, not wall time: a busy machine does not fail it
    after = snapshot(Path.cwd())
    assert {k: v for k, v in after.items() if k in before} == before  # nothing existing was touched
    assert not [k for k in after if k not in before and not k.startswith("logs/")]  # nothing new outside logs/


#: the "When something is wrong" table of docs/reliability.md, row by row (its first column) → the cases (ids in
#: CASES) or the tests of this module that pin it
TABLE_ROWS = {
    "data folder missing, `--data.download false`": ["missing data dir, download off"],
    "data folder missing, download on, no network": [
        "missing data dir, download on, no network", "test_download_from_a_mirror_that_never_answers_times_out"],
    "truncated IDX file": ["truncated IDX file"],
    "`--model.dropout 1.5`": ["dropout outside [0, 1)"],
    "`--model.lr -0.1`, `--model.weight_decay=-0.0001`": ["negative learning rate", "negative weight decay"],
    "`--model.activation swish`, `--model.optimizer lbfgs`": ["unknown activation", "unknown optimizer"],
    "`--model.momentum 0.9` with Adam": ["momentum with an optimizer without it"],
    "`--model.hidden_sizes '[8, 0]'`": ["a zero in hidden_sizes"],
    "`--data.batch_size 0`": ["batch_size <= 0"],
    "`--data.val_fraction 0.999` (or `0.001`)": ["val_fraction leaving no training sample",
                                                 "val_fraction leaving no validation sample"],
    "`--model.lr_scheduler warp`": ["unknown learning-rate scheduler"],
    "`--model.optimizer_kwargs '{\"beta\": [0.9, 0.99]}'`": ["unknown key in optimizer_kwargs"],
    "`--model.lr_warmup=-1`": ["negative warm-up"],
    "`--model.input_noise=-0.1`, `--model.activity_l1=-0.01`, `--model.orthogonal_penalty=-1`": [
        "negative input noise", "negative activity penalty", "negative orthogonality penalty"],
    "`--model.max_norm 0`, `--model.mixup_alpha 0`": ["max_norm <= 0", "mixup alpha <= 0"],
    "`--model.mixup_alpha 0.2` on a regressor": ["mixup on a regressor"],
    "`--model.dropout_mode spatial`": ["unknown dropout mode"],
    "`--weight_averaging Polyak` (scripts: `default_callbacks(weight_averaging=\"polyak\")`)": [
        "unknown weight-averaging callback", "test_unknown_weight_averaging_name_in_a_script"],
    "`--data.label_noise_mode swap`": ["unknown label_noise_mode"],
    "`--early_stopping.rule nope`": ["unknown early-stopping rule"],
    "a classifier on regression data, or a regressor on class labels": ["classifier on regression data",
                                                                         "regressor on class labels"],
    "`--checkpoint.restore_best_weights maybe`": ["restore_best_weights not a bool"],
    "image folder missing": ["image folder missing"],
    "corrupt image file in an ImageFolder tree": ["corrupt image file"],
    "empty class folder": ["empty class folder"],
    "validation classes differ from training classes": ["validation classes differ from training classes"],
    "model `input_size` does not match the data (scripts; the CLI links it)": [
        "test_input_size_that_does_not_match_the_data_in_a_script"],
    "`--data.dataset cubic` (toy data)": ["unknown toy data set"],
    "truncated checkpoint": ["truncated checkpoint"],
    "checkpoint of another model class": ["checkpoint of another model class",
                                          "test_checkpoint_check_names_both_classes",
                                          "test_resuming_from_a_checkpoint_of_another_class_in_a_script"],
    "unknown key in a config file or on the command line": ["unknown key in a config file",
                                                            "unknown option on the command line"],
    "training loss becomes NaN/inf (`--model.lr 1e6`)": ["training loss becomes NaN/inf"],
    "`lit-reg study` with a study file that does not exist": ["study file missing"],
    "a study's `metric` that its model does not log": ["study metric the model does not log"],
    "a misspelled dotted key in a study's variant (`model.dropoutt: 0.3`)": [
        "misspelled dotted key in a study variant"],
}


def table_rows() -> list[str]:
    """The first column of each row of the "When something is wrong" table of docs/reliability.md."""
    section = RELIABILITY_DOC.read_text().split("\n## When something is wrong\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # after the header and |---|
    return [row.split(" | ", 1)[0].removeprefix("| ").strip() for row in rows]


def test_every_row_of_the_bad_input_table_has_a_case_and_every_case_a_row():
    rows = table_rows()
    assert len(rows) == len(set(rows))
    assert set(rows) == set(TABLE_ROWS), "docs/reliability.md's table and TABLE_ROWS differ"
    case_ids = [case[0] for case in CASES]
    tests = {name for name, value in globals().items() if name.startswith("test_") and callable(value)}
    pinned = [pin for pins in TABLE_ROWS.values() for pin in pins]
    assert [pin for pin in pinned if pin not in case_ids and pin not in tests] == []
    assert [case for case in case_ids if case not in pinned] == []  # every case is a row of the table


@pytest.mark.parametrize("row", list(TABLE_ROWS))
def test_options_named_in_a_table_row_are_the_ones_the_case_passes(row):
    """Each ``--option value`` the table's first column shows is passed, as written, by one of the row's cases."""
    args_of = {case[0]: case[1] for case in CASES}
    cases = [args_of[pin] for pin in TABLE_ROWS[row] if pin in args_of]
    for option in (span for span in re.findall(r"`([^`]+)`", row) if span.startswith("--")):
        words = shlex.split(option)
        assert any(args[i:i + len(words)] == words for args in cases for i in range(len(args))), (row, option)


@pytest.mark.parametrize(("args", "error_type", "message"), [
    (["fit", *FASHION, "--model.dropout", "1.5"], ValueError, r"`dropout` must be in \[0\.0, 1\.0\), got 1\.5"),
    (["fit", *FASHION, "--data.data_dir", "nowhere"], RuntimeError, r"FashionMNIST not found in data_dir='nowhere'"),
], ids=["ValueError from the model", "RuntimeError from the data"])
def test_traceback_variable_reraises_the_original_error(workspace, monkeypatch, capsys, args, error_type, message):
    monkeypatch.setenv("LIT_REG_TRACEBACK", "1")
    error = raised_by(lambda: cli_main(args))
    assert type(error) is error_type, repr(error)
    assert re.search(message, str(error)), str(error)
    assert lit_reg_lines(capsys.readouterr().err) == []


def test_download_timeout_defaults_to_ten_seconds():
    """docs/reliability.md: "sockets time out after `download_timeout`, 10 s"."""
    for datamodule in (FashionMNISTDataModule, AnimalFacesDataModule):
        assert inspect.signature(datamodule).parameters["download_timeout"].default == 10.0


def test_download_from_a_mirror_that_never_answers_times_out(in_tmp_dir, monkeypatch, capsys):
    """A mirror that accepts the connection and never sends a byte: ``--data.download_timeout`` ends the wait."""
    with serve_silence(lifetime_s=10) as (url, requests):
        monkeypatch.setattr(FashionMNIST, "mirrors", [url])
        start = time.monotonic()
        error = raised_by(lambda: cli_main(["fit", *FASHION, "--data.data_dir", "nowhere", "--data.download", "true",
                                            "--data.download_timeout", "0.5"]))
        elapsed = time.monotonic() - start
        assert requests  # it did reach the server
    assert elapsed < 10  # the server's lifetime: the wait ended before the server gave up (the message says how)
    assert isinstance(error, SystemExit) and error.code == 1, repr(error)
    lines = lit_reg_lines(capsys.readouterr().err)
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), lines
    assert re.search(r"FashionMNIST not found in data_dir='nowhere' \(download failed: .*timed out", lines[0])
    assert [p for p in in_tmp_dir.rglob("*") if p.is_file() and not p.is_relative_to(in_tmp_dir / "logs")] == []


def test_animal_faces_download_from_a_server_that_never_answers_times_out(tmp_path):
    data_dir = tmp_path / "data"
    with serve_silence(lifetime_s=10) as (url, requests):
        datamodule = AnimalFacesDataModule(str(data_dir), url=f"{url}afhq.zip", download_timeout=0.5, cache_dir=None)
        start = time.monotonic()
        error = raised_by(datamodule.prepare_data)
        elapsed = time.monotonic() - start
        assert requests
    assert elapsed < 10  # the server's lifetime: the timeout ended the wait, not the server
    assert type(error) is RuntimeError, repr(error)
    assert re.match(rf"Downloading the Animal Faces archive afhq\.zip from {url}afhq\.zip into {data_dir}/ failed "
                    r"\(download failed: .*timed out.*\)\. The partial file was removed", str(error)), str(error)
    assert list(data_dir.rglob("*")) == []


def test_input_size_that_does_not_match_the_data_in_a_script(workspace, make_trainer):
    from datamodules import ImageFolderDataModule
    from lit_reg.models import BitmojiClassifier

    data = ImageFolderDataModule("images/train", image_size=16, val_fraction=0.5, cache_dir=None)
    with pytest.raises(ValueError, match=r"ImageFolderDataModule gives 256 input features per sample but "
                                         r"BitmojiClassifier has input_size=2500"):
        make_trainer(max_epochs=1).fit(BitmojiClassifier(), datamodule=data)


def test_checkpoint_check_names_both_classes(workspace):
    """``check_checkpoint_file`` (the CLI's check) refuses a checkpoint of another model class by name and
    returns the checkpoint for its own class."""
    path = workspace["good_ckpt"]
    error = raised_by(lambda: check_checkpoint_file(path, "lit_reg.models.DenseRegressor"))
    assert (type(error), str(error)) == (ValueError, (
        f"checkpoint {path} was saved by lit_reg.DenseClassifier, but the model is lit_reg.models.DenseRegressor: "
        f"pass --model DenseClassifier or a checkpoint of DenseRegressor."))
    checkpoint = check_checkpoint_file(path, "lit_reg.models.DenseClassifier")
    assert checkpoint["hyper_parameters"]["_class_path"] == "lit_reg.DenseClassifier"
    assert torch.equal(checkpoint["state_dict"]["net.0.weight"],
                       torch.load(path, weights_only=True)["state_dict"]["net.0.weight"])



def test_unreadable_checkpoint_error_names_the_loaders_error(tmp_path):
    """The message carries torch's own error type and text (whitespace collapsed, at most 200 characters)."""
    path = tmp_path / "bad.ckpt"
    path.write_bytes(b"not a checkpoint\n\nat all")
    try:
        torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - whatever torch raises is what the message must name
        expected = f"({type(err).__name__}: {' '.join(str(err).split())[:200]}): it is truncated"
    error = raised_by(lambda: check_checkpoint_file(str(path)))
    assert type(error) is ValueError and expected in str(error), str(error)


class _RunsCode:
    """Unpickling it would create ``marker``: what a malicious checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_unread(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _RunsCode(marker)}, path)
    error = raised_by(lambda: check_checkpoint_file(str(path)))
    assert type(error) is ValueError and "cannot be read" in str(error), repr(error)
    assert not marker.exists()

def test_resuming_from_a_checkpoint_of_another_class_in_a_script(workspace, make_trainer):
    from datamodules import ToyRegressionDataModule
    from lit_reg.models import DenseClassifier, DenseRegressor

    checkpoint = torch.load(workspace["good_ckpt"], weights_only=True)
    expected = ("the checkpoint was saved by DenseClassifier, not DenseRegressor: load it with "
                "DenseClassifier.load_from_checkpoint(...) or pick a checkpoint of DenseRegressor")
    error = raised_by(lambda: DenseRegressor().on_load_checkpoint(checkpoint))
    assert (type(error), str(error)) == (ValueError, expected)
    DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[8]).on_load_checkpoint(checkpoint)  # its own: fine
    trainer = make_trainer(max_epochs=2)
    error = raised_by(lambda: trainer.fit(DenseRegressor(), datamodule=ToyRegressionDataModule(),
                                          ckpt_path=workspace["good_ckpt"]))
    assert (type(error), str(error)) == (ValueError, expected)


def test_unknown_weight_averaging_name_in_a_script():
    from lit_reg import default_callbacks

    with pytest.raises(ValueError, match=r"^`weight_averaging` must be one of \['ema', 'swa'\], got 'polyak'$"):
        default_callbacks(weight_averaging="polyak")
