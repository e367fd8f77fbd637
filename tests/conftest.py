"""Shared fixtures: tiny MNIST-format datasets in the real on-disk (IDX) format."""

import os
import struct
import subprocess
import sys

import numpy as np
import pytest


def write_idx(path, array: np.ndarray) -> None:
    """Write an IDX file (the MNIST format: magic 0x0000080N, big-endian dims, uint8 data)."""
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def make_tiny_mnist(raw_dir, folder="MNIST", n_train=64, n_test=32, seed=0) -> str:
    """Tiny learnable MNIST-like data: class k has a bright 4x4 square at a class-specific spot."""
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


@pytest.fixture
def tiny_image_data(tmp_path):
    """raw_dir and data_dir with tiny MNIST and Fashion-MNIST in torchvision's layout."""
    raw_dir = tmp_path / "data"
    make_tiny_mnist(raw_dir, "MNIST", seed=0)
    make_tiny_mnist(raw_dir, "FashionMNIST", seed=1)
    return {"raw_dir": str(raw_dir), "data_dir": str(tmp_path / "resources")}


def run_cli(*args, cwd=None):
    """Run the sweepbench command in a fresh process; returns CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "sweepbench.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)
