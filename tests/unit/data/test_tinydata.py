"""Tiny datasets in the real raw formats (smoke runs, tests): never over a user's real files."""

import os

import pytest

from sweepbench import SweepbenchError
from sweepbench.data.tinydata import write_tiny_dataset


def test_a_users_real_raw_files_are_never_replaced_by_tiny_ones(tmp_path):
    """prepare --tiny over data/MNIST/raw/ replaced a user's real IDX files with generated ones."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"real")
    with pytest.raises(SweepbenchError, match=r"bad --raw-dir '.*raw': it holds train-images-idx3-ubyte.gz, which "
                                              r"sweepbench did not write there"):
        write_tiny_dataset(str(tmp_path), "mnist")
    assert os.listdir(raw) == ["train-images-idx3-ubyte.gz"] and (raw / "train-images-idx3-ubyte.gz").read_bytes() \
        == b"real"
    (raw / "train-images-idx3-ubyte.gz").unlink()
    write_tiny_dataset(str(tmp_path), "mnist")
    write_tiny_dataset(str(tmp_path), "mnist")                       # its own files: replaced
