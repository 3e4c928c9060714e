"""Shared fixtures: tiny generated data, fast CPU trainers, and a network that is never reached."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from datamodules.fakes import write_fashion_mnist

pytest_plugins = ["pytester"]  # tests/test_mutation_helpers.py runs pytest on a plugin

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def fashion_root(tmp_path: Path) -> Path:
    """A data_dir holding tiny FashionMNIST IDX files (200 train, 50 test images)."""
    root = tmp_path / "data"
    write_fashion_mnist(str(root), num_train=200, num_test=50)
    return root


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every urllib request fail and record its URL."""
    attempts: list[str] = []

    def refuse(request, *args, **kwargs):
        attempts.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


@pytest.fixture
def in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from ``tmp_path`` so relative ``logs/`` and ``data/`` land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


class EpochMetrics(Callback):
    """Records ``trainer.callback_metrics`` at the end of every training epoch."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.history.append({k: float(v) for k, v in trainer.callback_metrics.items()})


@pytest.fixture
def make_trainer(tmp_path: Path) -> Callable[..., pl.Trainer]:
    """A CPU trainer with no logger, checkpointing or progress bar unless asked for."""

    def make(**kwargs) -> pl.Trainer:
        defaults = dict(
            accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=str(tmp_path), num_sanity_val_steps=0,
        )
        return pl.Trainer(**{**defaults, **kwargs})

    return make


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
