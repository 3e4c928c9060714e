"""What the plotting callbacks share: saving a matplotlib figure in the run folder and in TensorBoard, checking a
PNG file name, titles wrapped to the figure's width, and the data points of a split and a module's outputs on raw
inputs (the figures drawn over the input space)."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import TensorDataset

log = logging.getLogger(__name__)

#: what each split is called in legends
SPLIT_LABELS = {"train": "train", "val": "validation", "test": "test"}
#: resolution of the saved PNGs: a figure of ``(w, h)`` inches is ``100·w × 100·h`` pixels
DPI = 100


def save_to_run(trainer: pl.Trainer, make_figure: Callable[[], Figure], filename: str, tag: str) -> Path | None:
    """Draw ``make_figure()`` on rank zero, save it as ``<trainer.log_dir>/<filename>`` and add it to every
    ``TensorBoardLogger`` as the image ``tag``; return the path (None on other ranks).

    Figures are built with ``matplotlib.figure.Figure``, not pyplot: this works headless and leaves the
    user's matplotlib backend alone.
    """
    run_dir = trainer.log_dir or trainer.default_root_dir  # on every rank: log_dir is broadcast from rank zero
    if not trainer.is_global_zero:
        return None
    figure = make_figure()
    path = Path(run_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    log.info("%s saved to %s", tag, path)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(tag, figure, global_step=trainer.global_step, close=False)
    return path


def png_filename(filename: str) -> str:
    """``filename`` itself when it names a PNG file.

    Raises:
        ValueError: naming ``filename``, when it does not end in ``.png``.

    Example:
        >>> png_filename("curves.png")
        'curves.png'
    """
    if not filename.endswith(".png"):
        raise ValueError(f"`filename` must end in '.png', got {filename!r}")
    return filename


_TEXT_TO_PATH = TextToPath()


def text_width(text: str, fontsize: float = 12.0) -> float:
    """The width of one line of ``text`` in inches, drawn in matplotlib's default font at ``fontsize`` points, with
    5 % to spare (a PNG renders text a little wider than its outline measures)."""
    width, _, _ = _TEXT_TO_PATH.get_text_width_height_descent(text, FontProperties(size=fontsize), ismath=False)
    return 1.05 * width / 72


def title_width(axes: Axes) -> float:
    """The width in inches an ``axes`` title may take: it is centred over the axes, so twice the distance from
    their centre to the nearer edge of the figure, less 0.3 in (the axes move a little in ``tight_layout``)."""
    position = axes.get_position()
    centre = position.x0 + position.width / 2
    return 2 * min(centre, 1 - centre) * axes.figure.get_figwidth() - 0.3


def wrap_title(text: str, width: float, fontsize: float = 12.0) -> str:
    r"""``text`` broken at spaces (inside a word only where one word is too long) into the fewest lines that
    each fit ``width`` inches at ``fontsize`` points (:func:`text_width`); each line of ``text`` on its own.

    Example:
        >>> wrap_title("a_long_experiment_name/version_0: decision boundary after 300 epochs", 4.0)
        'a_long_experiment_name/version_0: decision\nboundary after 300 epochs'
        >>> wrap_title("short title", 4.0)
        'short title'
    """
    lines = []
    for line in text.splitlines() or [""]:
        columns = len(line)
        wrapped = [line]
        while columns > 1 and any(text_width(part, fontsize) > width for part in wrapped):
            columns -= 1
            wrapped = textwrap.wrap(line, columns) or [line]
        lines.extend(wrapped)
    return "\n".join(lines)


def split_tensors(trainer: pl.Trainer, split: str) -> tuple[Tensor, Tensor] | None:
    """``(inputs, targets)`` of a split as the data holds them (before normalization), or None if not found.

    From the datamodule's ``datasets[split]`` (``inputs``/``targets``, as :class:`~datamodules.InMemoryDataModule`
    holds them), else from the trainer's dataloader of that split when its dataset is a ``TensorDataset`` or has
    ``inputs``/``targets`` tensors. Nothing is iterated: no sampler (and no RNG) is touched.
    """
    datasets = getattr(getattr(trainer, "datamodule", None), "datasets", None)
    dataset = datasets.get(split) if isinstance(datasets, dict) else None
    if dataset is None:
        attribute = {"train": "train_dataloader", "val": "val_dataloaders", "test": "test_dataloaders"}.get(split)
        try:
            loader = getattr(trainer, attribute) if attribute else None
        except (AttributeError, RuntimeError):  # pragma: no cover - depends on the trainer's state
            loader = None
        if isinstance(loader, (list, tuple)):
            loader = loader[0] if loader else None
        dataset = getattr(loader, "dataset", None)
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        return dataset.tensors[0], dataset.tensors[1]
    inputs, targets = getattr(dataset, "inputs", None), getattr(dataset, "targets", None)
    if isinstance(inputs, Tensor) and isinstance(targets, Tensor):
        return inputs, targets
    return None


def find_split_points(trainer: pl.Trainer, splits: Sequence[str], name: str, *, features: int, drawn: str,
                      targets_fit: Callable[[Tensor], bool],
                      targets_wanted: str) -> dict[str, tuple[Tensor, Tensor]] | None:
    """``{split: (inputs, targets)}`` of ``"train"`` and ``splits`` (:func:`split_tensors`), detached, on the CPU;
    or None after one warning that starts with ``name`` (the callback's) and ends in "nothing is drawn".

    It warns when no split is found, when one's inputs do not have ``features`` features per sample ("``name``
    draws ``drawn``, but ..."), or when its targets are not what ``targets_fit`` accepts ("``name``
    ``targets_wanted``, but ..."). The splits are checked in order, the training split first.
    """
    wanted = ["train", *(s for s in splits if s != "train")]  # a grid covers all of them
    found = {split: split_tensors(trainer, split) for split in wanted}
    found = {split: tensors for split, tensors in found.items() if tensors is not None}
    if not found:
        rank_zero_warn(f"{name}: found no data points (neither `datamodule.datasets` nor a TensorDataset for "
                       f"the splits {list(splits)}); nothing is drawn")
        return None
    for split, (inputs, targets) in found.items():
        count = inputs[0].numel() if len(inputs) else 0
        if count != features:
            rank_zero_warn(f"{name} draws {drawn}, but the {split} inputs have {count} features per sample "
                           f"(shape {tuple(inputs.shape)}); nothing is drawn")
            return None
        if not targets_fit(targets):
            rank_zero_warn(f"{name} {targets_wanted}, but the {split} targets are {targets.dtype} of shape "
                           f"{tuple(targets.shape)}; nothing is drawn")
            return None
    return {split: (inputs.detach().cpu(), targets.detach().cpu()) for split, (inputs, targets) in found.items()}


@torch.no_grad()
def evaluate_on(trainer: pl.Trainer, pl_module: pl.LightningModule, inputs: Tensor, chunk: int = 65536) -> Tensor:
    """The module's outputs for raw ``inputs``, on the CPU: normalized as the datamodule does it
    (``transform_inputs``, when it has one), in eval mode under ``no_grad``; every submodule's train/eval
    mode is restored afterwards. Nothing draws from a random number generator."""
    transform = getattr(getattr(trainer, "datamodule", None), "transform_inputs", None)
    dtype = next((p.dtype for p in pl_module.parameters() if p.is_floating_point()), torch.float32)
    modes = [(module, module.training) for module in pl_module.modules()]
    pl_module.eval()
    try:
        outputs = []
        for start in range(0, len(inputs), chunk):
            x = inputs[start:start + chunk].to(pl_module.device)
            x = transform(x) if callable(transform) else x
            outputs.append(pl_module(x.to(dtype)).detach().float().cpu())
    finally:
        for module, training in modes:
            module.training = training
    return torch.cat(outputs)
