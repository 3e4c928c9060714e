"""examples/decision_boundary.py with ``--fast``: every configuration trains, its numbers and the plots are there."""

import re

import numpy as np
import torch
from PIL import Image


def assert_png(path, min_size):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert pixels.std() > 10


def test_decision_boundary_example_fits_the_moons_and_draws_every_configuration(example, in_tmp_dir, capsys):
    threads = torch.get_num_threads()
    rows = example("decision_boundary").main(["--fast", "--out", "out"])
    assert torch.get_num_threads() == threads  # the example gives the threads back
    configurations = [(r["experiment"], r["configuration"]) for r in rows]
    depth_runs = [f"{a}, {d} hidden layer{'s' * (d > 1)}" for a in ("relu", "tanh") for d in (1, 2, 3, 4)]
    assert configurations == [
        *(("activation/depth", label) for label in depth_runs),
        ("regularization", "no penalty"), ("regularization", "L2 penalty 1e-2"), ("regularization", "dropout 0.3")]
    for row in rows:
        assert 0.75 < row["train acc"] <= 1.0 and 0.7 < row["val acc"] <= 1.0, row
        assert 1.0 < row["boundary length"] < 30 and 0.0 < row["mean |grad p|"] < 10, row
        if row["configuration"].startswith("relu"):
            assert row["train acc"] > 0.8  # the ReLU nets fit the training moons
    printed = capsys.readouterr().out
    table = {tuple(re.split(r"\s{2,}", line.strip())) for line in printed.splitlines()}
    for row in rows:
        assert (row["experiment"], row["configuration"], f"{row['train acc']:.4f}", f"{row['val acc']:.4f}",
                f"{row['boundary length']:.4f}", f"{row['mean |grad p|']:.4f}") in table
    out = in_tmp_dir / "out"
    assert_png(out / "activation_depth.png", (1400, 600))  # 4 × 2 panels
    assert_png(out / "regularization.png", (1000, 300))
    assert_png(out / "smoothness.png", (900, 380))
    runs = sorted(p.parent.parent.name for p in out.glob("*/version_0/decision_boundary.png"))
    assert runs == sorted([f"{a}_depth_{d}" for a in ("relu", "tanh") for d in (1, 2, 3, 4)]
                          + ["no_penalty", "L2_penalty_1e-2", "dropout_0.3"])
    assert "plot: out/activation_depth.png" in printed
