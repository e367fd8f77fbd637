"""Turn torchvision's MNIST / Fashion-MNIST files into one compact tensor file.

The only module that imports torchvision. `sweepbench prepare --dataset mnist` reads (or,
with --download and a network, fetches) the raw IDX files under `<raw_dir>/<Class>/raw/`
and writes `{x_train, y_train, x_test, y_test}` as uint8/int64 tensors, atomically.
"""

from __future__ import annotations

import os

from sweepbench import SweepbenchError
from sweepbench.datasets import IMAGE_DATASETS

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def raw_folder(name: str, raw_dir: str) -> str:
    return os.path.join(raw_dir, IMAGE_DATASETS[name], "raw")


def prepare(name: str, raw_dir: str, out_path: str, download: bool = False, tiny: bool = False) -> str:
    """Read the raw dataset through torchvision.datasets and save it as a tensor file.
    tiny=True first writes a tiny generated dataset in the real IDX format to raw_dir
    (sweepbench.tinydata), for smoke runs."""
    if name not in IMAGE_DATASETS:
        raise SweepbenchError(f"unknown dataset {name!r} to prepare; allowed: {', '.join(IMAGE_DATASETS)}")
    if tiny:
        from sweepbench.tinydata import write_tiny_dataset

        write_tiny_dataset(raw_dir, IMAGE_DATASETS[name], seed=list(IMAGE_DATASETS).index(name))
    import torch
    import torchvision

    cls = getattr(torchvision.datasets, IMAGE_DATASETS[name])
    try:
        train = cls(root=raw_dir, train=True, download=download)
        test = cls(root=raw_dir, train=False, download=download)
    except RuntimeError as err:
        folder = raw_folder(name, raw_dir)
        raise SweepbenchError(
            f"{name} not found: put {', '.join(RAW_FILES)} (or their .gz) in {folder}/ "
            f"or run 'sweepbench prepare --dataset {name} --download' online ({err})") from None
    except Exception as err:  # no network while downloading, corrupt file, ...
        raise SweepbenchError(f"could not prepare {name} from {raw_folder(name, raw_dir)}: {err}") from None
    data = {"x_train": train.data.to(torch.uint8), "y_train": train.targets.to(torch.int64),
            "x_test": test.data.to(torch.uint8), "y_test": test.targets.to(torch.int64)}
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = f"{out_path}.tmp-{os.getpid()}"
    try:
        torch.save(data, tmp)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out_path
