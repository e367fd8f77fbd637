"""The generated datasets (seeds 000/001's linear data, seed 003's 2-D points) as numpy arrays.

Importing this module is cheap (numpy, no torch): training wraps these arrays as tensors
(sweepbench.data.datasets), and the report draws the loss surface over the very training points
the runs saw without importing torch.
"""

from __future__ import annotations

import numpy as np


def linreg(rng: np.random.RandomState, spec: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeds 000/001: x ~ U(0, 10), y = w_gen * (x + N(0, 1)) + b_gen with w_gen=10, b_gen=2."""

    def draw(n):
        x = rng.uniform(0, 10, n).astype(np.float32)
        return x, (10.0 * (x + rng.normal(0.0, 1.0, n)) + 2.0).astype(np.float32)

    return drawn_splits(draw, 100, spec["val_size"] or 100)


def logreg2d(rng: np.random.RandomState, spec: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seed 003 part I: X ~ U([-2, 2]^2), label 1 where X @ [1, 2] + N(0, 0.2) >= 0.

    The seed draws one noise value for all points (np.random.normal without a size); this
    draws one per point, which is what its text describes.
    """
    w_opt = np.array([1.0, 2.0])

    def draw(n):
        x = ((rng.rand(n, 2) - 0.5) * 2 * 2).astype(np.float32)
        return x, ((x @ w_opt + rng.normal(0.0, 0.2, n)) >= 0).astype(np.float32)

    return drawn_splits(draw, 500, spec["val_size"] or 250)


GENERATORS = {"linreg": linreg, "logreg2d": logreg2d}


def drawn_splits(draw, n_train: int, n_val: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train, validation and test sets drawn in that order from a generator `draw(n) -> (x, y)`;
    the test set has as many samples as the validation set."""
    return [draw(n_train), draw(n_val), draw(n_val)]


def training_set(name: str, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """The training inputs and targets a run with this resolved spec trains on (train_size applied)."""
    (x, y), *_ = GENERATORS[name](np.random.RandomState(spec["data_seed"]), spec)
    n = spec["train_size"]
    return (x[:n], y[:n]) if n and n < len(y) else (x, y)
