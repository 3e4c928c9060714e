"""A callback mixin whose ``state_key`` is formatted once per run instead of at every hook Lightning dispatches."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class FitStateKey(Callback):
    """Mixin: ``state_key`` is computed at ``setup`` and reused until ``teardown`` (or an exception).

    Lightning reads ``callback.state_key`` for every hook it dispatches to every callback, to name the
    profiler action: six times per training step. ``EarlyStopping`` and ``ModelCheckpoint`` format theirs
    from their settings each time (a ``repr`` of a dict), which costs about 1-2 µs per read. Their settings
    do not change during a run, so the key is formatted once. Outside a run (and before ``setup``) the key
    is computed as the base class does, and the string is the same, so checkpoints stay interchangeable
    with Lightning's own classes.

    List it first among the bases, e.g. ``class EarlyStopping(FitStateKey, pl.callbacks.EarlyStopping)``, and
    define a key of your own in :meth:`current_state_key`, not in ``state_key``.

    Example:
        >>> from pytorch_lightning.callbacks import EarlyStopping
        >>> class MyEarlyStopping(FitStateKey, EarlyStopping):
        ...     pass
        >>> MyEarlyStopping(monitor="val_loss").state_key
        "MyEarlyStopping{'monitor': 'val_loss', 'mode': 'min'}"
    """

    _run_state_key: str | None = None

    @property
    def state_key(self) -> str:
        cached = self._run_state_key
        return cached if cached is not None else self.current_state_key()

    def current_state_key(self) -> str:
        """The key formatted now from the callback's settings: the next base class's ``state_key``."""
        return super().state_key

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._run_state_key = self.current_state_key()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        self._run_state_key = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        self._run_state_key = None
