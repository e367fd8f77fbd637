"""Shared fixtures: tiny MNIST-format datasets in the real on-disk (IDX) format (sweepbench.tinydata)."""

import subprocess
import sys

import pytest


def make_tiny_mnist(raw_dir, name="mnist", n_train=64, n_test=32, seed=0, gz=False) -> str:
    from sweepbench.tinydata import write_tiny_dataset

    return write_tiny_dataset(str(raw_dir), name, n_train, n_test, seed, gz=gz)


@pytest.fixture
def tiny_image_data(tmp_path):
    """raw_dir and data_dir with tiny MNIST, Fashion-MNIST (IDX) and mnist5k (CSV) in their real layouts."""
    raw_dir = tmp_path / "data"
    make_tiny_mnist(raw_dir, "mnist", seed=0)
    make_tiny_mnist(raw_dir, "fmnist", seed=1)
    make_tiny_mnist(raw_dir, "mnist5k", seed=2)
    return {"raw_dir": str(raw_dir), "data_dir": str(tmp_path / "resources")}


def run_cli(*args, cwd=None):
    """Run the sweepbench command in a fresh process; returns CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "sweepbench.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)
