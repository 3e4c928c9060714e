"""README's commands work as written from a fresh clone: every ``lit-reg`` line of its bash blocks that needs no
download runs and exits 0; the others are listed here with the reason they are skipped."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: README lines (their start) that are not run here, and why
SKIPPED = {
    "lit-reg fit --model DenseClassifier --data FashionMNISTDataModule": "downloads FashionMNIST (30 MB)",
    "lit-reg fit --config configs/fashion_mnist_best.yaml": "30 epochs on the real FashionMNIST (tests/bench)",
    "lit-reg study configs/studies/regularizer_ranking.yaml": "63 fits on the real FashionMNIST (docs/studies.md)",
}


def readme_commands() -> list[str]:
    """Every ``lit-reg`` command of README's bash blocks, continuation lines joined, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("lit-reg "):
                commands.append(re.sub(r"\s+", " ", line))
    return commands


def test_readme_is_short_and_has_the_two_commands_first():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[0] == "Two commands" and "make demo" in text and "make test" in text


def test_every_skipped_command_is_still_in_readme():
    commands = readme_commands()
    assert all(any(c.startswith(start) for c in commands) for start in SKIPPED)


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in readme_commands() if not any(c.startswith(s) for s in SKIPPED)])
def test_readme_command_runs_as_written(command, tmp_path):
    """Run from a copy of the configs (relative paths as README writes them), with no network."""
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    args = shlex.split(command)
    out_file = None
    if ">" in args:  # `... --print_config > my.yaml`
        out_file = tmp_path / args[args.index(">") + 1]
        args = args[:args.index(">")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, "-m", "lit_reg", *args[1:]], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    if out_file is not None:
        out_file.write_text(result.stdout)
        assert "model:" in result.stdout and "trainer:" in result.stdout
    elif "--help" not in args:
        assert re.search(r"Final metrics: .*val_loss=", result.stdout), result.stdout[-2000:]
