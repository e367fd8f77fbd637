"""The tensors a user's data come in, checked and converted before training sees them.

A user-written data loader (sweepbench.data.datasets.load with a callable) and a local data file
(sweepbench.data.local) both give `parts`: x_train, y_train, x_test, y_test and optionally x_val,
y_val, as torch tensors or numpy arrays. `check` refuses anything a model could not train on with
one line naming who gave the data, the bad part and what was expected, and converts the rest:

- x: float32, float64 (becomes float32) or uint8 (images: stored as is, scaled by 1/255 per batch);
  uint8 in every split or float in every split; the same per-sample shape; finite values.
- y: one value per sample, shape (N,), as many as x. Multiclass: integer class labels 0..C-1,
  stored as int64, C = largest label + 1 over all splits; binary: 0/1 (bool, integer or float),
  stored as float32, C = 2; regression: finite float targets, stored as float32, C = 0.
- every split holds at least one sample.

numpy only (no torch): a torch tensor is checked through its numpy view (zero copy on the CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweepbench import SweepbenchError

KEYS = ("x_train", "y_train", "x_test", "y_test")
VAL_KEYS = ("x_val", "y_val")
EXPECTED_KEYS = "x_train, y_train, x_test, y_test (optionally x_val, y_val)"
TASKS = ("multiclass", "binary", "regression")
X_DTYPES = ("float32", "float64", "uint8")


@dataclass
class Checked:
    """Parts that passed `check`: numpy arrays, x float32 or uint8, y int64 or float32."""

    parts: dict
    scale: float        # 1/255 for uint8 images, else 1.0
    n_classes: int      # multiclass: classes; binary: 2; regression: 0

    @property
    def has_val(self) -> bool:
        return "x_val" in self.parts


def expected_dtype(key: str, task: str) -> str:
    """What a part's dtype must be, in words (the second half of a dtype error)."""
    if key.startswith("x_"):
        return "float32, float64 or uint8 (image) inputs"
    return {"multiclass": "integer class labels (int64) for task multiclass",
            "binary": "0/1 labels (bool, integer or float) for task binary",
            "regression": "float targets (float32) for task regression"}[task]


def from_returned(value, prefix: str) -> dict:
    """A user loader's return value as a dict of parts. Allowed: a dict with the keys, or a tuple
    (or list) of 4 or 6 arrays in the order x_train, y_train, x_test, y_test[, x_val, y_val]."""
    if isinstance(value, dict):
        return value
    if isinstance(value, (tuple, list)):
        if len(value) in (4, 6):
            return dict(zip(KEYS + VAL_KEYS, value))
        raise SweepbenchError(f"{prefix} a {type(value).__name__} of {len(value)}; expected 4 (x_train, y_train, "
                              "x_test, y_test) or 6 (x_train, y_train, x_test, y_test, x_val, y_val)")
    raise SweepbenchError(f"{prefix} a {type(value).__name__}; expected a dict with {EXPECTED_KEYS}, "
                          "or a tuple of 4 or 6 in that order")


def present_keys(parts: dict, prefix: str) -> tuple[str, ...]:
    """The parts to use: the four required keys, plus x_val and y_val when either is there. A key
    missing, or an unknown key that starts with x_ or y_ (a misspelt x_valid would otherwise be
    ignored silently), is refused; other keys (a file's class names, notes) are ignored."""
    keys = KEYS + (VAL_KEYS if any(k in parts for k in VAL_KEYS) else ())
    for key in keys:
        if key not in parts:
            raise SweepbenchError(f"{prefix} no {key}; expected {EXPECTED_KEYS}")
    unknown = sorted(k for k in parts if isinstance(k, str) and k.startswith(("x_", "y_")) and k not in keys)
    if unknown:
        raise SweepbenchError(f"{prefix} an unknown part {unknown[0]!r}; expected {EXPECTED_KEYS}")
    return keys


def as_array(value, key: str, task: str, prefix: str) -> np.ndarray:
    """A part as a numpy array (a CPU torch tensor's zero-copy view); refuses other types and torch
    dtypes numpy cannot hold (bfloat16)."""
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.split(".")[0] == "torch" and hasattr(value, "detach"):
        try:
            return value.detach().cpu().numpy()
        except (TypeError, RuntimeError):
            raise SweepbenchError(f"{prefix} {key} of dtype {value.dtype}; expected {expected_dtype(key, task)}") \
                from None
    raise SweepbenchError(f"{prefix} {key} of type {type(value).__name__}; expected a torch tensor or numpy array")


def check(parts: dict, task: str, prefix: str, n_classes: int | None = None) -> Checked:
    """Check and convert a source's parts (the module docstring lists the rules). `prefix` starts
    every message, e.g. "workload my.py:small_cnn: its data loader returned"; `n_classes` (an image
    folder's class count) replaces the largest label + 1."""
    if task not in TASKS:
        raise SweepbenchError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
    keys = present_keys(parts, prefix)
    dtypes = {k: _dtype_name(parts[k]) for k in keys}
    arrays = {k: as_array(parts[k], k, task, prefix) for k in keys}
    splits = [s for s in ("train", "val", "test") if f"x_{s}" in arrays]
    for split in splits:
        _check_split(arrays, dtypes, split, task, prefix)
    out = {}
    for split in splits:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        out[f"x_{split}"] = x.astype(np.float32) if x.dtype == np.float64 else x
        _check_finite(out[f"x_{split}"], f"x_{split}", prefix)
        out[f"y_{split}"] = _labels(y, f"y_{split}", task, prefix)
    if task == "multiclass":
        classes = max(int(out[f"y_{s}"].max()) for s in splits) + 1
        n_classes = classes if n_classes is None else max(n_classes, classes)
    else:
        n_classes = 2 if task == "binary" else 0
    return Checked(out, 1 / 255 if arrays["x_train"].dtype == np.uint8 else 1.0, n_classes)


def _dtype_name(value) -> str:
    """How the user wrote the dtype: torch.float32 for a tensor, numpy.float64 for an array."""
    if isinstance(value, np.ndarray):
        return f"numpy.{value.dtype}"
    return str(getattr(value, "dtype", type(value).__name__))


def _check_split(arrays: dict, dtypes: dict, split: str, task: str, prefix: str) -> None:
    """One split's x and y: dtypes, shapes, equal lengths, not empty, and like the training split."""
    xk, yk = f"x_{split}", f"y_{split}"
    x, y = arrays[xk], arrays[yk]
    if x.dtype.name not in X_DTYPES:
        raise SweepbenchError(f"{prefix} {xk} of dtype {dtypes[xk]}; expected {expected_dtype(xk, task)}")
    if not _label_dtype_fits(y.dtype, task):
        raise SweepbenchError(f"{prefix} {yk} of dtype {dtypes[yk]}; expected {expected_dtype(yk, task)}")
    if x.ndim == 0:
        raise SweepbenchError(f"{prefix} {xk} of shape (); expected one sample per row (shape (N, ...))")
    if y.ndim != 1:
        raise SweepbenchError(f"{prefix} {yk} of shape {tuple(y.shape)}; expected one value per sample "
                              "(shape (N,))")
    if len(x) != len(y):
        raise SweepbenchError(f"{prefix} {xk} with {len(x)} samples and {yk} with {len(y)}; expected one "
                              "label per sample")
    if len(x) == 0:
        raise SweepbenchError(f"{prefix} an empty {xk} (0 samples); expected at least one sample")
    first = arrays["x_train"]
    if split != "train" and x.shape[1:] != first.shape[1:]:
        raise SweepbenchError(f"{prefix} {xk} with samples of shape {tuple(x.shape[1:])}; expected "
                              f"{tuple(first.shape[1:])} like x_train")
    if split != "train" and (x.dtype == np.uint8) != (first.dtype == np.uint8):
        like = "uint8" if first.dtype == np.uint8 else "float32 or float64"
        raise SweepbenchError(f"{prefix} {xk} of dtype {dtypes[xk]}; expected {like} like x_train")


def _label_dtype_fits(dtype: np.dtype, task: str) -> bool:
    """Multiclass: any integer dtype; binary: bool, integer or float; regression: float."""
    allowed = {"multiclass": "iu", "binary": "biuf", "regression": "f"}[task]
    return dtype.kind in allowed


def _check_finite(x: np.ndarray, key: str, prefix: str) -> None:
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise SweepbenchError(f"{prefix} {key} with non-finite values (NaN or infinity); expected finite numbers")


def _labels(y: np.ndarray, key: str, task: str, prefix: str) -> np.ndarray:
    """Labels as training stores them: multiclass int64 (no negative label), binary float32 (only
    0 and 1), regression float32 (finite)."""
    if task == "multiclass":
        if y.min() < 0:
            raise SweepbenchError(f"{prefix} {key} with negative labels (smallest {y.min()}); expected class "
                                  "labels 0..C-1")
        return y.astype(np.int64)
    if task == "binary":
        odd = y[(y != 0) & (y != 1)]
        if len(odd):
            raise SweepbenchError(f"{prefix} {key} with values other than 0 and 1 (e.g. {odd[0]}); expected 0/1 "
                                  "labels for task binary")
        return y.astype(np.float32)
    y = y.astype(np.float32)
    _check_finite(y, key, prefix)
    return y
