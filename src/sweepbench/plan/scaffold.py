'''`sweepbench init`: a starter config and workload file that run as they are, in the user's folder.

The workload file is the contract of sweepbench.workloads in its smallest working form: a data loader
that draws a small learnable image-like problem from the generator it is given, and a small CNN.
The user replaces the two functions (or points `dataset` at a local folder or file) and keeps the rest.
Nothing is overwritten: a file that exists already is refused, and nothing is written.
'''

from __future__ import annotations

import os

from sweepbench import SweepbenchError, atomic

WORKLOAD_FILE = "my_workload.py"
CONFIG_FILE = "config.yaml"

WORKLOAD = '''"""My workload for sweepbench (sweepbench init wrote it; edit freely).

sweepbench imports this file when it plans a sweep and calls my_workload(), which only declares the
workload; load_data and make_model run in each training process. Replace them with your data and
model, or set dataset to a local source instead of a function: "data/images/" (one sub-folder per
class, with or without train/ and test/), "data/table.csv:label", "data/arrays.npz" or "data/x.pt"
(x_train, y_train, x_test, y_test). README, "Benchmark your own model", has the whole contract.
"""

from sweepbench import Workload

N_CLASSES = 4


def my_workload():
    return Workload(
        dataset=load_data,         # (spec, generator) -> x_train, y_train, x_test, y_test
        model=make_model,          # (spec) -> torch.nn.Module
        task="multiclass",         # or binary, regression
        defaults={"lr": 0.05, "batch_size": 32, "epochs": 4,       # any run option (sweepbench train --help)
                  "target_metric": "test_accuracy", "target": 0.9},
        description="A small CNN on 2x8x8 images in 4 classes drawn around fixed centres.",
    )


def load_data(spec, generator):
    """Tensors of the whole data set (torch is imported here, not at the top: planning stays fast)."""
    import torch

    centres = torch.randn(N_CLASSES, 2, 8, 8, generator=generator)

    def draw(n):
        y = torch.randint(0, N_CLASSES, (n,), generator=generator)
        return centres[y] + 3.0 * torch.randn(n, 2, 8, 8, generator=generator), y

    x_train, y_train = draw(512)
    x_test, y_test = draw(256)
    return x_train, y_train, x_test, y_test


def make_model(spec):
    from torch import nn

    return nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, N_CLASSES))
'''

CONFIG = '''# A sweepbench config (sweepbench init wrote it). Run it from this folder: sweepbench run --cores 2
# Then open report/index.html; sweepbench status shows a running sweep. Keys: config/README.md in the
# sweepbench repository, and `sweepbench train --help` for every run option.
studies:
  my_lr_batch:
    description: "My workload: learning rate x batch size, two seeds; steps to 90% test accuracy."
    workload: my_workload.py:my_workload
    grid:
      lr: [0.01, 0.05]
      batch_size: [16, 64]
    seeds: [0, 1]
    target: {metric: test_accuracy, value: 0.9}
'''


def init(folder: str) -> list[str]:
    """Write the starter files into `folder`; returns their paths. Refuses (writing nothing) when
    either exists already."""
    files = {os.path.join(folder, WORKLOAD_FILE): WORKLOAD, os.path.join(folder, CONFIG_FILE): CONFIG}
    there = [p for p in files if os.path.lexists(p)]
    if there:
        raise SweepbenchError(f"bad folder {folder!r}: {there[0]} exists already; allowed: a folder without "
                              f"{' or '.join(os.path.basename(p) for p in files)} (nothing was written)")
    atomic.make_folder(folder)
    for path, text in files.items():
        atomic.write_file(path, text)
    return list(files)
