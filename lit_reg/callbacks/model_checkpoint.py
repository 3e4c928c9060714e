"""Lightning's ``ModelCheckpoint`` with its ``state_key`` formatted once per run, and the best weights restored."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning import callbacks
from pytorch_lightning.utilities import rank_zero_info

from lit_reg.callbacks.fit_state_key import FitStateKey


class ModelCheckpoint(FitStateKey, callbacks.ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``: the same arguments, behaviour, files and checkpoint state, plus
    ``restore_best_weights``.

    With ``restore_best_weights=True`` the model in memory holds the best checkpoint's weights once
    ``trainer.fit`` returns (as Keras' and skorch's option of that name), so ``model(x)``, ``trainer.test(model)``
    or ``torch.save(model.state_dict())`` after a fit use the best epoch, not the last. Only the weights are
    restored, at the end of the fit: ``last.ckpt`` still holds the last epoch, so resuming with
    ``ckpt_path="last"`` continues from there. A fit that saved no best checkpoint (no validation, or
    ``monitor=None``) keeps its last weights. The lit-reg CLI and :func:`~lit_reg.defaults.default_callbacks` turn
    it on.

    :class:`~lit_reg.callbacks.FitStateKey` formats the ``state_key`` Lightning reads at every hook once per run
    (about 15 µs per training step less).

    Args:
        restore_best_weights: load the best checkpoint's weights into the model at the end of ``fit``.
        **kwargs: Lightning's ``ModelCheckpoint`` arguments (``dirpath``, ``monitor``, ``mode``, ...).

    Example:
        >>> ModelCheckpoint(monitor="val_loss").state_key  # doctest: +NORMALIZE_WHITESPACE
        "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1,
        'train_time_interval': None}"
        >>> ModelCheckpoint(monitor="val_acc", mode="max", restore_best_weights=True).restore_best_weights
        True
    """

    def __init__(self, restore_best_weights: bool = False, **kwargs: Any) -> None:
        if not isinstance(restore_best_weights, bool):
            raise ValueError(f"`restore_best_weights` must be true or false, got {restore_best_weights!r}")
        super().__init__(**kwargs)
        self.restore_best_weights = restore_best_weights

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_fit_end(trainer, pl_module)
        if not self.restore_best_weights or not self.best_model_path:
            return
        trainer.strategy.barrier("restore_best_weights")
        checkpoint = trainer.strategy.load_checkpoint(self.best_model_path)
        pl_module.load_state_dict(checkpoint["state_dict"])
        score = f" ({self.monitor}={float(self.best_model_score):.4f})" if self.best_model_score is not None else ""
        rank_zero_info(f"Restored the best weights{score} from {self.best_model_path}")
