"""Your own model on your own images: a small CNN on the image folder make_data.py writes.

sweepbench imports this file when it plans the sweep and calls `small_cnn()`, which only declares the
workload (cheap); the model factory runs in each training process. torch is imported inside the
factory so that planning stays fast.
"""

from sweepbench import Workload


def small_cnn():
    return Workload(
        dataset="data/shapes",          # an image folder: train/ and test/, one sub-folder per class
        model=make_cnn,                 # (spec) -> torch.nn.Module
        task="multiclass",
        defaults={"lr": 0.05, "batch_size": 16, "epochs": 5, "optimizer": "momentum",
                  "target_metric": "test_accuracy", "target": 0.9},
        description="A two-layer CNN on 24x20 RGB images in 3 classes (examples/small_cnn_images).",
    )


def make_cnn(spec):
    from torch import nn

    width = 16
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),  # is the shape anywhere?
        nn.Flatten(), nn.Linear(2 * width, 3),
    )
