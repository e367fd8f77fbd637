"""Datasets as in-memory tensors: train/val/test splits, never a DataLoader.

Which datasets exist, their sizes and shapes are declared once in sweepbench.data.registry;
each entry names its loader here. Generated problems (linreg, logreg2d: sweepbench.data.generated) and
scikit-learn's bundled digits need no files. MNIST, the mnist5k subset and Fashion-MNIST are read from a
compact tensor file `<data_dir>/<name>.pt` that `sweepbench prepare` (sweepbench.data.prepare) writes.
Images stay uint8 on the device and become float in `Splits.inputs` batch by batch, unless
the float copy is small (`as_float`), which saves a few tensor ops per step.

`load` also takes a user's own data: a local source (a .npz, .pt or .csv file or an image folder,
sweepbench.data.local) or a user-written loader function `loader(spec, generator)`. Both are checked
and converted by sweepbench.data.validate before training sees them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from sweepbench import SweepbenchError, workloads
from sweepbench.atomic import sha256_cached
from sweepbench.data import generated, local, registry, validate
from sweepbench.data.prepare import prepare, read_sources

FLOAT_COPY_LIMIT = 1 << 30  # bytes: images up to 1 GiB as float32 (MNIST's 70k: 220 MB) are converted once


@dataclass
class Splits:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    val_is_test: bool = False
    scale: float = 1.0          # inputs = (x * scale - mean) / std, applied per batch
    mean: float = 0.0
    std: float = 1.0
    n_classes: int = 0          # multiclass: classes; binary: 2; regression: 0

    def to(self, device) -> "Splits":
        device = torch.device(device)
        cuda = device.type == "cuda"  # copy from pinned memory without blocking; the first use waits
        moved = {k: (getattr(self, k).pin_memory() if cuda else getattr(self, k)).to(device, non_blocking=cuda)
                 for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        return Splits(**moved, val_is_test=self.val_is_test, scale=self.scale, mean=self.mean, std=self.std,
                      n_classes=self.n_classes)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs from stored samples (uint8 images become normalised float32)."""
        if x.dtype != torch.float32:  # .float() of a float32 tensor still costs ~7 µs a call
            x = x.float()
        if self.scale != 1.0:
            x = x * self.scale
        if self.mean != 0.0 or self.std != 1.0:
            x = (x - self.mean) / self.std
        return x

    def as_float(self, limit_bytes: int = FLOAT_COPY_LIMIT) -> "Splits":
        """The same splits with inputs already converted by `inputs` (so `inputs` does nothing
        per batch), when their float32 copy fits in limit_bytes; otherwise self unchanged.
        The values are identical: `inputs` is elementwise."""
        parts = (self.x_train, self.x_val, self.x_test)
        if all(x.dtype == torch.float32 for x in parts) and (self.scale, self.mean, self.std) == (1.0, 0.0, 1.0):
            return self
        if sum(x.numel() for x in parts) * 4 > limit_bytes:
            return self
        return Splits(self.inputs(self.x_train), self.y_train, self.inputs(self.x_val), self.y_val,
                      self.inputs(self.x_test), self.y_test, val_is_test=self.val_is_test, n_classes=self.n_classes)

    @property
    def sample_shape(self) -> tuple:
        """One sample's shape as stored, e.g. (3, 32, 32) or (4,); () for a scalar input."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_inputs(self) -> int:
        """Features per sample, flattened (the model's input size)."""
        return int(np.prod(self.x_train.shape[1:])) if self.x_train.dim() > 1 else 1

    @property
    def counts(self) -> dict:
        return {"n_train": len(self.y_train), "n_val": len(self.y_val), "n_test": len(self.y_test)}


def load(source, spec: dict, task: str = "multiclass", who: str | None = None) -> Splits:
    """The data of a resolved run spec as CPU tensors. `source` is a registry dataset name, a local
    source (sweepbench.data.local: a .npz, .pt or .csv file or an image folder) or a user-written
    loader `loader(spec, generator) -> parts` (`load_user`). `task` (multiclass, binary, regression)
    says what a user's labels must be; registry datasets ignore it. `who` names the source's owner in
    error messages, e.g. "workload my_workloads.py:small_cnn" (None: the source itself)."""
    source = _source(source, who)
    if callable(source):
        splits = load_user(source, spec, task, who)
    elif local.is_source(source):
        splits = load_local(source, spec, task, who)
    else:
        entry = registry.get(source)
        rng = np.random.RandomState(spec["data_seed"])
        if spec["synthetic"]:
            splits = _synthetic(source, spec, rng)
        else:
            splits = globals()[entry.loader](rng, dict(spec, dataset=source))
        splits.n_classes = entry.n_classes
    return _subset_train(splits, spec["train_size"])


def _source(source, who: str | None):
    """A source as load, describe and data_source take it: a path object becomes its text; text that
    is neither a registry name nor a local source (local.is_source) is refused naming both forms."""
    if isinstance(source, os.PathLike):
        return os.fspath(source)
    if isinstance(source, str):
        local.check_known(source, who)
    if not isinstance(source, str) and not callable(source):
        raise SweepbenchError(f"{who + ': ' if who else ''}bad data {source!r}; allowed: a dataset name, a path "
                              "or a data loader function loader(spec, generator)")
    return source


def load_user(loader, spec: dict, task: str, who: str | None) -> Splits:
    """A user-written loader's data: `loader(spec, generator)` with generator =
    torch.Generator().manual_seed(data_seed) returns a dict with x_train, y_train, x_test, y_test
    (optionally x_val, y_val) or a tuple of 4 or 6 in that order, as torch tensors or numpy arrays,
    checked by sweepbench.data.validate. Synthetic runs call it too, for the shapes, and then train
    on random tensors of those shapes (`_fake`)."""
    generator = torch.Generator().manual_seed(int(spec["data_seed"]))
    prefix = f"{who}: its data loader returned" if who else f"data loader {workloads.label(loader)} returned"
    parts = validate.from_returned(loader(spec, generator), prefix)
    splits = _checked_splits(validate.check(parts, task, prefix), spec)
    if spec["synthetic"]:
        g = torch.Generator().manual_seed(int(spec["data_seed"]))
        return Splits(*_fake(splits.x_train, splits.y_train, g), *_fake(splits.x_val, splits.y_val, g),
                      *_fake(splits.x_test, splits.y_test, g), val_is_test=splits.val_is_test,
                      scale=splits.scale, n_classes=splits.n_classes)
    return splits


def load_local(text: str, spec: dict, task: str, who: str | None) -> Splits:
    """A local source's data (sweepbench.data.local), after a memory check, checked by
    sweepbench.data.validate; synthetic runs get random tensors of its layout (`synthetic_local`)."""
    src = local.parse(text, who)
    if spec["synthetic"]:
        return synthetic_local(local.layout(src, spec, task), spec, task)
    local.check_memory(src)
    parts, n_classes = local.read(src, spec, task)
    return _checked_splits(validate.check(parts, task, src.holds, n_classes=n_classes), spec)


def _checked_splits(checked: validate.Checked, spec: dict) -> Splits:
    """Splits of checked parts; without a validation split, val_size training samples are held out
    (`_split_val`; unset or 0: validate on test)."""
    t = {k: torch.from_numpy(np.require(v, requirements=['C', 'W'])) for k, v in checked.parts.items()}
    if checked.has_val:
        splits = Splits(t["x_train"], t["y_train"], t["x_val"], t["y_val"], t["x_test"], t["y_test"],
                        scale=checked.scale)
    else:
        splits = _split_val(t["x_train"], t["y_train"], t["x_test"], t["y_test"], spec["val_size"] or 0,
                            scale=checked.scale)
    splits.n_classes = checked.n_classes
    return splits


def describe(source, spec: dict, task: str | None = None, who: str | None = None) -> registry.Dataset | None:
    """Cheap metadata of `source` for the planner: the registry entry of a dataset name; for a local
    source an entry built from its headers and labels (sweepbench.data.local.describe), whose
    train_samples(spec) is the exact training count a run sees; None for a user-written loader
    (only running it tells). `task` None infers classes from the labels; `who` as for `load`."""
    source = _source(source, who)
    if callable(source):
        return None
    if local.is_source(source):
        return local.describe(source, spec, task, who)
    return registry.get(source)


def _linreg(rng, spec) -> Splits:
    """Seeds 000/001's linear data (sweepbench.data.generated.linreg)."""
    return _tensor_splits(generated.linreg(rng, spec))


def _logreg2d(rng, spec) -> Splits:
    """Seed 003's 2-D points (sweepbench.data.generated.logreg2d)."""
    return _tensor_splits(generated.logreg2d(rng, spec))


def _tensor_splits(arrays: list[tuple[np.ndarray, np.ndarray]]) -> Splits:
    """Splits of the train, validation and test arrays that sweepbench.data.generated drew."""
    return Splits(*(torch.from_numpy(a) for pair in arrays for a in pair))


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (the same values as sklearn.datasets.load_digits()), read
    straight from the file scikit-learn ships: importing scikit-learn costs about a second
    per process, and a sweep has hundreds of processes."""
    import gzip

    path = registry.package_path(registry.get("digits"))
    if path is None:
        raise SweepbenchError("the digits workloads need scikit-learn's bundled data; "
                              "allowed: pip install scikit-learn")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def _digits(rng, spec) -> Splits:
    """scikit-learn's bundled 8x8 digits, pixels / 16; a 60/20/20 split fixed by data_seed."""
    data, target = digits_arrays()
    x = torch.from_numpy((data / 16.0).astype(np.float32))
    y = torch.from_numpy(target)
    order = torch.from_numpy(rng.permutation(len(y)))
    n_test = len(y) // 5
    n_val = n_test if spec["val_size"] is None else spec["val_size"]
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    if n_val == 0:
        return Splits(x[train], y[train], x[test], y[test], x[test], y[test], val_is_test=True)
    return Splits(x[train], y[train], x[val], y[val], x[test], y[test])


def tensor_file(name: str, data_dir: str) -> str:
    return os.path.join(data_dir, f"{name}.pt")


def _images(rng, spec: dict) -> Splits:
    """A prepared dataset's tensor file (written by sweepbench.data.prepare when missing)."""
    name = spec["dataset"]
    path = tensor_file(name, spec["data_dir"])
    if not os.path.exists(path):
        prepare(name, spec["raw_dir"], path, download=spec["download"])
    data = torch.load(path, map_location="cpu", weights_only=True)
    x_train, y_train = data["x_train"].unsqueeze(1), data["y_train"].long()
    x_test, y_test = data["x_test"].unsqueeze(1), data["y_test"].long()
    return _split_val(x_train, y_train, x_test, y_test, spec["val_size"] or 0, scale=1 / 255)


def _split_val(x_train, y_train, x_test, y_test, n_val: int, scale: float) -> Splits:
    """Hold out the last n_val training samples for validation (seed 003's 50k/10k); 0 = test."""
    if n_val == 0:
        return Splits(x_train, y_train, x_test, y_test, x_test, y_test, val_is_test=True, scale=scale)
    if n_val >= len(y_train):
        raise SweepbenchError(f"bad val_size {n_val}; allowed: 0 <= val_size < {len(y_train)} (training samples)")
    return Splits(x_train[:-n_val], y_train[:-n_val], x_train[-n_val:], y_train[-n_val:], x_test, y_test,
                  scale=scale)


def _synthetic(name: str, spec: dict, rng) -> Splits:
    """Random tensors with the real dataset's shapes, dtypes and counts (speed and smoke runs)."""
    g = torch.Generator().manual_seed(int(spec["data_seed"]))
    entry = registry.get(name)
    if entry.prepared:
        n_train, n_test = entry.n_train, entry.n_test
        x_tr = torch.randint(0, 256, (n_train, *entry.shape), dtype=torch.uint8, generator=g)
        x_te = torch.randint(0, 256, (n_test, *entry.shape), dtype=torch.uint8, generator=g)
        y_tr = torch.randint(0, 10, (n_train,), generator=g)
        y_te = torch.randint(0, 10, (n_test,), generator=g)
        return _split_val(x_tr, y_tr, x_te, y_te, spec["val_size"] or 0, scale=1 / 255)
    real = globals()[entry.loader](rng, spec)
    return Splits(*_fake(real.x_train, real.y_train, g), *_fake(real.x_val, real.y_val, g),
                  *_fake(real.x_test, real.y_test, g), val_is_test=real.val_is_test)


def _fake(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs uniform over x's range with x's shape and dtype, and y's labels shuffled."""
    x2 = torch.rand(x.shape, generator=g) * (x.max() - x.min()) + x.min()
    y2 = y[torch.randperm(len(y), generator=g)]
    return x2.to(x.dtype), y2


def synthetic_local(lay: local.Layout, spec: dict, task: str) -> Splits:
    """Random tensors of a local source's layout (sweepbench.data.local.Layout): its counts, sample
    shape and stored dtype (uint8 images scaled by 1/255, else float32 N(0, 1) features), labels
    uniform over its classes (binary: 0/1 as float32; regression: N(0, 1) targets), drawn with
    data_seed. Without a validation split, val_size is held out of training as for real data."""
    g = torch.Generator().manual_seed(int(spec["data_seed"]))

    def part(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if lay.x_dtype == "uint8":
            x = torch.randint(0, 256, (n, *lay.shape), dtype=torch.uint8, generator=g)
        else:
            x = torch.randn((n, *lay.shape), generator=g)
        if task == "regression":
            return x, torch.randn(n, generator=g)
        if task == "binary":
            return x, torch.randint(0, 2, (n,), generator=g).float()
        return x, torch.randint(0, max(lay.n_classes, 1), (n,), generator=g)

    scale = 1 / 255 if lay.x_dtype == "uint8" else 1.0
    train, test = part(lay.n_train), part(lay.n_test)
    if lay.n_val:
        splits = Splits(*train, *part(lay.n_val), *test, scale=scale)
    else:
        splits = _split_val(*train, *test, spec["val_size"] or 0, scale=scale)
    splits.n_classes = {"binary": 2, "regression": 0}.get(task, lay.n_classes)
    return splits


def _subset_train(splits: Splits, train_size: int) -> Splits:
    if train_size and train_size < len(splits.y_train):
        splits.x_train = splits.x_train[:train_size]
        splits.y_train = splits.y_train[:train_size]
    return splits


def featurewise_normalise(splits: Splits) -> Splits:
    """Seed 000's featurewise_center + featurewise_std_normalization: one mean and std from training."""
    x = splits.inputs(splits.x_train)
    splits.mean, splits.std = float(x.mean()), float(x.std())
    return splits


def data_source(source, spec: dict) -> dict:
    """Where a run's data came from (run.json provenance `data_source`): for a prepared dataset
    the tensor file with its sha256 and the raw files it was made from (path and sha256, from
    the sidecar sweepbench.data.prepare wrote); for bundled data the package file and its sha256;
    for generated and synthetic data the generator and data_seed. A sidecar that does not
    describe this tensor file (its recorded sha256 differs) is reported as unknown sources.
    A local source: sweepbench.data.local.data_source (kind `local`, format, path, sha256); a
    user-written loader: kind `user_loader` and `loader` '<module or file>:<function>' (sweepbench.workloads.label)."""
    source = _source(source, None)
    if callable(source):
        return {"kind": "user_loader", "loader": workloads.label(source), "data_seed": spec["data_seed"]}
    if local.is_source(source):
        return local.data_source(source, spec)
    name = source
    entry = registry.get(name)
    out = {"dataset": name, "data_seed": spec["data_seed"]}
    if spec["synthetic"]:
        return {**out, "kind": "synthetic", "generator": "sweepbench.data.datasets._synthetic"}
    if not entry.prepared:
        path = registry.package_path(entry)
        if path is None:
            return {**out, "kind": "generated", "generator": f"sweepbench.data.datasets.{entry.loader}"}
        return {**out, "kind": "bundled", "files": [{"path": path, "sha256": sha256_cached(path)}]}
    path = os.path.abspath(tensor_file(name, spec["data_dir"]))
    if not os.path.exists(path):
        return {**out, "kind": "prepared", "tensor_file": path, "tensor_sha256": None, "sources": None}
    digest = sha256_cached(path)

    try:
        sidecar = read_sources(path) or {}
    except SweepbenchError:  # unreadable: the sources are unknown, as for a sidecar of another tensor file
        sidecar = {}
    sources = sidecar.get("files") if sidecar.get("tensor_sha256") == digest else None
    return {**out, "kind": "prepared", "tensor_file": path, "tensor_sha256": digest, "sources": sources,
            "reader": sidecar.get("reader") if sources else None}


