# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lecture 002: regularization as shrinkage, and memorization
#
# Two experiments of the regularization lecture, with lit_reg:
#
# 1. **Weight norm.** An over-parameterized net (1-300-500-1 LeakyReLU) memorizes 10 noisy points of y = 2x: the
#    training loss falls toward 0, the loss on the clean line rises, and the total Frobenius norm of the weights
#    grows. Weight decay shrinks the weights and keeps the norm lower (`examples/weight_norm.py`).
# 2. **Memorization.** A dense net reaches 100 % training accuracy on clean labels, on 15 % noisy labels and
#    even on random labels: training accuracy says nothing about generalization, the validation accuracy does.
#    The lecture used 100 Animal Faces images (`examples/memorization.py`, `configs/memorization.yaml`, which
#    need the AFHQ archive); here the datamodules' `label_noise` does the same on a small FashionMNIST subset.

# %%
# %matplotlib inline
import pytorch_lightning as pl
from matplotlib.figure import Figure

from datamodules import FashionMNISTDataModule
from lit_reg import DenseClassifier, default_callbacks, default_logger
from lit_reg.callbacks import LearningCurves, RegressionFit, WeightNormMonitor
from lit_reg.notebook import example, lecture_setup

setup = lecture_setup("lecture_002", fashion_mnist=True)
FAST, LOGS, DATA_DIR = setup.fast, setup.logs, setup.data_dir

# %% [markdown]
# ## 1. The weight norm grows while the net over-fits; weight decay keeps it lower
#
# The lecture's net and optimizer (Adam, lr 1e-4, one full batch of the 10 points per epoch) for 3000 epochs,
# once without and once with weight decay 0.1. `WeightNormMonitor` (one of the default callbacks) records the
# total Frobenius norm of the weights after every epoch; validation (the clean line) runs every 10th epoch.

# %%
EPOCHS = 10 if FAST else 3000
weight_norm = example("weight_norm")  # examples/weight_norm.py: the same runs and figure, as a script


def weight_norm_run(weight_decay: float) -> tuple[LearningCurves, WeightNormMonitor, RegressionFit]:
    fit = RegressionFit()
    _, curves, norms = weight_norm.train(weight_decay, EPOCHS, str(LOGS), extra_callbacks=[fit])
    return curves, norms, fit


norm_runs = {label: weight_norm_run(decay) for label, decay in (("no weight decay", 0.0), ("weight decay 0.1", 0.1))}
for label, (curves, norms, _) in norm_runs.items():
    val = [v["val_loss"] for _, v in sorted(curves.history.items()) if "val_loss" in v]
    print(f"{label:<18} norm {norms.history[0][1]:.1f} -> {norms.history[-1][1]:.1f}, "
          f"training MSE at the end {curves.history[max(curves.history)]['train_loss']:.2f}, "
          f"validation MSE best {min(val):.2f}, at the end {val[-1]:.2f}")

# %%
figure = weight_norm.plot({label: (curves, norms) for label, (curves, norms, _) in norm_runs.items()})
figure.suptitle(f"1-300-500-1 LeakyReLU on the linear toy set, {EPOCHS} epochs")
figure.tight_layout()
figure

# %% [markdown]
# Lecture: the norm grows while the net over-fits; weight decay keeps it lower. Measured here with 3000 epochs
# (`docs/lectures.md`): without weight decay the norm grows 19.5 → 29.7, the training MSE falls 6.2 → 0.24 and
# the validation MSE rises from 0.30 (its best) to 6.3; with weight decay 0.1 the norm falls to 10.3 and the
# validation MSE ends at 1.16. What the memorizing net draws through the points (`RegressionFit`):

# %%
norm_runs["no weight decay"][2].last_figure

# %% [markdown]
# and with weight decay:

# %%
norm_runs["weight decay 0.1"][2].last_figure

# %% [markdown]
# ## 2. Memorization: clean, noisy and random labels
#
# A small training set (1000 FashionMNIST images; validation and test stay whole), a wide net (784-1024-512-10,
# Adam) trained long without early stopping. `label_noise=p` with `label_noise_mode="shuffle"` permutes the
# labels of a share p of the training images among themselves, as the lecture's archives do (`p=1.0`: random
# labels); validation labels stay clean.

# %%
MEMORIZATION_EPOCHS = 3 if FAST else 100
HIDDEN = [32] if FAST else [1024, 512]
SETTINGS = {"clean labels": 0.0, "15 % label noise": 0.15, "random labels": 1.0}


def memorization_run(label_noise: float) -> LearningCurves:
    pl.seed_everything(2021, verbose=False)
    data = FashionMNISTDataModule(DATA_DIR, batch_size=128, download=False, train_size=100 if FAST else 1000,
                                  label_noise=label_noise, label_noise_mode="shuffle")
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=HIDDEN, lr=1e-3)
    # the last epoch's weights, not the best checkpoint's: memorizing is the point
    callbacks = default_callbacks(early_stopping=False, weight_norm=False, restore_best_weights=False, figures=False)
    trainer = pl.Trainer(max_epochs=MEMORIZATION_EPOCHS, callbacks=callbacks,
                         logger=default_logger(f"memorization_noise_{label_noise}", save_dir=str(LOGS)),
                         enable_progress_bar=not FAST, enable_model_summary=False, log_every_n_steps=1,
                         deterministic=True)
    trainer.fit(model, datamodule=data)
    return next(c for c in callbacks if isinstance(c, LearningCurves))


memorized = {setting: memorization_run(noise) for setting, noise in SETTINGS.items()}

# %%
figure = Figure(figsize=(12.8, 4.8))
for axes, (setting, curves) in zip(figure.subplots(1, len(memorized)), memorized.items(), strict=True):
    for key, label, style in (("train_acc", "training (noisy labels)", "-"), ("val_acc", "validation", "--")):
        points = [(epoch + 1, values[key]) for epoch, values in sorted(curves.history.items()) if key in values]
        axes.plot(*zip(*points, strict=True), style, label=label)
    axes.axhline(0.1, color="grey", linestyle=":", label="chance (10 classes)")
    axes.set(xlabel="epochs trained", ylabel="accuracy", ylim=(0, 1.05), title=setting)
    axes.legend()
figure.suptitle("Memorization: 784-1024-512-10 on a FashionMNIST subset")
figure.tight_layout()
figure

# %%
for setting, curves in memorized.items():
    last = curves.history[max(curves.history)]
    reached = next((epoch + 1 for epoch, v in sorted(curves.history.items()) if v.get("train_acc", 0) >= 0.99), None)
    print(f"{setting:<18} train acc {last['train_acc']:.3f} (99 % after {reached or '-'} epochs), "
          f"val acc {last['val_acc']:.3f}")

# %% [markdown]
# Lecture 002: training accuracy reaches 100 % in all three settings (random labels included; about 74 s on the
# lecture's machine), while the validation accuracy falls to chance for random labels. On generated Animal-Faces
# images (`python examples/memorization.py --fast --epochs 200`, `docs/lectures.md`) all three reached 1.00
# training accuracy (after 18, 25 and 65 epochs) with validation accuracy 0.56, 0.56 and 0.17.
