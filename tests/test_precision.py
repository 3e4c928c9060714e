"""bf16 mixed precision everywhere (models, callbacks, checkpoints, data path) and ``precision: auto``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import lit_reg.precision as precision
from datamodules import (
    FashionMNISTDataModule,
    ImageFolderDataModule,
    ToyClassificationDataModule,
    ToyRegressionDataModule,
)
from lit_reg import default_callbacks, default_logger
from lit_reg.callbacks import DivergenceError, DivergenceGuard, LearningCurves, WeightNormMonitor, frobenius_norm
from lit_reg.cli import build_cli, cli_main
from lit_reg.models import BitmojiClassifier, DenseClassifier, DenseRegressor
from lit_reg.models.regularizers import orthogonality_penalty
from lit_reg.precision import auto_precision, cpu_flags, cpu_supports_bf16, resolve_precision
from tests.datamodules.image_trees import write_tree

BF16 = "bf16-mixed"
REAL_FASHION = os.environ.get("LIT_REG_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")


# ------------------------------------------------------------------------------------------ precision: auto
def write_cpuinfo(path: Path, flags: str) -> Path:
    path.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: {flags}\n\n"
                    f"processor\t: 1\nflags\t\t: {flags}\n")
    return path


@pytest.fixture
def fake_cpu(tmp_path, monkeypatch):
    """Point the detection at a fake /proc/cpuinfo and hide any CUDA device; returns a setter for the flags."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def set_flags(flags: str) -> None:
        monkeypatch.setattr(precision, "CPUINFO", str(write_cpuinfo(tmp_path / "cpuinfo", flags)))

    return set_flags


@pytest.mark.parametrize(("flags", "expected"), [
    ("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", True),
    ("fpu sse2 avx2 avx512f amx_bf16 amx_tile", True),
    ("fpu sse2 avx2 avx512f avx512_vnni", False),  # AVX-512 without BF16: bf16 is emulated, slower than fp32
    ("fpu sse2 avx2", False),
])
def test_cpu_bf16_is_read_from_the_cpuinfo_flags(tmp_path, flags, expected):
    path = write_cpuinfo(tmp_path / "cpuinfo", flags)
    assert cpu_supports_bf16(path) is expected
    assert "avx2" in cpu_flags(path) and "processor" not in cpu_flags(path)


def test_no_cpuinfo_means_no_bf16(tmp_path):
    assert cpu_flags(tmp_path / "missing") == set() and not cpu_supports_bf16(tmp_path / "missing")


@pytest.mark.parametrize("accelerator", ["cpu", "auto", "CPU", CPUAccelerator()])
def test_auto_precision_on_a_cpu_follows_its_flags(fake_cpu, accelerator):
    fake_cpu("avx2 avx512f avx512_bf16")
    assert auto_precision(accelerator) == "bf16-mixed"
    fake_cpu("avx2 avx512f")
    assert auto_precision(accelerator) == "32-true"


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "auto"])
def test_auto_precision_on_cuda_asks_for_native_bf16_not_the_cpu(fake_cpu, monkeypatch, native, expected,
                                                                  accelerator):
    fake_cpu("avx2" if native else "avx512_bf16")  # the CPU's answer is the opposite: it must not be used
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    asked = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return native or including_emulation  # an emulating GPU says True when emulation counts

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert auto_precision(accelerator) == expected
    assert asked == [False]


def test_auto_precision_elsewhere_is_full_precision(fake_cpu):
    fake_cpu("avx512_bf16")
    assert auto_precision("mps") == auto_precision("tpu") == "32-true"


def test_resolve_precision_resolves_auto_and_refuses_unknown_values(fake_cpu):
    fake_cpu("amx_bf16")
    assert resolve_precision("auto", "cpu") == resolve_precision("AUTO") == "bf16-mixed"
    assert [resolve_precision(v) for v in (32, "32-true", "bf16", "16-mixed", None)] == [
        32, "32-true", "bf16", "16-mixed", None]
    for bad in ("bf32", "fp16", 8, True):
        with pytest.raises(ValueError, match=r"`precision` must be one of \[64, 32, 16, .*'auto'\], got"):
            resolve_precision(bad)


def cli_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["fit", "--model", "DenseRegressor", "--model.hidden_sizes", "[4]", "--data", "ToyRegressionDataModule",
            "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
            *extra]


@pytest.mark.parametrize(("flags", "expected"), [("avx512_bf16", "bf16-mixed"), ("avx2", "32-true")])
def test_cli_resolves_trainer_precision_auto_and_records_it(fake_cpu, tmp_path, flags, expected):
    fake_cpu(flags)
    cli = build_cli(cli_args(tmp_path, "--trainer.precision", "auto", "--trainer.accelerator", "cpu"))
    assert cli.trainer.precision == expected
    assert cli.config.fit.trainer.precision == expected
    saved = (Path(cli.trainer.log_dir) / "config.yaml").read_text()
    assert f"precision: {expected}" in saved


def test_cli_takes_precision_auto_from_a_yaml_config(fake_cpu, tmp_path):
    fake_cpu("amx_bf16")
    config = tmp_path / "auto.yaml"
    config.write_text("trainer:\n  precision: auto\n")
    cli = build_cli(cli_args(tmp_path, "--config", str(config))[1:], run=False)  # no subcommand
    assert cli.trainer.precision == "bf16-mixed"


def test_cli_keeps_lightnings_own_values_and_default(tmp_path):
    def trainer_precision(*extra: str) -> str:
        return build_cli(cli_args(tmp_path, *extra)[1:], run=False).trainer.precision

    assert trainer_precision("--trainer.precision", "bf16") == "bf16-mixed"
    assert trainer_precision("--trainer.precision", "32") == "32-true"
    assert trainer_precision() == "32-true"  # auto is opt-in


def test_cli_refuses_a_bad_precision_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(cli_args(tmp_path, "--trainer.precision", "bf17"))
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lit-reg: error: `precision` must be one of")
    assert "'auto'" in lines[0] and "got 'bf17'" in lines[0]


# ------------------------------------------------------------------------------------------ bf16 everywhere
class ForwardDtypes(Callback):
    """Records the dtype of the network's output in training steps, and the first training batch's inputs."""

    def __init__(self) -> None:
        self.output_dtypes: set[torch.dtype] = set()
        self.first_batch: torch.Tensor | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.net.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        if module.training:
            self.output_dtypes.add(output.dtype)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_batch is None:
            self.first_batch = batch[0].clone()


def bf16_fit(make_trainer, model, datamodule, epochs: int = 2, **trainer_kwargs):
    dtypes = ForwardDtypes()
    callbacks = [dtypes, *trainer_kwargs.pop("callbacks", [])]
    trainer = make_trainer(max_epochs=epochs, precision=BF16, callbacks=callbacks, **trainer_kwargs)
    trainer.fit(model, datamodule=datamodule)
    return trainer, dtypes


CLASSIFIER_OPTIONS = {
    "batchnorm_dropout_l1_l2": dict(batchnorm=True, dropout=0.3, l1_penalty=1e-4, l2_penalty=1e-4),
    "input_noise_gaussian": dict(input_noise=0.2, dropout=0.2, dropout_mode="gaussian"),
    "dropconnect_max_norm": dict(dropout=0.2, dropout_mode="dropconnect", max_norm=0.5),
    "activity_orthogonal_mixup": dict(activity_l1=1e-3, activity_l2=1e-3, orthogonal_penalty=1e-3, mixup_alpha=0.4),
}


@pytest.mark.parametrize("options", CLASSIFIER_OPTIONS.values(), ids=CLASSIFIER_OPTIONS.keys())
def test_classifier_trains_in_bf16_with_every_regularizer(make_trainer, fashion_root, options):
    torch.manual_seed(0)
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[32, 16], lr=3e-3, **options)
    model.keep_last_train_batch = True
    trainer, dtypes = bf16_fit(make_trainer, model, FashionMNISTDataModule(str(fashion_root), batch_size=32))
    assert dtypes.output_dtypes == {torch.bfloat16}  # autocast was on
    assert dtypes.first_batch.dtype == torch.float32  # the data path ran outside it
    metrics = trainer.callback_metrics
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(metrics)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in metrics.values())
    assert metrics["train_loss"] < 2.3  # below chance level's log(10): it learned
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    preds, _ = model.last_train_batch
    assert preds.dtype == torch.float32  # the metrics are fed fp32 outputs
    if options.get("max_norm"):
        assert max(float(w.norm(dim=1).max()) for w in [m.weight for m in model.linear_layers[:-1]]) <= 0.5 + 1e-5


def test_penalties_are_computed_in_fp32_under_autocast():
    torch.manual_seed(0)
    model = DenseClassifier(input_size=20, num_classes=3, hidden_sizes=[30], activity_l1=0.5, activity_l2=0.25,
                            orthogonal_penalty=0.1, l2_penalty=0.01).train()
    fp32 = model.penalty()
    x = torch.randn(64, 20)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        penalty = model.penalty()
        model(x)
        activations = list(model._hidden_activations)
        activity = model.activity_penalty()
    assert penalty.dtype == torch.float32 and penalty.item() == fp32.item()
    weights = [m.weight.double() for m in model.linear_layers]
    assert penalty.item() == pytest.approx(0.1 * orthogonality_penalty(weights).item() + 0.01 * sum(
        w.square().sum().item() for w in weights), rel=1e-6)  # not bf16's ~3 significant digits
    (h,) = activations
    assert h.dtype == torch.bfloat16
    expected = 0.5 * h.double().abs().mean().item() + 0.25 * h.double().square().mean().item()
    assert activity.dtype == torch.float32 and activity.item() == pytest.approx(expected, rel=1e-6)


def test_regressor_trains_in_bf16(make_trainer):
    torch.manual_seed(0)
    model = DenseRegressor(hidden_sizes=[16], lr=0.01, l2_penalty=1e-4, batchnorm=True)
    trainer, dtypes = bf16_fit(make_trainer, model, ToyRegressionDataModule("quadratic", batch_size=8), epochs=3)
    assert dtypes.output_dtypes == {torch.bfloat16}
    assert {"val_loss", "val_mae", "val_r2"} <= set(trainer.callback_metrics)
    assert all(torch.isfinite(v) for v in trainer.callback_metrics.values())


def test_bitmoji_classifier_trains_and_predicts_in_bf16(make_trainer, tmp_path):
    root = write_tree(tmp_path / "train", {"not_tom": 12, "tom": 12})
    dm = ImageFolderDataModule(str(root), image_size=10, batch_size=8, cache_dir=str(tmp_path / "cache"),
                               normalize=True, augment=True, max_shift=1)
    torch.manual_seed(0)
    model = BitmojiClassifier(input_size=dm.input_size, hidden_sizes=[8], batchnorm=True, dropout=0.2)
    trainer, dtypes = bf16_fit(make_trainer, model, dm)
    assert dtypes.output_dtypes == {torch.bfloat16}
    assert {"val_acc", "val_f1", "val_auroc"} <= set(trainer.callback_metrics)
    assert all(torch.isfinite(v) for v in trainer.callback_metrics.values())
    dm.predict_dir = str(root / "tom")
    (batch, *_) = trainer.predict(model, datamodule=dm)
    assert batch["probs"].dtype == torch.float32 and ((batch["probs"] >= 0) & (batch["probs"] <= 1)).all()


def test_divergence_guard_stops_a_diverging_bf16_run(make_trainer):
    model = DenseRegressor(hidden_sizes=[32], optimizer="sgd", lr=1e6)
    trainer = make_trainer(max_epochs=30, precision=BF16, callbacks=[DivergenceGuard()])
    with pytest.raises(DivergenceError, match=r"Training diverged: the training loss became (nan|inf) at epoch 0"):
        trainer.fit(model, datamodule=ToyRegressionDataModule(batch_size=4))


def test_weight_norms_and_curves_are_logged_in_fp32_under_bf16(make_trainer, tmp_path, fashion_root):
    torch.manual_seed(0)
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[16], lr=3e-3)
    monitor, curves = WeightNormMonitor(), LearningCurves()
    logger = TensorBoardLogger(str(tmp_path), name="run", default_hp_metric=False)
    trainer, _ = bf16_fit(make_trainer, model, FashionMNISTDataModule(str(fashion_root), batch_size=32),
                          logger=logger, callbacks=[monitor, curves])
    events = EventAccumulator(trainer.log_dir, size_guidance={"scalars": 0})
    events.Reload()
    logged = events.Scalars("weight_norm/total")[-1].value
    exact = frobenius_norm([p.detach().double() for p in model.parameters()])
    assert logged == pytest.approx(exact, rel=1e-6)  # float32 precision; a bf16 norm is off by up to 0.4 %
    assert monitor.history[-1][1] == pytest.approx(exact, rel=1e-6)
    weight = events.Scalars("weight_norm/net.0.weight")[-1].value
    assert weight == pytest.approx(model.net[0].weight.detach().double().norm().item(), rel=1e-6)
    assert curves.history[1]["val_loss"] == pytest.approx(float(trainer.callback_metrics["val_loss"]), rel=1e-7)
    assert events.Scalars("val_loss")[-1].value == pytest.approx(curves.history[1]["val_loss"], rel=1e-7)
    for path in (monitor.plot_path, curves.plot_path):
        with Image.open(path) as image:
            assert image.format == "PNG" and len(set(image.convert("RGB").getdata())) > 1


def test_default_callbacks_under_bf16_and_checkpoints_load_into_fp32(in_tmp_dir, fashion_root):
    torch.manual_seed(0)
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[16], batchnorm=True, dropout=0.2)
    dm = FashionMNISTDataModule(str(fashion_root), batch_size=32)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", precision=BF16, logger=default_logger("DenseClassifier"),
                         callbacks=default_callbacks(), enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    run = Path(trainer.log_dir)
    pngs = sorted(run.glob("*.png"))
    assert {"weight_norms.png", "learning_curves.png", "samples.png", "confusion_matrix_val.png"} <= {
        p.name for p in pngs}
    for path in pngs:
        with Image.open(path) as image:
            assert len(set(image.convert("RGB").getdata())) > 1
    best = Path(trainer.checkpoint_callback.best_model_path)
    checkpoint = torch.load(best, weights_only=True)
    assert {t.dtype for k, t in checkpoint["state_dict"].items() if t.is_floating_point()} == {torch.float32}
    loaded = DenseClassifier.load_from_checkpoint(best).eval()
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = dm.transform_inputs(dm.datasets["val"].inputs[:8])
    assert torch.allclose(loaded(x), model.eval()(x), atol=1e-6)  # the fit's kept weights: the best checkpoint's
    (metrics,) = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False).test(
        loaded, datamodule=dm, verbose=False)  # and the fp32 model tests where the bf16 one does
    (bf16_metrics,) = trainer.test(model, datamodule=dm, verbose=False)
    assert metrics["test_acc"] == pytest.approx(bf16_metrics["test_acc"], abs=0.05)


@pytest.mark.parametrize("augment", [False, True])
def test_in_memory_data_path_is_the_same_in_bf16_and_fp32(make_trainer, fashion_root, augment):
    batches = {}
    for setting in ("32-true", BF16):
        torch.manual_seed(0)
        dm = FashionMNISTDataModule(str(fashion_root), batch_size=32, augment=augment)
        dtypes = ForwardDtypes()
        make_trainer(max_epochs=1, precision=setting, callbacks=[dtypes], limit_train_batches=2,
                     limit_val_batches=0).fit(DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[8]),
                                              datamodule=dm)
        batches[setting] = dtypes.first_batch
    assert batches[BF16].dtype == torch.float32
    assert torch.equal(batches[BF16], batches["32-true"])  # uint8 → float, normalization, augmentation: fp32
    if not augment:
        assert abs(batches[BF16].mean().item()) < 0.5 and 0.5 < batches[BF16].std().item() < 1.5


# ------------------------------------------------------------------------------------------ parity, determinism
@pytest.fixture
def one_thread():
    """torch on one thread for the test (tiny batches on a shared machine: OpenMP threads only wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def final_metrics(make_trainer, datamodule, setting: str, seed: int = 0, epochs: int = 6, **model_kwargs):
    pl.seed_everything(seed, verbose=False)
    model = DenseClassifier(input_size=datamodule.input_size, num_classes=datamodule.num_classes, **model_kwargs)
    trainer = make_trainer(max_epochs=epochs, precision=setting, deterministic=True)
    trainer.fit(model, datamodule=datamodule)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_bf16_and_fp32_end_close_and_bf16_repeats_exactly(make_trainer, one_thread):
    dm = ToyClassificationDataModule("moons", num_samples=400, noise=0.1, batch_size=32)
    kwargs = dict(hidden_sizes=[32, 32], batchnorm=True, dropout=0.1, lr=1e-2)
    fp32 = final_metrics(make_trainer, dm, "32-true", epochs=15, **kwargs)
    bf16 = final_metrics(make_trainer, dm, BF16, epochs=15, **kwargs)
    assert fp32["val_acc"] >= 0.95  # a task the net learns
    assert bf16["val_acc"] == pytest.approx(fp32["val_acc"], abs=0.05)
    assert bf16["val_loss"] != fp32["val_loss"]  # bf16 did change the arithmetic
    assert final_metrics(make_trainer, dm, BF16, epochs=15, **kwargs) == bf16  # same seed and precision: identical


@pytest.mark.skipif(not os.path.isdir(REAL_FASHION), reason=f"real FashionMNIST not in {REAL_FASHION}")
def test_bf16_matches_fp32_on_a_small_slice_of_real_fashion_mnist(make_trainer, one_thread):
    dm = FashionMNISTDataModule(REAL_FASHION, batch_size=64, train_size=3000, download=False)
    kwargs = dict(hidden_sizes=[128], batchnorm=True, dropout=0.2)
    fp32 = final_metrics(make_trainer, dm, "32-true", epochs=5, **kwargs)
    bf16 = final_metrics(make_trainer, dm, BF16, epochs=5, **kwargs)
    assert fp32["val_acc"] > 0.78  # 3,000 training images, 6,000 validation images
    assert bf16["val_acc"] == pytest.approx(fp32["val_acc"], abs=0.02)
    assert bf16["val_loss"] == pytest.approx(fp32["val_loss"], rel=0.05)
    assert final_metrics(make_trainer, dm, BF16, epochs=5, **kwargs) == bf16
