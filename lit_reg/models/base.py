"""The base LightningModule every model of the collection shares."""

from __future__ import annotations

import inspect
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric, MetricCollection

from lit_reg.models.deferred_updates import DeferredUpdates
from lit_reg.models.dense import build_dense_stack
from lit_reg.models.regularizers import activity_penalty, apply_max_norm, mixup, orthogonality_penalty, weight_penalty
from lit_reg.registry import (
    ACTIVATIONS,
    LR_SCHEDULERS,
    MOMENTUM_OPTIMIZERS,
    OPTIMIZERS,
    OWN_OPTIMIZER_ARGUMENTS,
    STEP_SCHEDULERS,
    check_in_range,
    lookup,
)

STAGES = ("train", "val", "test")
#: the ``mode`` values of ``torch.compile`` (the ``compile_mode`` argument)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

#: scheduler arguments lit_reg fills in when ``lr_scheduler_kwargs`` leaves them out (see ``_scheduler_config``)
FILLED_SCHEDULER_ARGUMENTS = {
    "cosine": ("T_max",),
    "cyclic": ("base_lr", "cycle_momentum"),
    "onecycle": ("max_lr", "total_steps", "cycle_momentum"),
}


def deferred(metrics: MetricCollection, prefix: str) -> MetricCollection:
    """``metrics`` with each metric wrapped in :class:`DeferredUpdates`, keys prefixed with ``prefix``."""
    wrapped = {name: DeferredUpdates(metric) for name, metric in metrics.items(keep_base=True, copy_state=False)}
    return MetricCollection(wrapped, prefix=prefix, compute_groups=False)


class RegularizedModule(pl.LightningModule):
    """Dense network with a named optimizer, shared train/val/test/predict steps and metric logging.

    Subclasses choose the loss (:meth:`compute_loss`), the torchmetrics they log
    (:meth:`configure_metrics`) and what prediction returns (:meth:`predict_outputs`); everything else
    lives here, so every model gets every regularization option.

    Each stage logs ``<stage>_loss`` and ``<stage>_<metric>`` once per epoch, from one metric
    collection per stage (``train_metrics``, ``val_metrics``, ``test_metrics``) and one batch-size
    weighted ``MeanMetric`` of the loss per stage (``train_loss_mean``, ...): :meth:`configure_metrics`
    for every stage, plus :meth:`configure_eval_metrics` for validation and test.

    Before any stage runs, :meth:`setup` checks the model's ``input_size`` against the datamodule's
    (when it has one) and raises a ``ValueError`` giving both numbers.

    .. note::
        A step only hands its (detached) outputs, targets and loss to these metric objects, each wrapped in
        :class:`~lit_reg.models.deferred_updates.DeferredUpdates`: a list append, with one real metric update
        per 64 steps and before every compute. They are handed to ``self.log`` on the first batch of each
        epoch (``batch_idx == 0``) and Lightning computes and resets them at the epoch's end. A ``self.log``
        call or a metric update costs far more than the append; the logged values are the same.

    .. note::
        Without ``l1_penalty`` and ``l2_penalty`` the data loss is the training loss: ``train_data_loss`` is
        then logged from ``train_loss_mean`` (the same values) and ``train_data_loss_mean`` is not updated.

    .. note::
        ``weight_decay`` is the optimizer's own decay: it applies to every parameter (biases and
        batch-norm parameters too). With Adam it is an L2 term added to the gradient; with AdamW it is
        decoupled weight decay. ``l1_penalty`` and ``l2_penalty`` are explicit terms of the training
        loss instead: ``λ1·Σ|w| + λ2·Σw²`` over the weight matrices only (every parameter with
        ``penalize_all_parameters``); they show in ``train_loss`` (``train_data_loss`` is the loss
        without them) and act through the gradient with any optimizer. With plain SGD,
        ``l2_penalty=λ`` equals ``weight_decay=2λ`` on the penalized parameters; with Adam the penalty's
        gradient is rescaled by the adaptive step, like Adam's own ``weight_decay``, unlike AdamW's.

    Args:
        input_size: number of input features; inputs are flattened from dimension 1 on.
        output_size: number of outputs of the last layer.
        hidden_sizes: width of each hidden layer.
        activation: activation name (see :data:`lit_reg.registry.ACTIVATIONS`).
        dropout: one rate in [0, 1) for all hidden layers, or one rate per hidden layer.
        batchnorm: ``BatchNorm1d`` between each hidden ``Linear`` and its activation.
        optimizer: one of ``sgd``, ``adam``, ``adamax``, ``adamw``, ``rmsprop``, ``adagrad``.
        lr: learning rate, > 0.
        weight_decay: the optimizer's weight decay, >= 0.
        momentum: momentum for ``sgd`` and ``rmsprop``, >= 0; must stay 0 for the others.
        nesterov: Nesterov momentum; only with ``optimizer="sgd"`` and ``momentum > 0``.
        optimizer_kwargs: the torch optimizer's other arguments, e.g. ``{"betas": [0.9, 0.99], "eps": 1e-7}``
            (Adam, AdamW, Adamax), ``{"amsgrad": True}``, ``{"alpha": 0.9}`` (RMSprop), ``{"lr_decay": 1e-4}``
            (Adagrad); lists reach the optimizer as tuples. A key the optimizer does not take, one of ``lr``,
            ``weight_decay``, ``momentum``, ``nesterov`` (set those arguments instead) or a value the optimizer
            refuses raises ``ValueError``.
        l1_penalty: λ1 >= 0 of the loss term ``λ1·Σ|w|``.
        l2_penalty: λ2 >= 0 of the loss term ``λ2·Σw²``.
        penalize_all_parameters: apply the penalties to every parameter; by default only to weight
            matrices (parameters with two or more dimensions), not to biases or batch-norm parameters.
        lr_scheduler: ``None`` (constant rate) or one of ``step`` (``StepLR``: η·gamma^⌊s/step_size⌋),
            ``exponential`` (``ExponentialLR``: η₀·gammaˢ, the lectures' η₀·e^(−ks) with
            ``gamma = e^(−k)``), ``cosine`` (``CosineAnnealingLR``; ``T_max`` defaults to
            ``trainer.max_epochs``), ``cyclic`` (``CyclicLR``, triangular between ``base_lr``, default
            ``lr``, and ``max_lr``, stepped every batch; momentum is cycled only when ``momentum > 0``)
            ``onecycle`` (``OneCycleLR``: warm up to ``max_lr``, default ``lr``, then anneal far below it over
            ``total_steps``, default the whole fit, ``trainer.estimated_stepping_batches``; stepped every batch;
            momentum is cycled only when ``momentum > 0``), ``plateau`` (``ReduceLROnPlateau`` on
            ``val_loss``), ``cosine_restarts`` (``CosineAnnealingWarmRestarts``: cosine from η₀ down to
            ``eta_min`` over ``T_0`` epochs, then again over ``T_mult``-times longer periods) or ``inverse_time``
            (:class:`~lit_reg.schedules.InverseTimeDecay`: η₀/(1 + ``decay_rate``·s/``decay_steps``), Keras'
            ``InverseTimeDecay``, s counted in batches). ``cyclic``, ``onecycle`` and ``inverse_time`` step after
            every batch, the others once per epoch.
        lr_scheduler_kwargs: the torch scheduler's own arguments, e.g. ``{"step_size": 10}``; a key it
            does not take, or a missing required one, raises ``ValueError``.
        lr_warmup: W >= 0 scheduler steps of linear warm-up before the schedule: the rate is η·(s+1)/(W+1) at
            step s < W, η the schedule's first rate (``lr``; ``base_lr`` for ``cyclic``, ``max_lr/div_factor`` for
            ``onecycle``), then the schedule starts (torch's ``LinearLR`` then the scheduler, in ``SequentialLR``).
            Steps are the schedule's own: batches for ``cyclic``, ``onecycle`` and ``inverse_time``, epochs
            for the others and without a scheduler (constant ``lr`` after the warm-up). The default ``T_max``
            (``cosine``) and ``total_steps`` (``onecycle``) leave the warm-up out. Not with ``plateau``.
        init: initialization of the ``Linear`` weights (see :func:`~lit_reg.models.dense.build_dense_stack`).
        dropout_mode: how ``dropout`` acts: ``bernoulli`` (``nn.Dropout``), ``gaussian`` (multiplicative N(1, p/(1-p))
            noise), ``alpha`` (``nn.AlphaDropout``) or ``dropconnect`` (the next ``Linear``'s weights are dropped; see
            :func:`~lit_reg.models.dense.build_dense_stack`).
        input_noise: std >= 0 of Gaussian noise added to the (standardized) inputs in training only.
        max_norm: c > 0: after every optimizer step each hidden unit's incoming weight vector (a row of a hidden
            ``Linear``'s weight) longer than c is rescaled to norm c (Srivastava et al., 2014); None: no constraint.
        activity_l1: λ >= 0 of the training-loss term ``λ·mean|h|`` over the hidden activations h (after each
            activation function, every entry of every hidden layer pooled): sparse representations.
        activity_l2: λ >= 0 of the training-loss term ``λ·mean h²`` over the same activations.
        orthogonal_penalty: λ >= 0 of the training-loss term ``λ·Σ‖W Wᵀ − I‖²_F`` over the ``Linear`` weight matrices
            (Keras' ``OrthogonalRegularizer`` in spirit: rows pushed towards an orthonormal set).
        mixup_alpha: α > 0 turns on mixup for training batches (classifiers only): inputs mixed pairwise with a
            Beta(α, α) weight λ per batch, the loss the same mix of the two targets' losses (the cross-entropy against
            the mixed one-hot, or label-smoothed, targets); training metrics score the prediction against the target
            with the larger weight. None: off.
        compile: compile the dense stack (:attr:`net`) with ``torch.compile`` (``nn.Module.compile``: in place, so
            the parameter names, ``state_dict`` and checkpoints stay those of the uncompiled model, without
            ``_orig_mod.``, and load into ``compile=False``). The first steps of each kind (training, validation in
            inference mode, the last smaller batch) compile, taking seconds to tens of seconds; then each step runs
            the compiled code. Works on CPU (needs a C++ compiler) and CUDA.
        compile_mode: ``torch.compile``'s ``mode`` with ``compile=True``: None (torch's default), ``default``,
            ``reduce-overhead`` (CUDA graphs on a GPU: the per-step launch cost of a small net falls), ``max-autotune``
            or ``max-autotune-no-cudagraphs``.

    ``l1_penalty``, ``l2_penalty``, ``activity_l1``, ``activity_l2`` and ``orthogonal_penalty`` are added to the
    training loss only: they show in ``train_loss``, never in ``train_data_loss``, ``val_loss`` or ``test_loss``.

    The learning rate in use is logged as ``lr`` at the start of every epoch.

    Raises:
        ValueError: naming the argument, for any value outside its allowed range or set of names.
    """

    #: set by :class:`~lit_reg.callbacks.StepCurves` for the length of a fit: keep the last training batch's
    #: ``(preds, target)``, detached, as the metrics take them, in :attr:`last_train_batch`
    keep_last_train_batch: bool = False
    last_train_batch: tuple[Tensor, Tensor] | None = None

    # pragma: no mutate start (mutmut's trampolines would hide this frame from Lightning's save_hyperparameters)
    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_sizes: Sequence[int],
        activation: str = "relu",
        dropout: float | Sequence[float] = 0.0,
        batchnorm: bool = False,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        nesterov: bool = False,
        optimizer_kwargs: dict[str, Any] | None = None,
        l1_penalty: float = 0.0,
        l2_penalty: float = 0.0,
        penalize_all_parameters: bool = False,
        lr_scheduler: str | None = None,
        lr_scheduler_kwargs: dict[str, Any] | None = None,
        lr_warmup: int = 0,
        init: str = "default",
        dropout_mode: str = "bernoulli",
        input_noise: float = 0.0,
        max_norm: float | None = None,
        activity_l1: float = 0.0,
        activity_l2: float = 0.0,
        orthogonal_penalty: float = 0.0,
        mixup_alpha: float | None = None,
        compile: bool = False,
        compile_mode: str | None = None,
    ) -> None:
        super().__init__()
        self._save_own_hyperparameters()
        check_in_range(lr, "lr", 0.0, include_low=False)
        check_in_range(weight_decay, "weight_decay", 0.0)
        check_in_range(momentum, "momentum", 0.0)
        for name, value in (("l1_penalty", l1_penalty), ("l2_penalty", l2_penalty), ("activity_l1", activity_l1),
                            ("activity_l2", activity_l2), ("orthogonal_penalty", orthogonal_penalty)):
            check_in_range(value, name, 0.0)
        self._check_mixup_and_max_norm(mixup_alpha, max_norm)
        self.optimizer_cls = lookup(OPTIMIZERS, optimizer, "optimizer")
        self._check_momentum(optimizer, momentum, nesterov)
        self._check_optimizer_kwargs(optimizer, optimizer_kwargs)
        self.scheduler_cls = None if lr_scheduler is None else lookup(LR_SCHEDULERS, lr_scheduler, "lr_scheduler")
        self._check_scheduler_kwargs(lr_scheduler, lr_scheduler_kwargs or {})
        self._check_warmup(lr_scheduler, lr_warmup)
        self._check_compile(compile, compile_mode)
        self.net = build_dense_stack(input_size, hidden_sizes, output_size, activation, dropout, batchnorm, init,
                                     dropout_mode, input_noise)
        if compile:  # in place: the module tree, and so the state_dict keys, stay those of the uncompiled stack
            self.net.compile(**({} if compile_mode is None else {"mode": compile_mode}))
        self.train_metrics = deferred(self.configure_metrics(), prefix="train_")
        self.val_metrics = deferred(self._eval_metrics(), prefix="val_")
        self.test_metrics = deferred(self._eval_metrics(), prefix="test_")
        for stage in STAGES:
            setattr(self, f"{stage}_loss_mean", DeferredUpdates(MeanMetric(nan_strategy="disable")))
        # the training loss without penalties
        self.train_data_loss_mean = DeferredUpdates(MeanMetric(nan_strategy="disable"))
        self._penalized = bool(l1_penalty or l2_penalty or activity_l1 or activity_l2 or orthogonal_penalty)
        self._hidden_activations: list[Tensor] = []
        if activity_l1 or activity_l2:  # record the hidden activations of training forward passes
            for layer in self.net:
                if isinstance(layer, tuple(ACTIVATIONS.values())):
                    layer.register_forward_hook(self._record_activation)

    # pragma: no mutate end
    def _eval_metrics(self) -> MetricCollection:
        metrics = self.configure_metrics()
        extra = self.configure_eval_metrics()
        if extra:
            metrics.add_metrics(extra)
        return metrics

    # pragma: no mutate start (mutmut's trampolines would hide this frame from Lightning's save_hyperparameters)
    def _save_own_hyperparameters(self) -> None:
        """``save_hyperparameters()`` for the concrete class: keep only the arguments it accepts.

        Lightning collects the arguments of every ``__init__`` in the chain, this one's first, so the base's
        defaults are there even when a subclass passes its options on with ``**kwargs``; ``hparams.yaml`` and
        checkpoints should hold exactly what ``type(self)(**hparams)`` accepts (:meth:`accepted_arguments`).
        """
        frame = inspect.currentframe().f_back  # RegularizedModule.__init__
        self.save_hyperparameters(frame=frame)
        accepted = self.accepted_arguments()
        extra = [key for key in self.hparams if key not in accepted and not key.startswith("_")]
        if extra:
            self.save_hyperparameters(ignore=extra, frame=frame)

    # pragma: no mutate end
    @classmethod
    def accepted_arguments(cls) -> list[str]:
        """The arguments ``cls(...)`` takes: its own named ones, and through ``**kwargs`` the base's optional ones.

        A subclass names the base arguments it needs or gives another default, derives the ones without a
        default it does not name (``output_size=num_classes``) and passes the rest on with ``**kwargs``, so a new
        option of the base is one change here. Example:

            >>> from lit_reg.models import DenseClassifier
            >>> accepted = DenseClassifier.accepted_arguments()
            >>> "num_classes" in accepted, "output_size" in accepted, "l2_penalty" in accepted
            (True, False, True)
        """
        own = inspect.signature(cls.__init__).parameters.values()
        named = [p.name for p in own if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind is p.VAR_KEYWORD for p in own):
            return named
        base = inspect.signature(RegularizedModule.__init__).parameters.values()
        return named + [p.name for p in base if p.default is not p.empty and p.name not in named]

    @staticmethod
    def _check_momentum(optimizer: str, momentum: float, nesterov: bool) -> None:
        """Raise ``ValueError`` for momentum with an optimizer without it, or Nesterov without SGD momentum."""
        if momentum and optimizer.lower() not in MOMENTUM_OPTIMIZERS:
            raise ValueError(
                f"`momentum` applies only to optimizer {list(MOMENTUM_OPTIMIZERS)}, got momentum={momentum} "
                f"with optimizer={optimizer!r}; set momentum=0 or pick one of those optimizers"
            )
        if nesterov and (optimizer.lower() != "sgd" or not momentum):
            raise ValueError(
                f"`nesterov` needs optimizer='sgd' with momentum > 0, got optimizer={optimizer!r}, momentum={momentum}"
            )

    def _check_optimizer_kwargs(self, name: str, kwargs: dict[str, Any] | None) -> None:
        """Raise ``ValueError`` for a key with its own lit_reg argument, one the optimizer does not take, or a value
        it refuses (it is built once on a stand-in parameter)."""
        if not kwargs:
            return
        if not isinstance(kwargs, dict):
            raise ValueError(f"`optimizer_kwargs` must be a dict of the optimizer's arguments, got {kwargs!r}")
        own = [key for key in kwargs if key in OWN_OPTIMIZER_ARGUMENTS]
        if own:
            raise ValueError(
                f"`optimizer_kwargs` sets {own}, which lit_reg sets from its own argument: pass "
                f"{', '.join(f'`{key}`' for key in own)} instead (one place per setting)"
            )
        parameters = [key for key in inspect.signature(self.optimizer_cls).parameters
                      if key != "params" and key not in OWN_OPTIMIZER_ARGUMENTS]
        unknown = sorted(set(kwargs) - set(parameters))
        if unknown:
            raise ValueError(
                f"`optimizer_kwargs` has {unknown}, which optimizer={name!r} ({self.optimizer_cls.__name__}) does not "
                f"take; it takes {parameters}"
            )
        try:
            self.optimizer_cls([torch.zeros(1, requires_grad=True)], **self._optimizer_arguments())
        except (ValueError, TypeError, RuntimeError) as error:
            raise ValueError(
                f"`optimizer_kwargs` {kwargs!r} refused by optimizer={name!r} ({self.optimizer_cls.__name__}): {error}"
            ) from error

    def _check_mixup_and_max_norm(self, mixup_alpha: float | None, max_norm: float | None) -> None:
        """Raise ``ValueError`` unless ``mixup_alpha`` and ``max_norm`` are None or > 0, and for mixup on a model
        whose loss does not mix linearly with its targets (:attr:`supports_mixup`)."""
        if max_norm is not None:
            check_in_range(max_norm, "max_norm", 0.0, include_low=False)
        if mixup_alpha is None:
            return
        check_in_range(mixup_alpha, "mixup_alpha", 0.0, include_low=False)
        if not self.supports_mixup:
            raise ValueError(f"`mixup_alpha` mixes class targets, but {type(self).__name__} is a regressor; leave "
                             "mixup_alpha unset (None)")

    @staticmethod
    def _check_compile(compile: bool, compile_mode: str | None) -> None:
        """Raise ``ValueError`` for a ``compile_mode`` torch does not know, or one given without ``compile``."""
        if compile_mode is None:
            return
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"`compile_mode` must be None or one of {list(COMPILE_MODES)}, got {compile_mode!r}")
        if not compile:
            raise ValueError(f"`compile_mode`={compile_mode!r} applies only with `compile`=True; set compile=True or "
                             "leave compile_mode unset (None)")

    @staticmethod
    def _check_warmup(lr_scheduler: str | None, lr_warmup: int) -> None:
        """Raise ``ValueError`` unless ``lr_warmup`` is an integer >= 0, and for a warm-up before ``plateau``."""
        if isinstance(lr_warmup, bool) or not isinstance(lr_warmup, int) or lr_warmup < 0:
            raise ValueError(f"`lr_warmup` must be an integer >= 0 (the scheduler steps of linear warm-up), "
                             f"got {lr_warmup!r}")
        if lr_warmup and lr_scheduler is not None and lr_scheduler.lower() == "plateau":
            raise ValueError(
                f"`lr_warmup`={lr_warmup} cannot come before lr_scheduler='plateau': ReduceLROnPlateau steps on "
                "val_loss, which torch's SequentialLR does not pass on; set lr_warmup=0 or pick another lr_scheduler"
            )

    def _check_scheduler_kwargs(self, name: str | None, kwargs: dict[str, Any]) -> None:
        """Raise ``ValueError`` for a key the scheduler does not take or a required one that is missing."""
        if self.scheduler_cls is None:
            if kwargs:
                raise ValueError(f"`lr_scheduler_kwargs` given without an `lr_scheduler`: {kwargs!r}")
            return
        parameters = dict(inspect.signature(self.scheduler_cls).parameters)
        parameters.pop("optimizer")
        unknown = sorted(set(kwargs) - set(parameters))
        if unknown:
            raise ValueError(
                f"`lr_scheduler_kwargs` has {unknown}, which lr_scheduler={name!r} "
                f"({self.scheduler_cls.__name__}) does not take; it takes {list(parameters)}"
            )
        filled = FILLED_SCHEDULER_ARGUMENTS.get(name.lower(), ())
        missing = [key for key, p in parameters.items()
                   if p.default is inspect.Parameter.empty and key not in kwargs and key not in filled]
        if missing:
            raise ValueError(
                f"`lr_scheduler_kwargs` must give {missing} for lr_scheduler={name!r} ({self.scheduler_cls.__name__})"
            )

    # -- what subclasses define -------------------------------------------------------------------
    #: whether the loss is linear in the targets, so mixup's mixed loss is the loss of mixed targets (classifiers)
    supports_mixup: bool = True

    @abstractmethod
    def configure_metrics(self) -> MetricCollection:
        """The metrics logged for every stage; keys become ``<stage>_<key>``."""

    def configure_eval_metrics(self) -> dict[str, Metric]:
        """Metrics logged on validation and test only, on top of :meth:`configure_metrics` (none here)."""
        return {}

    @abstractmethod
    def compute_loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        """The training objective for a batch."""

    def logged_metric_names(self, stage: str) -> list[str]:
        """The metrics logged once per epoch for ``stage`` (``train``, ``val``, ``test``).

        Example:
            >>> from lit_reg.models import BitmojiClassifier
            >>> BitmojiClassifier(input_size=4, hidden_sizes=[2]).logged_metric_names("val")
            ['val_loss', 'val_acc', 'val_f1', 'val_auroc']
        """
        names = [f"{stage}_loss", *(f"{stage}_{key}" for key in self.configure_metrics())]
        if stage == "train":
            return [*names, "train_data_loss"]
        return [*names, *(f"{stage}_{key}" for key in self.configure_eval_metrics())]

    def metric_inputs(self, outputs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(preds, target)`` as the metrics expect them."""
        return outputs, target

    def predict_outputs(self, outputs: Tensor) -> Any:
        """What :meth:`predict_step` returns for a batch of network outputs."""
        return outputs

    # -- shared steps -----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Fail before any step when the datamodule's ``input_size`` differs from the model's."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_size = getattr(datamodule, "input_size", None)
        if data_size is not None and data_size != self.hparams.input_size:
            raise ValueError(
                f"{type(datamodule).__name__} gives {data_size} input features per sample but "
                f"{type(self).__name__} has input_size={self.hparams.input_size}; set the model's input_size to "
                f"{data_size} (the lit-reg CLI links it from the data) or change the data (e.g. image_size)."
            )

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets `_current_fx_name` (a string) before and after every hook it calls on the module or a
        # callback, about 40 times per training step; nn.Module.__setattr__ first checks each value against the
        # parameters, buffers and submodules. A string is none of those: store it directly.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))

    def penalized_parameters(self) -> list[nn.Parameter]:
        """The parameters the penalties apply to: weight matrices only, or all with ``penalize_all_parameters``."""
        return [p for p in self.parameters() if self.hparams.penalize_all_parameters or p.ndim > 1]

    def penalty(self) -> Tensor:
        """The weight terms of the training loss (a scalar tensor): ``l1_penalty·Σ|w| + l2_penalty·Σw²`` over
        :meth:`penalized_parameters`, plus ``orthogonal_penalty·Σ‖W Wᵀ − I‖²_F`` over the ``Linear`` weights."""
        hp = self.hparams
        total = torch.zeros((), device=self.device)
        if hp.l1_penalty or hp.l2_penalty:
            total = total + weight_penalty(self.penalized_parameters(), hp.l1_penalty, hp.l2_penalty)
        if hp.get("orthogonal_penalty"):
            # W Wᵀ from the fp32 weights in fp32: under mixed precision autocast would run the product in bf16/fp16
            with torch.autocast(self.device.type, enabled=False):
                total = total + hp.orthogonal_penalty * orthogonality_penalty([m.weight for m in self.linear_layers])
        return total

    def _record_activation(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        if self.training and torch.is_grad_enabled():  # not a no-grad pass in train mode (batch-norm statistics)
            self._hidden_activations.append(output)

    def activity_penalty(self) -> Tensor:
        """``activity_l1·mean|h| + activity_l2·mean h²`` over the hidden activations of the last training forward
        pass (0 when there are none), then forgets them."""
        activations, self._hidden_activations = self._hidden_activations, []
        if not activations:
            return torch.zeros((), device=self.device)
        # summed in fp32 (activations are bf16/fp16 under mixed precision; `.float()` is a no-op on fp32 ones)
        return activity_penalty([h.float() for h in activations], self.hparams.activity_l1, self.hparams.activity_l2)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str, batch_idx: int = 0) -> Tensor:
        """Loss of the batch; updates the stage's metrics and hands them to ``self.log`` on batch 0."""
        x, target = batch
        mixing = stage == "train" and self.hparams.get("mixup_alpha") is not None
        self._hidden_activations = []  # the activity penalty sees this forward pass only
        if mixing:
            x, partner, lam = mixup(x, target, self.hparams.mixup_alpha)
            outputs = self(x)
            loss = torch.lerp(self.compute_loss(outputs, partner), self.compute_loss(outputs, target), lam)
            target = target if lam >= 0.5 else partner  # the metrics score the dominant target
        else:
            outputs = self(x)
            loss = self.compute_loss(outputs, target)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        data_loss = loss
        penalized = stage == "train" and self._penalized
        if penalized:
            loss = loss + self.penalty() + self.activity_penalty()
        loss_mean: DeferredUpdates = getattr(self, f"{stage}_loss_mean")
        # the metrics in fp32: under mixed precision the outputs are bf16/fp16 (`.float()` is free on fp32 outputs)
        preds, labels = self.metric_inputs(outputs.detach().float(), target)
        if stage == "train" and self.keep_last_train_batch:
            self.last_train_batch = (preds, labels)
        for metric in metrics.values(copy_state=False):
            metric.defer(preds, labels)
        # the loss once per sample: a batch-size weighted mean, as `self.log(..., batch_size=n)` gave
        # (MeanMetric's `weight` argument is dropped when nan_strategy="disable", torchmetrics 1.9)
        loss_mean.defer(loss.detach().expand(x.shape[0]))
        if penalized:
            self.train_data_loss_mean.defer(data_loss.detach().expand(x.shape[0]))
        if batch_idx == 0:
            self.log(f"{stage}_loss", loss_mean, on_step=False, on_epoch=True, prog_bar=True)
            if stage == "train":  # without penalties the data loss is the loss: log the same metric again
                self.log("train_data_loss", self.train_data_loss_mean if penalized else loss_mean, on_step=False,
                         on_epoch=True)
            self.log_dict(metrics, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train", batch_idx)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's step, then the ``max_norm`` constraint on the hidden units' incoming weights."""
        super().optimizer_step(*args, **kwargs)
        if self.hparams.get("max_norm") is not None:
            apply_max_norm([m.weight for m in self.linear_layers[:-1]], self.hparams.max_norm)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val", batch_idx)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test", batch_idx)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_outputs(self(x).float())  # fp32 probabilities under mixed precision too

    def on_train_epoch_start(self) -> None:
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True)

    def _optimizer_arguments(self) -> dict[str, Any]:
        """The torch optimizer's keyword arguments: ``lr``, ``weight_decay``, momentum, then ``optimizer_kwargs``."""
        kwargs: dict[str, Any] = {"lr": self.hparams.lr, "weight_decay": self.hparams.weight_decay}
        if self.hparams.optimizer.lower() in MOMENTUM_OPTIMIZERS:
            kwargs["momentum"] = self.hparams.momentum
        if self.hparams.optimizer.lower() == "sgd":
            kwargs["nesterov"] = self.hparams.nesterov
        # JSON and YAML have lists only: betas=[0.9, 0.99] reaches the optimizer as the tuple torch documents
        extra = {key: tuple(value) if isinstance(value, list) else value
                 for key, value in (self.hparams.optimizer_kwargs or {}).items()}
        if "foreach" in inspect.signature(self.optimizer_cls).parameters and not extra.get("fused"):
            kwargs["foreach"] = True  # one multi-tensor update per step (the default only on CUDA)
        return {**kwargs, **extra}

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_cls(self.parameters(), **self._optimizer_arguments())
        if self.scheduler_cls is None and not self.hparams.lr_warmup:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self._scheduler_config(optimizer)}

    def _scheduler_config(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The Lightning scheduler config: the scheduler (after a warm-up in ``SequentialLR`` with ``lr_warmup``),
        its interval and (plateau) the monitored metric."""
        warmup = self.hparams.lr_warmup
        if self.scheduler_cls is None:  # warm-up alone: LinearLR keeps the rate once it reaches lr
            return {"scheduler": self._warmup_scheduler(optimizer, warmup), "interval": "epoch"}
        name = self.hparams.lr_scheduler.lower()
        kwargs = dict(self.hparams.lr_scheduler_kwargs or {})
        if name == "cosine":
            if "T_max" not in kwargs:
                epochs = self.trainer.max_epochs
                if epochs is None or epochs < 1:
                    raise ValueError("lr_scheduler='cosine' needs `lr_scheduler_kwargs` T_max when max_epochs is not "
                                     "set")
                if epochs <= warmup:
                    raise ValueError(f"lr_scheduler='cosine' after `lr_warmup`={warmup} epochs needs max_epochs > "
                                     f"{warmup} (got {epochs}) or `lr_scheduler_kwargs` T_max")
                kwargs["T_max"] = epochs - warmup
        if name == "cyclic":
            kwargs.setdefault("base_lr", self.hparams.lr)
            kwargs.setdefault("cycle_momentum", self.hparams.momentum > 0)
        if name == "onecycle":
            kwargs.setdefault("max_lr", self.hparams.lr)
            if "total_steps" not in kwargs:
                steps = self.trainer.estimated_stepping_batches
                if steps == float("inf"):
                    raise ValueError("lr_scheduler='onecycle' needs `lr_scheduler_kwargs` total_steps when neither "
                                     "max_epochs nor max_steps is set")
                if steps <= warmup:
                    raise ValueError(f"lr_scheduler='onecycle' after `lr_warmup`={warmup} batches needs a longer fit "
                                     f"(it has {int(steps)} batches) or `lr_scheduler_kwargs` total_steps")
                kwargs["total_steps"] = int(steps) - warmup
            kwargs.setdefault("cycle_momentum", self.hparams.momentum > 0)
        scheduler = self.scheduler_cls(optimizer, **kwargs)
        if warmup:
            scheduler = torch.optim.lr_scheduler.SequentialLR(
                optimizer, [self._warmup_scheduler(optimizer, warmup), scheduler], milestones=[warmup])
        config: dict[str, Any] = {"scheduler": scheduler, "interval": "step" if name in STEP_SCHEDULERS else "epoch"}
        if name == "plateau":
            config["monitor"] = "val_loss"
        return config

    @staticmethod
    def _warmup_scheduler(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LinearLR:
        """``LinearLR`` from 1/(steps+1) of the rate up to the whole rate after ``steps`` steps."""
        return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / (steps + 1), total_iters=steps)

    # -- checkpoints ------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the model class and the RNG state, so a resumed fit continues exactly (dropout masks too)."""
        checkpoint["lit_reg"] = {"model_class": type(self).__qualname__, "torch_rng_state": torch.get_rng_state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another model class with one clear error; restore the RNG state on resume."""
        saved = checkpoint.get("lit_reg", {})
        saved_class = saved.get("model_class")
        if saved_class is not None and saved_class != type(self).__qualname__:
            raise ValueError(
                f"the checkpoint was saved by {saved_class}, not {type(self).__qualname__}: load it with "
                f"{saved_class}.load_from_checkpoint(...) or pick a checkpoint of {type(self).__qualname__}"
            )
        trainer = self._trainer
        if "torch_rng_state" in saved and trainer is not None and trainer.state.fn == "fit":
            torch.set_rng_state(saved["torch_rng_state"])

    @property
    def linear_layers(self) -> list[nn.Linear]:
        """The ``nn.Linear`` layers of the dense stack, input to output."""
        return [m for m in self.net if isinstance(m, nn.Linear)]
