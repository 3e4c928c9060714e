"""The first cell of every lecture notebook: FAST mode, the run folder and the FashionMNIST folder.

Example::

    from lit_reg.notebook import lecture_setup

    setup = lecture_setup("lecture_004", fashion_mnist=True)
    data = FashionMNISTDataModule(setup.data_dir, download=False)
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from datamodules.fakes import write_fashion_mnist

#: where Debian's ``dataset-fashion-mnist`` package puts Zalando's four ``.gz`` files
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@dataclass(frozen=True)
class LectureSetup:
    """What a notebook's cells read: ``fast`` (tiny data, few epochs), ``logs`` (its runs) and ``data_dir``."""

    fast: bool
    logs: Path
    data_dir: str | None = None


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding ``pyproject.toml``."""
    start = Path.cwd() if start is None else start
    return next((p for p in (start, *start.parents) if (p / "pyproject.toml").is_file()), start)


def example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` of the checkout this package lives in, so a notebook reuses an example's runs and
    figures instead of copying them (the examples import their ``_common`` helpers: ``examples/`` goes on the path).

    Raises:
        FileNotFoundError: lit_reg is installed without its checkout (the examples are not packaged).
    """
    folder = Path(__file__).resolve().parents[1] / "examples"
    if not (folder / f"{name}.py").is_file():
        raise FileNotFoundError(f"no example {name!r} in {folder}: the notebooks need a checkout of lit_reg "
                                "(git clone), where examples/ sits beside lit_reg/")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def lecture_setup(name: str, fashion_mnist: bool = False, environ: Mapping[str, str] = os.environ) -> LectureSetup:
    """Read ``LIT_REG_FAST`` and pick the notebook's run folder and, if asked, its FashionMNIST folder.

    - ``LIT_REG_FAST=1``: a smoke test: runs go to a new temporary folder and the data are small generated
      FashionMNIST-format files (the numbers then mean nothing).
    - Otherwise runs go to ``<project>/logs/notebooks/<name>`` and the data are the real set from
      ``$LIT_REG_FASHION_MNIST`` (default: Debian's folder); generated files stand in where it is missing.
    """
    fast = environ.get("LIT_REG_FAST", "0") == "1"
    logs = Path(tempfile.mkdtemp(prefix=f"lit_reg_{name}_")) if fast else project_root() / "logs" / "notebooks" / name
    data_dir = None
    if fashion_mnist:
        real = Path(environ.get("LIT_REG_FASHION_MNIST", DEBIAN_FASHION_MNIST))
        if fast or not any(real.glob("**/train-images-idx3-ubyte*")):
            data_dir = str(logs / "fake_fashion_mnist")
            write_fashion_mnist(data_dir, num_train=300, num_test=100)
            print(f"generated FashionMNIST-like images in {data_dir} (not the real set: the numbers mean nothing)")
        else:
            data_dir = str(real)
    print(f"FAST={fast}, " + (f"data in {data_dir}, " if data_dir else "") + f"runs in {logs}")
    return LectureSetup(fast=fast, logs=logs, data_dir=data_dir)
