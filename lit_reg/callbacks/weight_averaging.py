"""Weight averaging by name: SWA (an equal average of epoch-end weights) and EMA (a moving average of step weights).

Both are Lightning's ``WeightAveraging`` callback with the batch-norm statistics recomputed for the averaged
weights, and with the averaged weights used only where they mean something: validated, checkpointed and kept once
``fit`` returns, but never swapped in before the first average exists nor outside ``fit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning import callbacks
from pytorch_lightning.utilities import rank_zero_warn
from pytorch_lightning.utilities.model_helpers import is_overridden
from pytorch_lightning.utilities.types import STEP_OUTPUT
from torch import Tensor, nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from lit_reg.registry import check_positive_int, lookup


@contextlib.contextmanager
def _forked_rng(device: torch.device) -> Iterator[None]:
    """Restore the global CPU (and the device's CUDA) generator on exit: dropout draws in here leave the fit alone."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.random.fork_rng(devices=[index], device_type="cuda"):
            yield
    else:
        with torch.random.fork_rng(devices=[]):
            yield


@contextlib.contextmanager
def _kept_generators(loader: Any) -> Iterator[None]:
    """Restore the states of ``loader``'s own generators (its, its sampler's) on exit: the fit's order stays."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    owners = [loader, getattr(loader, "sampler", None), getattr(batch_sampler, "sampler", None)]
    generators = {id(g): g for g in (getattr(o, "generator", None) for o in owners) if isinstance(g, torch.Generator)}
    states = [(g, g.get_state()) for g in generators.values()]
    try:
        yield
    finally:
        for generator, state in states:
            generator.set_state(state)


@contextlib.contextmanager
def _no_training_stage(trainer: pl.Trainer) -> Iterator[None]:
    """``trainer.training`` is False in here, so a datamodule's ``on_after_batch_transfer`` does not augment."""
    stage = trainer.state.stage
    trainer.state.stage = None
    try:
        yield
    finally:
        trainer.state.stage = stage


def batch_norm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers (``BatchNorm1d/2d/3d``, ``SyncBatchNorm``, lazy ones) of ``module``, in order.

    Example:
        >>> [type(m).__name__ for m in batch_norm_layers(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)))]
        ['BatchNorm1d']
    """
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


class WeightAveraging(callbacks.WeightAveraging):
    """Lightning's ``WeightAveraging`` (an ``AveragedModel`` updated during ``fit``, swapped in for validation,
    saved as the checkpoints' ``state_dict`` and copied into the model when training ends), plus:

    - **batch-norm statistics for the averaged weights**: before the averaged model is validated, saved in a
      checkpoint or copied into the model, its batch-norm ``running_mean``/``running_var`` are recomputed by one pass
      over the training data in train mode with ``momentum=None`` (the cumulative average over the batches), as
      ``torch.optim.swa_utils.update_bn`` does. The batches come from ``trainer.datamodule.train_dataloader()`` (else
      the fit's train dataloader) through the model's and the datamodule's batch-transfer hooks, so they are
      normalized as in training but not augmented (``trainer.training`` is False during the pass: the statistics
      are those of the inputs validation and test see). The pass takes the batches ``limit_train_batches`` allows,
      runs only when the average changed since the last one (once per validation at most; never for a model without
      batch norm), leaves the global random generators as they were (its dropout draws do not change the fit) and,
      under DDP, gives every rank the same statistics (:func:`update_batch_norm`). Lightning alone averages the
      running statistics of the weights seen during training (or, with ``use_buffers=False``, copies the current
      ones), which are not those of the averaged weights.
    - **the average only once there is one**: until the first update (SWA before its start epoch, EMA before its
      start) validation, checkpoints and the model at the end of ``fit`` use the current weights; Lightning swaps in
      (and saves) a copy of the initial weights then.
    - **only during fit**: ``trainer.validate/test/predict`` after ``fit`` (with the model as it is or with
      ``ckpt_path="best"``) evaluate the weights they are given (a checkpoint's ``state_dict`` holds the averaged
      weights); Lightning would swap in the last average again, or reload the checkpoint's current weights.
    - **epoch updates before the epoch's validation**: an update after epoch ``e`` (``should_update(epoch_idx=e)``)
      happens after its last training batch, so the validation at the end of epoch ``e`` and the checkpoints it
      writes include it (Lightning updates in ``on_train_epoch_end``, after that validation). ``last.ckpt``
      therefore resumes the average exactly.

    A ``ModelCheckpoint(save_weights_only=True)`` gets the current weights, not the averaged ones: Lightning asks
    no callback about weights-only checkpoints (a warning says so).

    The averaged model lives on the model's device (``device`` to keep it elsewhere) and holds a copy of every
    parameter and buffer: the memory of the model once more. The training itself (the current weights, the
    optimizer, the random draws) is the same as without the callback.

    Args:
        device: where the averaged copy lives; None: the model's device.
        recompute_batch_norm: recompute the batch-norm statistics of the averaged weights (see above); False keeps
            Lightning's averaged running statistics.
        **kwargs: the ``AveragedModel`` arguments (``avg_fn``, ``multi_avg_fn``, ``use_buffers``, default True).

    Attributes:
        num_averaged: how many weight sets the average holds (0 before the first update).

    Raises:
        ValueError: naming ``recompute_batch_norm`` when it is not a bool.

    Example:
        >>> WeightAveraging().num_averaged
        0
    """

    def __init__(self, device: torch.device | str | int | None = None, recompute_batch_norm: bool = True,
                 **kwargs: Any) -> None:
        if not isinstance(recompute_batch_norm, bool):
            raise ValueError(f"`recompute_batch_norm` must be true or false, got {recompute_batch_norm!r}")
        super().__init__(device=device, **kwargs)
        self.recompute_batch_norm = recompute_batch_norm
        self._fitting = False
        self._swapped = False
        self._epoch = 0
        self._statistics_of: int | None = None  # num_averaged when the batch-norm statistics were last computed
        self._warned: set[str] = set()

    # -- state --------------------------------------------------------------------------------------------------
    @property
    def num_averaged(self) -> int:
        return 0 if self._average_model is None else int(self._average_model.n_averaged)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "latest_update_epoch": self._latest_update_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self._fitting:
            return
        super().load_state_dict(state_dict)
        self._latest_update_epoch = state_dict.get("latest_update_epoch", -1)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            rank_zero_warn(message, category=UserWarning)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._fitting = stage == "fit"
        if self._fitting:
            self._average_model = None
            self._latest_update_step = 0
            self._latest_update_epoch = -1
            self._statistics_of = None
            self._swapped = False
            super().setup(trainer, pl_module, stage)
            if any(getattr(c, "save_weights_only", False) for c in trainer.checkpoint_callbacks):
                self._warn_once("weights_only", f"{type(self).__name__}: a ModelCheckpoint with "
                                                "save_weights_only=True saves the current weights, not the averaged "
                                                "ones (Lightning calls no callback for weights-only checkpoints)")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        if stage == "fit":
            self._fitting = False
            self._average_model = None  # the model holds the average now; free the copy

    # -- updates ------------------------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT,
                           batch: Any, batch_idx: int) -> None:
        self._epoch = trainer.current_epoch
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        progress = getattr(getattr(trainer.fit_loop, "epoch_loop", None), "batch_progress", None)
        if getattr(progress, "is_last_batch", False):
            # the epoch's update now, before the epoch-end validation and its checkpoints
            super().on_train_epoch_end(trainer, pl_module)

    # -- batch-norm statistics ----------------------------------------------------------------------------------
    def _statistics_loader(self, trainer: pl.Trainer) -> Any:
        datamodule = trainer.datamodule
        if datamodule is not None and is_overridden("train_dataloader", datamodule):
            return datamodule.train_dataloader()
        loader = trainer.train_dataloader  # the fit's own: its generators are restored after the pass
        if isinstance(loader, torch.utils.data.DataLoader) and not loader.persistent_workers:
            return loader
        return None

    def _ensure_statistics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Recompute the averaged model's batch-norm statistics unless they belong to the current average."""
        if not self.recompute_batch_norm or self._average_model is None or self.num_averaged == 0:
            return
        if self._statistics_of == self.num_averaged:
            return
        self._statistics_of = self.num_averaged
        module = self._average_model.module
        norms = batch_norm_layers(module)
        if not norms:
            return
        loader = self._statistics_loader(trainer)
        if loader is None:
            self._warn_once("loader", f"{type(self).__name__}: no training dataloader to recompute the batch-norm "
                                      "statistics of the averaged weights from (use a LightningDataModule); the "
                                      "averaged running statistics are kept")
            return
        try:
            update_batch_norm(module, loader, trainer, pl_module, norms)
        except Exception as error:  # a batch the model's forward does not take: keep Lightning's statistics
            self._warn_once("forward", f"{type(self).__name__}: could not recompute the batch-norm statistics of "
                                       f"the averaged weights ({type(error).__name__}: {error}); the averaged "
                                       "running statistics are kept")

    # -- swaps and copies ---------------------------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._fitting and self.num_averaged > 0:
            self._ensure_statistics(trainer, pl_module)
            self._swap_models(pl_module)
            self._swapped = True

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.num_averaged == 0:
            self._warn_once("empty", f"{type(self).__name__}: no weights were averaged (training ended before the "
                                     "averaging started); the model keeps its last weights")
            return
        self._ensure_statistics(trainer, pl_module)
        self._copy_average_to_current(pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if not self._fitting or self._average_model is None:
            return  # after fit the model holds the averaged weights already
        if self._swapped:  # saved during validation: the model holds the average now, the copy the current weights
            self._swap_models(pl_module)
            checkpoint["state_dict"] = pl_module.state_dict()
        if self.num_averaged == 0:  # no average yet: the current weights are the ones to validate and keep
            self._copy_current_to_average(pl_module)
        else:
            self._ensure_statistics(trainer, pl_module)
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._swapped:  # the entries share memory with the weights: copy them before swapping back
            for key in ("state_dict", "current_model_state"):
                checkpoint[key] = {name: value.detach().clone() for name, value in checkpoint[key].items()}
            self._swap_models(pl_module)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if not self._fitting or self._average_model is None:
            return  # evaluating a checkpoint: its state_dict holds the averaged weights, loaded already
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        self._statistics_of = self.num_averaged  # the saved average came with its recomputed statistics

    def _copy_current_to_average(self, pl_module: pl.LightningModule) -> None:
        assert self._average_model is not None
        for average, current in zip(self._tensors(self._average_model.module), self._tensors(pl_module),
                                    strict=True):
            average.data.copy_(current.data)

    @staticmethod
    def _tensors(module: nn.Module) -> list[Tensor]:
        return [*module.parameters(), *module.buffers()]


def _batch_limit(limit: int | float | None, loader: Any) -> int | None:
    """How many of ``loader``'s batches ``limit_train_batches`` allows (None: all)."""
    if isinstance(limit, int) and not isinstance(limit, bool):
        return limit
    if limit is None or limit >= 1.0:
        return None
    try:
        return max(1, int(len(loader) * limit))
    except TypeError:  # no length: an iterable dataset
        return None


def update_batch_norm(module: nn.Module, loader: Any, trainer: pl.Trainer, pl_module: pl.LightningModule,
                      norms: list[nn.modules.batchnorm._BatchNorm] | None = None) -> int:
    """Recompute the running statistics of ``module``'s batch-norm layers from ``loader``'s batches.

    ``torch.optim.swa_utils.update_bn`` for a Lightning fit: reset the statistics, then one pass with the whole
    module in train mode and ``momentum=None`` (each layer's ``running_mean``/``running_var`` become the plain
    average of its batch means/unbiased variances), over the batches ``trainer.limit_train_batches`` allows (all of
    them by default). Under DDP every rank makes the pass and the statistics are then averaged over the ranks (the
    same on all: a datamodule's loader is not sharded; the fit's own loader is). Each batch goes through
    ``pl_module``'s ``on_before_batch_transfer``, ``transfer_batch_to_device`` and ``on_after_batch_transfer`` (the
    datamodule's when it has them) with ``trainer.training`` False, and its first element (or the batch itself) into
    ``module``. Modes and momenta are restored, and so are the global random generators; on an error the old
    statistics are restored before it propagates.

    Returns:
        the number of batches used.
    """
    norms = batch_norm_layers(module) if norms is None else norms
    if not norms:
        return 0
    saved = [(buffer, buffer.detach().clone()) for norm in norms for buffer in norm.buffers()]
    modes = [(m, m.training) for m in module.modules()]
    momenta = [(norm, norm.momentum) for norm in norms]
    limit = _batch_limit(trainer.limit_train_batches, loader)
    target = next(iter(module.parameters()), norms[0].running_mean).device
    count = 0
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        module.train()
        with _forked_rng(target), _kept_generators(loader), _no_training_stage(trainer), torch.no_grad():
            for batch in loader:
                if limit is not None and count >= limit:
                    break
                before = getattr(pl_module, "_on_before_batch_transfer", None)
                if before is not None:
                    batch = before(batch, dataloader_idx=0)
                batch = trainer.strategy.batch_to_device(batch)
                inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
                module(inputs.to(target) if isinstance(inputs, Tensor) else inputs)
                count += 1
            if trainer.world_size > 1:  # every rank makes the pass: one set of statistics for all
                root = trainer.strategy.root_device
                for norm in norms:
                    for buffer in (norm.running_mean, norm.running_var):
                        buffer.copy_(trainer.strategy.reduce(buffer.to(root, copy=True), reduce_op="mean"))
    except BaseException:
        for buffer, value in saved:
            buffer.data.copy_(value)
        raise
    finally:
        for norm, momentum in momenta:
            norm.momentum = momentum
        for submodule, training in modes:
            submodule.training = training
    return count


class SWAWeightAveraging(WeightAveraging):
    """Stochastic weight averaging: the equal average of the weights at the end of every epoch from
    ``swa_epoch_start`` on (Izmailov et al., 2018), validated, checkpointed and kept as described in
    :class:`WeightAveraging` (batch-norm statistics recomputed for the average).

    The learning rate is left as the model's optimizer and scheduler set it. Lightning's
    ``StochasticWeightAveraging`` switches it to ``swa_lrs`` (its own ``SWALR`` in place of the model's scheduler),
    validates and checkpoints the current weights until the end and recomputes the batch-norm statistics in an extra
    training epoch; here the validation curves, the early stop and the best checkpoint are those of the averaged
    model. SWA works best with a constant or cyclic rate in the averaged epochs (``lr_scheduler`` none or
    ``cosine_restarts``/``cyclic``).

    Args:
        swa_epoch_start: the first epoch (0-based) whose weights enter the average, or a float in (0, 1): that
            fraction of ``max_epochs`` (``int(max_epochs · swa_epoch_start)``, as Lightning's). Until then the
            current weights are validated and kept.
        device: where the averaged copy lives; None: the model's device.
        recompute_batch_norm: recompute the averaged model's batch-norm statistics (see :class:`WeightAveraging`).

    Attributes:
        start_epoch: the first averaged epoch, once ``fit`` resolved a fraction.

    Raises:
        ValueError: naming ``swa_epoch_start`` when it is a negative int or a float outside (0, 1).

    Example:
        >>> SWAWeightAveraging(swa_epoch_start=3).start_epoch
        3
        >>> SWAWeightAveraging().swa_epoch_start
        0.8
    """

    def __init__(self, swa_epoch_start: int | float = 0.8, device: torch.device | str | int | None = None,
                 recompute_batch_norm: bool = True) -> None:
        valid_int = isinstance(swa_epoch_start, int) and not isinstance(swa_epoch_start, bool) and swa_epoch_start >= 0
        valid_float = isinstance(swa_epoch_start, float) and 0.0 < swa_epoch_start < 1.0
        if not (valid_int or valid_float):
            raise ValueError("`swa_epoch_start` must be an epoch index >= 0 or a fraction of max_epochs in (0, 1), "
                             f"got {swa_epoch_start!r}")
        super().__init__(device=device, recompute_batch_norm=recompute_batch_norm)
        self.swa_epoch_start = swa_epoch_start
        self.start_epoch: int | None = swa_epoch_start if isinstance(swa_epoch_start, int) else None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and isinstance(self.swa_epoch_start, float):
            max_epochs = trainer.max_epochs
            if max_epochs is None or max_epochs < 1:
                self._warn_once("max_epochs", f"`swa_epoch_start`={self.swa_epoch_start} is a fraction of max_epochs, "
                                              "which this fit does not set: averaging from epoch 0")
                self.start_epoch = 0
            else:
                self.start_epoch = int(max_epochs * self.swa_epoch_start)
        super().setup(trainer, pl_module, stage)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return epoch_idx is not None and epoch_idx >= (self.start_epoch or 0)


class EMAWeightAveraging(WeightAveraging):
    """Exponential moving average of the weights after every optimizer step, validated, checkpointed and kept as
    described in :class:`WeightAveraging` (batch-norm statistics recomputed for the average).

    The first update copies the weights; each later one sets ``ema = decay · ema + (1 − decay) · weights``
    (``torch.optim.swa_utils.get_ema_multi_avg_fn``). The average remembers about ``1 / (1 − decay)`` updates:
    1000 steps for the default 0.999, several epochs of a small data set, so a short fit wants a smaller decay
    (0.99: 100 steps).

    Args:
        decay: weight of the old average, in (0, 1).
        update_every_n_steps: update after every n-th optimizer step (steps 0, n, 2n, ... counted over the fit).
        update_starting_at_epoch: the first epoch (0-based) whose steps enter the average; until then the current
            weights are validated and kept.
        device: where the averaged copy lives; None: the model's device.
        recompute_batch_norm: recompute the averaged model's batch-norm statistics (see :class:`WeightAveraging`).

    Raises:
        ValueError: naming ``decay``, ``update_every_n_steps`` or ``update_starting_at_epoch`` when out of range.

    Example:
        >>> EMAWeightAveraging(decay=0.99).decay
        0.99
    """

    def __init__(self, decay: float = 0.999, update_every_n_steps: int = 1, update_starting_at_epoch: int = 0,
                 device: torch.device | str | int | None = None, recompute_batch_norm: bool = True) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < decay < 1.0:
            raise ValueError(f"`decay` must be in (0, 1), got {decay!r}")
        check_positive_int(update_every_n_steps, "update_every_n_steps")
        if (not isinstance(update_starting_at_epoch, int) or isinstance(update_starting_at_epoch, bool)
                or update_starting_at_epoch < 0):
            raise ValueError("`update_starting_at_epoch` must be an epoch index >= 0, "
                             f"got {update_starting_at_epoch!r}")
        super().__init__(device=device, recompute_batch_norm=recompute_batch_norm,
                         multi_avg_fn=get_ema_multi_avg_fn(float(decay)))
        self.decay = float(decay)
        self.update_every_n_steps = update_every_n_steps
        self.update_starting_at_epoch = update_starting_at_epoch

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return (step_idx is not None and self._epoch >= self.update_starting_at_epoch
                and step_idx % self.update_every_n_steps == 0)


#: weight averaging by name: what ``weight_averaging(name)`` and the CLI's ``--weight_averaging`` accept
WEIGHT_AVERAGING: dict[str, type[WeightAveraging]] = {"ema": EMAWeightAveraging, "swa": SWAWeightAveraging}


def weight_averaging(name: str, **kwargs: Any) -> WeightAveraging:
    """The weight-averaging callback called ``name`` (case-insensitive, see :data:`WEIGHT_AVERAGING`), built with
    ``kwargs``.

    Raises:
        ValueError: naming ``weight_averaging`` for an unknown name, or the argument that is out of range.

    Example:
        >>> type(weight_averaging("ema", decay=0.99)).__name__
        'EMAWeightAveraging'
        >>> weight_averaging("foo")
        Traceback (most recent call last):
        ...
        ValueError: `weight_averaging` must be one of ['ema', 'swa'], got 'foo'
    """
    return lookup(WEIGHT_AVERAGING, name, "weight_averaging")(**kwargs)
