"""Shared fixtures: tiny MNIST-format datasets in the real on-disk (IDX) format (sweepbench.tinydata)."""

import subprocess
import sys

import pytest


def make_tiny_mnist(raw_dir, folder="MNIST", n_train=64, n_test=32, seed=0) -> str:
    from sweepbench.tinydata import write_tiny_dataset

    return write_tiny_dataset(str(raw_dir), folder, n_train, n_test, seed)


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
