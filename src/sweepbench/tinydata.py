"""Tiny MNIST-format datasets in the real on-disk (IDX) format, for smoke runs and tests.

torchvision's real loading code reads them like the real files, so `smoke=true` runs
exercise every study end to end in seconds without the 60,000-image downloads.
"""

from __future__ import annotations

import os
import struct

import numpy as np

FOLDERS = {"mnist": "MNIST", "fmnist": "FashionMNIST"}


def write_idx(path: str, array: np.ndarray) -> None:
    """Write an IDX file (MNIST's format: magic 0x0000080N, big-endian dims, uint8 data)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())
    os.replace(tmp, path)


def write_tiny_dataset(raw_dir: str, folder: str = "MNIST", n_train: int = 256, n_test: int = 64,
                       seed: int = 0) -> str:
    """Learnable MNIST-like data: class k has a bright 4x4 square at a class-specific place.
    Writes the four IDX files torchvision expects under <raw_dir>/<folder>/raw/."""
    rng = np.random.RandomState(seed)
    raw = os.path.join(raw_dir, folder, "raw")
    os.makedirs(raw, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.randint(0, 10, n)
        images = rng.randint(0, 40, (n, 28, 28))
        for i, k in enumerate(labels):
            r, c = 2 + (k // 5) * 12, 2 + (k % 5) * 5
            images[i, r:r + 4, c:c + 4] = 250
        write_idx(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), images)
        write_idx(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), labels)
    return raw
